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
