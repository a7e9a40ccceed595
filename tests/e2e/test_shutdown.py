"""`tesoro serve` stops gracefully: on SIGTERM (what Kubernetes and Docker send) a request in
flight still gets its whole answer, and the process then exits on its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest

from app.sandbox import FINSYNC_API_KEY, create_finsync_app
from tests.support.servers import free_port, serve, wait_for
from tests.support.simulators import faults_of

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM_DELAY_SECONDS = 3.0
"""How long the FinSync simulator holds each request: the window the signal arrives in."""


def wait_until(condition: object, seconds: float = 30) -> None:
    assert callable(condition)
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("the condition never held")
        time.sleep(0.01)


def test_a_request_in_flight_at_sigterm_gets_its_answer_and_the_process_exits(
    tmp_path: Path,
) -> None:
    finsync = create_finsync_app()
    faults_of(finsync).delay_seconds = UPSTREAM_DELAY_SECONDS
    with serve(finsync) as finsync_url:
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TESORO_")},
            "PYTHONPATH": str(ROOT),
            "TESORO_FINSYNC_BASE_URL": finsync_url,
            "TESORO_FINSYNC_API_KEY": FINSYNC_API_KEY,
            "TESORO_AUTH_DISABLED": "true",
            # Room for the slow upstream: the answer must be the data, not a time-out.
            "TESORO_UPSTREAM_TIMEOUT_SECONDS": "30",
            "TESORO_UPSTREAM_DEADLINE_SECONDS": "30",
            "TESORO_REQUEST_DEADLINE_SECONDS": "30",
        }
        with (tmp_path / "tesoro.log").open("wb") as log:
            # The production command, as the image's ENTRYPOINT runs it.
            process = subprocess.Popen(
                [sys.executable, "-m", "app", "serve", "--port", str(port)],
                env=env,
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for(port, process, log=tmp_path / "tesoro.log")
            with ThreadPoolExecutor(max_workers=1) as pool:
                answer = pool.submit(httpx2.get, f"http://127.0.0.1:{port}/positions", timeout=60)
                # In flight: tesoro has asked FinSync, which holds the request for a while.
                wait_until(lambda: finsync.state.calls["GET /api/clients"] >= 1)
                process.send_signal(signal.SIGTERM)
                assert not answer.done()
                response = answer.result(timeout=60)
            returncode = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
    log_text = (tmp_path / "tesoro.log").read_text("utf-8", errors="replace")
    assert response.status_code == 200, log_text
    body = response.json()
    assert [(s["source"], s["status"]) for s in body["sources"]] == [("finsync", "ok")]
    assert body["complete"] is True
    assert body["positions"]
    # uvicorn re-raises the signal once it has shut down cleanly, so outside a container the
    # status is "terminated by SIGTERM"; as a container's PID 1, where a signal's default
    # action does not apply, the same shutdown exits 0. Any other status is a failure.
    assert returncode in (0, -signal.SIGTERM), log_text
    assert "Traceback" not in log_text
