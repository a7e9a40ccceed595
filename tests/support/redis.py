"""A real redis-server (Debian's package; `make redis-server` installs it) on a free loopback
port, started and stopped by tests, and two tesoro apps sharing it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any

import httpx2

from tests.support.apps import sandbox_app
from tests.support.asgi import started
from tests.support.servers import free_port
from tests.support.simulators import Simulators


class RedisServer:
    """One redis-server process without persistence, on 127.0.0.1; can be stopped and
    started again on the same port (a Redis restart, as replicas see it)."""

    def __init__(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not installed: run `make redis-server`")
        self._executable = executable
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                self._executable,
                "--save",
                "",
                "--appendonly",
                "no",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None

    def command(self, *args: str) -> bytes:
        """One command over a plain socket (RESP), its raw reply: tests look at Redis with it."""
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(b"".join(parts))
            return sock.recv(1 << 20)


@contextmanager
def running_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def replicas(
    simulators: Simulators, count: int = 2, **overrides: Any
) -> AsyncIterator[list[httpx2.AsyncClient]]:
    """`count` sandbox apps (replicas) on one set of simulators, started, each with a client
    through its ASGI transport; `overrides` go to every one's settings (redis_url, say)."""
    # A test's bursts come from one caller: its in-flight limit is not what fleets test.
    overrides.setdefault("caller_max_in_flight", 1000)
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(count):
            running = await stack.enter_async_context(started(sandbox_app(simulators, **overrides)))
            clients.append(
                await stack.enter_async_context(
                    httpx2.AsyncClient(
                        transport=httpx2.ASGITransport(app=running), base_url="http://tesoro"
                    )
                )
            )
        yield clients
