"""The container's health check finds the port `tesoro serve` was started with and asks it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.healthcheck import DEFAULT_PORT, find_server, served_address
from tests.deploy.manifests import dockerfile
from tests.support.servers import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/opt/tesoro/bin/python", "/opt/tesoro/bin/tesoro", "serve"], ("127.0.0.1", 8000)),
        (["tesoro", "serve", "--host", "0.0.0.0", "--port", "19095"], ("127.0.0.1", 19095)),  # noqa: S104
        (["tesoro", "serve", "--port=19096", "--host=::"], ("::1", 19096)),
        (["tesoro", "serve", "--sandbox", "--host", "10.0.0.7", "--port", "80"], ("10.0.0.7", 80)),
        (["python", "-m", "app", "serve", "--env-file", "x.env", "--port", "9"], ("127.0.0.1", 9)),
        (["tesoro", "sandbox", "--finsync-port", "8101"], None),
        (["tesoro", "serve", "--port", "not-a-port"], None),
    ],
)
def test_the_address_comes_from_the_serve_command_line(
    argv: list[str], expected: tuple[str, int] | None
) -> None:
    assert served_address(argv) == expected


def fake_proc(root: Path, processes: dict[int, list[str]]) -> Path:
    for pid, argv in processes.items():
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "cmdline").write_bytes(b"\0".join(w.encode() for w in argv) + b"\0")
    (root / "self").mkdir()
    return root


def test_the_server_is_process_1_or_under_an_init_the_first_serve_found(tmp_path: Path) -> None:
    serve = ["/opt/tesoro/bin/python", "/opt/tesoro/bin/tesoro", "serve", "--port", "19095"]
    alone = fake_proc(tmp_path / "alone", {1: serve, 12: ["python", "-m", "app.healthcheck"]})
    assert find_server(alone) == ("127.0.0.1", 19095)
    # Under an init or a wrapper script, tesoro serve is another process.
    wrapped = fake_proc(tmp_path / "wrapped", {1: ["/bin/sh", "/entrypoint.sh"], 7: serve})
    assert find_server(wrapped) == ("127.0.0.1", 19095)
    nothing = fake_proc(tmp_path / "none", {1: ["/bin/sh"], 3: ["sleep", "9"]})
    assert find_server(nothing) is None


def test_the_image_checks_the_command_it_runs() -> None:
    runtime = [i for i in dockerfile() if i.stage == 1]
    [healthcheck] = [i.arguments for i in runtime if i.keyword == "HEALTHCHECK"]
    assert json.loads(healthcheck.partition(" CMD ")[2]) == ["python", "-m", "app.healthcheck"]
    [entrypoint] = [json.loads(i.arguments) for i in runtime if i.keyword == "ENTRYPOINT"]
    [cmd] = [json.loads(i.arguments) for i in runtime if i.keyword == "CMD"]
    [exposed] = [int(i.arguments) for i in runtime if i.keyword == "EXPOSE"]
    assert served_address([*entrypoint, *cmd]) == ("127.0.0.1", exposed)
    assert exposed == DEFAULT_PORT


def check(pid: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.healthcheck", "--pid", str(pid)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.e2e
def test_a_server_on_another_port_is_healthy_and_a_stopped_one_is_not(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESORO_")}
    env["PYTHONPATH"] = str(ROOT)
    served = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--sandbox", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(port, served)
        assert check(served.pid).returncode == 0
        # Not tesoro serve (this test's own process): unhealthy, saying why.
        refused = check(os.getpid())
        assert refused.returncode == 1
        assert refused.stderr == f"healthcheck: process {os.getpid()} is not tesoro serve\n"
    finally:
        served.terminate()
        served.wait(timeout=15)
    # The port the process named no longer answers.
    stopped = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", "serve", "--port", str(port)]
    )
    try:
        assert check(stopped.pid).returncode == 1
    finally:
        stopped.kill()
        stopped.wait(timeout=5)
