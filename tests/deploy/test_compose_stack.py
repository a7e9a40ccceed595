"""Compose's wiring works as processes: the simulators service's command, tesoro's
environment and Redis, each on a loopback port instead of a container, answer as the
sandbox does (no Docker needed; only the host names and ports are rewritten)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx2
import pytest

from tests.deploy.manifests import ROOT, compose
from tests.support.redis import running_redis
from tests.support.servers import free_port, wait_for

pytestmark = pytest.mark.e2e


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        child = subprocess.Popen(args, env=env, cwd=log.parent, stdout=out, stderr=out)
    try:
        yield child
    finally:
        child.terminate()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=5)


def rehost(url: str, ports: dict[tuple[str, int], int]) -> str:
    """A compose URL (service name and port) pointed at the loopback port standing in."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    port = ports[(parts.hostname, parts.port)]
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))


def test_the_compose_services_answer_together(tmp_path: Path) -> None:
    services = compose()["services"]
    command: list[str] = list(services["simulators"]["command"])
    finsync_port, finqware_port, tesoro_port = free_port(), free_port(), free_port()
    ports = {
        ("simulators", int(command[command.index("--finsync-port") + 1])): finsync_port,
        ("simulators", int(command[command.index("--finqware-port") + 1])): finqware_port,
    }
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--finsync-port") + 1] = str(finsync_port)
    command[command.index("--finqware-port") + 1] = str(finqware_port)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("TESORO_")}
    base_env["PYTHONPATH"] = str(ROOT)
    with running_redis() as redis, ExitStack() as stack:
        ports[("redis", 6379)] = redis.port
        env = {**base_env, **services["tesoro"]["environment"]}
        for name in ("TESORO_FINSYNC_BASE_URL", "TESORO_FINQWARE_BASE_URL", "TESORO_REDIS_URL"):
            env[name] = rehost(env[name], ports)
        env["TESORO_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{tesoro_port}"
        python = [sys.executable, "-m", "app"]
        simulators = stack.enter_context(process([*python, *command], base_env, tmp_path / "s"))
        wait_for(finsync_port, simulators)
        wait_for(finqware_port, simulators)
        tesoro = stack.enter_context(
            process([*python, "serve", "--port", str(tesoro_port)], env, tmp_path / "t")
        )
        wait_for(tesoro_port, tesoro)
        with httpx2.Client(base_url=f"http://127.0.0.1:{tesoro_port}", timeout=30) as client:
            positions = client.get("/positions")
            ready = client.get("/readyz")
    assert positions.status_code == 200, (tmp_path / "t").read_text(errors="replace")
    states = {
        s["source"]: (s["status"], (s["error"] or {}).get("code"))
        for s in positions.json()["sources"]
    }
    assert states == {
        "finsync": ("ok", None),
        "finqware:bt-main": ("ok", None),
        "finqware:ing-ops": ("ok", None),
        "finqware:brd-legacy": ("unavailable", "consent_expired"),
    }
    assert ready.status_code == 200
    assert ready.json()["sandbox"] is False
    assert ready.json()["redis"] == "ok"
