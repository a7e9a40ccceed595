"""The bare baseline of the hot-path benchmark: a Starlette app that answers fixed bytes.

    python -m bench.baseline --spec answers.json --port 8203

`answers.json` lists what tesoro answered, captured once by the harness:
``[{"target": "/positions", "gzip": false, "status": 200, "content_type": "...",
"content_encoding": null, "body_b64": "..."}]``. A request whose path and query equal a
target's gets that body (the gzip one when its Accept-Encoding names gzip), so the baseline
sends the very bytes tesoro sent, with no work behind them. It runs under the uvicorn
settings `tesoro serve` uses (uvloop, tesoro's limited httptools protocol, proxy headers on,
no server header, no uvicorn access log), so the ratio tesoro/baseline is what tesoro's own
work costs on top of the server and the framework floor.
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def baseline_app(answers: list[dict[str, object]]) -> Starlette:
    table: dict[tuple[str, bool], Response] = {}
    for answer in answers:
        headers = {"content-type": str(answer["content_type"])}
        if answer.get("content_encoding"):
            headers["content-encoding"] = str(answer["content_encoding"])
        body = base64.b64decode(str(answer["body_b64"]))
        status = answer["status"]
        assert isinstance(status, int)
        table[str(answer["target"]), bool(answer["gzip"])] = Response(body, status, headers)

    async def endpoint(request: Request) -> Response:
        query = request.url.query
        target = request.url.path + (f"?{query}" if query else "")
        gzip = "gzip" in request.headers.get("accept-encoding", "")
        found = table.get((target, gzip)) or table.get((target, False))
        return found if found is not None else Response(b"", 404)

    return Starlette(routes=[Route("/{rest:path}", endpoint)])


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from app.server import limited_protocol

    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__)
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    answers = json.loads(args.spec.read_text(encoding="utf-8"))
    # As app/cli.py's _serve runs tesoro, less tesoro itself.
    uvicorn.run(
        baseline_app(answers),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http=limited_protocol(),
        log_level="info",
        proxy_headers=True,
        server_header=False,
        access_log=False,
        log_config=None,
    )


if __name__ == "__main__":
    main()
