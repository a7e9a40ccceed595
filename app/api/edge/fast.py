"""The fast path: a GET whose (route, raw query, caller's scope, encoding) names a kept answer
is answered here, from the kept bytes, without FastAPI's per-request solving.

What may be answered here is decided in one place, `app.api.caching.answer_json`: when it
sends a kept answer, it remembers in the `AnswerCache` how the request's raw query names it
again (its question, and how to gather its data state without waiting: `Recall`). The fast
path only looks that up and asks the same questions the route would, in the same way:

- the caller is admitted with the `read` scope (else FastAPI refuses it);
- the request asks no refetch (`Cache-Control: no-cache` / `max-age=0`: FastAPI refetches);
- every connection answers at once (no load to wait for; a TTL lapse then shows as a new
  data state), and the data state gathered now names a kept answer; while nothing it
  depends on changed, the data state is the last one gathered (`Treasury.unchanged`);
- the encoding the caller accepts is already compressed (else FastAPI compresses it once);
- the response itself (validators, 304 for a matching If-None-Match, the body for the
  encoding) is decided by the same function as FastAPI's (`caching.kept_raw`, the raw form
  of `caching.kept_response`).

`GET /healthz` is answered here too, with the bytes its route answers (it reads nothing).

Anything else (a first sight of a query, any error, every other route, OpenAPI) returns None
and the request goes on to FastAPI. HEAD, CORS, encoding headers and metrics are the edge's
own, the same for both paths (`layer.Edge`).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import Scope

from app.api.answers import AnswerCache
from app.api.auth import Caller
from app.api.caching import GATHERED_AT_THE_EDGE, kept_raw
from app.api.deps import wants_refresh
from app.api.routes.health import Health
from app.api.state import Services
from app.services.treasury import Gathered
from app.settings import Settings

_READ = "read"
HEALTH_PATH = "/healthz"

# An answer as the edge sends it: status, raw headers (the request id and CORS aside), body.
Raw = tuple[int, list[tuple[bytes, bytes]], bytes]


class FastPath:
    """Answers from kept bytes at the edge, or None (then FastAPI answers)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.answered = 0  # requests answered here (the tests read it)
        # GET /healthz as its route answers it (FastAPI's JSON of `Health`), after the
        # edge's encoding step (too small to encode: `Vary` only).
        body = Health().model_dump_json().encode()
        self._health_body = body
        self._health_headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
            (b"vary", b"Accept-Encoding"),
        ]
        self._health_route: object = None

    def health(self, scope: Scope) -> Raw | None:
        """`GET /healthz`'s answer, once its route is known (`learn_health`), else None."""
        route = self._health_route
        if route is None:
            return None
        self.answered += 1
        scope["route"] = route
        return 200, list(self._health_headers), self._health_body

    def learn_health(self, scope: Scope, status: int | None) -> None:
        """After FastAPI answered `GET /healthz` (200): its route, named in the metrics."""
        if status == 200 and scope["method"] == "GET":
            self._health_route = scope.get("route")

    async def answer(self, scope: Scope, headers: Headers, caller: Caller | None) -> Raw | None:
        """The answer to this GET from a kept answer, or None when FastAPI must answer
        (`caller`: the request's admitted caller, None when its key is missing or not
        valid)."""
        services: Services | None = scope.get("state", {}).get("services")
        if services is None:
            return None
        answers: AnswerCache = services.answers
        recall = answers.recall(scope["path"], scope["query_string"])
        if recall is None:
            return None
        cache_control = headers.get("cache-control")
        if cache_control is not None and await wants_refresh(cache_control):
            return None
        if caller is None or _READ not in caller.scopes:
            return None
        gathering = recall.again()
        if gathering is None:
            return None
        if isinstance(gathering, Gathered):
            gathered = gathering
        else:
            try:
                gathered = await gathering
            except Exception as exc:
                # FastAPI answers it (the route raises it again, and its handlers answer it).
                scope[GATHERED_AT_THE_EDGE] = exc
                return None
        answered = kept_raw(headers, answers, recall.question, gathered)
        if answered is None:
            # The route reads the same data state rather than gathering again.
            scope[GATHERED_AT_THE_EDGE] = gathered
            return None
        self.answered += 1
        scope["route"] = recall.route
        return answered
