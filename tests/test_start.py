"""What the app does once at start, so the first requests do not pay for it on the loop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A fresh interpreter: whether the start imported anyio's asyncio backend, which httpx2's
# transport otherwise imports on the event loop inside the first upstream call.
_STARTS = """
import asyncio, sys
from app.main import create_app
from app.settings import Settings

BACKEND = "anyio._backends._asyncio"
app = create_app(Settings(_env_file=None, sandbox=True))
before = BACKEND in sys.modules

async def start() -> bool:
    async with app.router.lifespan_context(app):
        return BACKEND in sys.modules

print(before, asyncio.run(start()))
"""


def test_the_start_imports_the_transport_backend_before_any_upstream_call(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESORO_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", _STARTS],
        cwd=tmp_path,  # the sandbox's history database is written here
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # Not imported by building the app (so the check means something), imported by its start.
    assert done.stdout.split()[-2:] == ["False", "True"]


# A fresh interpreter too: FastAPI keeps what it read of each endpoint's source per process.
# Counted: reading an endpoint's source (for FastAPI's error messages) and building a route
# of an included router (its dependencies and fields), during the start and then during the
# first requests.
_PREPARES = """
import asyncio, inspect
from fastapi import routing
from app.main import create_app
from app.settings import Settings

counts = {"source": 0, "route": 0}
read_source = inspect.getsourcelines
build_route = routing._EffectiveRouteContext.from_api_route.__func__

def counted_source(*args, **kwargs):
    counts["source"] += 1
    return read_source(*args, **kwargs)

def counted_route(cls, *args, **kwargs):
    counts["route"] += 1
    return build_route(cls, *args, **kwargs)

inspect.getsourcelines = counted_source
routing._EffectiveRouteContext.from_api_route = classmethod(counted_route)
app = create_app(Settings(_env_file=None, sandbox=True), fast_path=False)

async def get(state, path):
    sent = []
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        sent.append(message)
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
             "query_string": b"", "headers": [], "http_version": "1.1", "scheme": "http",
             "server": ("test", 80), "client": ("test", 1), "root_path": "",
             "state": dict(state)}
    await app(scope, receive, send)
    return sent[0]["status"]

async def main():
    async with app.router.lifespan_context(app) as state:
        started = dict(counts)
        statuses = [await get(state, path) for path in ("/healthz", "/counterparties")]
        return started, statuses

started, statuses = asyncio.run(main())
print(started["source"] > 0, started["route"] > 0, statuses, counts == started)
"""


def test_the_start_prepares_every_route_so_the_first_requests_do_not(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESORO_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", _PREPARES],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # Done by the start (so the check means something), and not again by the first requests.
    assert done.stdout.split("\n")[-2] == "True True [200, 200] True"
