"""`tesoro serve` stops on SIGTERM with event streams open: each stream is closed (its
client reconnects elsewhere) and the process exits, instead of waiting for streams that never
end by themselves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from tests.support.events import EventReader
from tests.support.servers import free_port, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def drain(reader: EventReader) -> None:
    while reader.next_event(skip_comments=False) is not None:
        pass


def test_sigterm_closes_open_streams_and_the_process_exits(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TESORO_")},
        "PYTHONPATH": str(ROOT),
        "TESORO_SANDBOX": "true",
        "TESORO_EVENTS_HEARTBEAT_SECONDS": "0.2",
    }
    with (tmp_path / "tesoro.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(port, process, log=tmp_path / "tesoro.log")
        with (
            httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
            client.stream("GET", "/events") as response,
        ):
            reader = EventReader(response)
            # The stream is open once anything arrives: a heartbeat, or a `source` event when
            # a connection's first load lands just then.
            first = reader.next_event(skip_comments=False)
            assert first is not None
            assert first.type in {"comment", "source", "positions", "consent"}
            process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            # Closed between two events, without the end of a chunked answer: a client sees
            # the connection drop, and reconnects.
            with pytest.raises(httpx2.RemoteProtocolError):
                drain(reader)
        returncode = process.wait(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    log_text = (tmp_path / "tesoro.log").read_text("utf-8", errors="replace")
    assert returncode in (0, -signal.SIGTERM), log_text
    assert elapsed < 5, log_text
    assert "Traceback" not in log_text
