"""Real loopback servers for end-to-end tests: uvicorn in a thread on a pre-bound socket."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp


def loopback_socket() -> socket.socket:
    # IPPROTO_TCP explicitly: without it asyncio skips TCP_NODELAY and small answers wait ~40 ms.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    """A loopback port nothing listens on (for a child process to take)."""
    with loopback_socket() as probe:
        port: int = probe.getsockname()[1]
    return port


def wait_for(
    port: int,
    process: subprocess.Popen[bytes] | None = None,
    seconds: float = 30,
    log: Path | None = None,
) -> None:
    """Until something (`process`, when given) listens on `port`; an error if the process
    exits first (with the end of its `log`, when given) or it takes too long."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            said = log.read_text(errors="replace")[-4000:] if log is not None else ""
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}\n{said}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@contextmanager
def serve(
    app: ASGIApp, *, start_timeout_seconds: float = 10.0, http: Any = "auto"
) -> Iterator[str]:
    """Serve `app` on a free loopback port until the block ends; yields its base URL.
    `http` is uvicorn's protocol (a name, or a class such as tesoro's own)."""
    sock = loopback_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_level="warning", ws="none", lifespan="on", loop="asyncio", http=http
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_seconds
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("loopback server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
