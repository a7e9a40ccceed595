"""The `tesoro` command as a user runs it: refusals at start-up and the served service."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from tests.support.servers import loopback_socket

ROOT = Path(__file__).resolve().parents[1]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TESORO_")}


def run_tesoro(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serve_without_any_source_stops_and_says_what_to_set(tmp_path: Path) -> None:
    env = {**clean_env(), "PYTHONPATH": str(ROOT)}
    result = run_tesoro("serve", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "TESORO_FINSYNC_API_KEY" in result.stderr


def test_serve_without_caller_keys_stops_and_never_prints_the_secret(tmp_path: Path) -> None:
    env = {
        **clean_env(),
        "PYTHONPATH": str(ROOT),
        "TESORO_FINSYNC_API_KEY": "very-secret-finsync-key",
    }
    result = run_tesoro("serve", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "TESORO_API_KEYS" in result.stderr
    assert "very-secret-finsync-key" not in result.stderr + result.stdout


def test_serve_sandbox_answers_positions_on_its_port(tmp_path: Path) -> None:
    with loopback_socket() as probe:
        port = probe.getsockname()[1]
    env = {**clean_env(), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--sandbox", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                assert process.poll() is None, "tesoro serve exited early"
                assert time.monotonic() < deadline, "tesoro serve did not start"
                time.sleep(0.1)
        response = httpx2.get(f"http://127.0.0.1:{port}/positions", timeout=10)
        assert response.status_code == 200
        assert response.json()["positions"]
        # A caller key pasted into the query string is never written to the access log.
        leaked = httpx2.get(f"http://127.0.0.1:{port}/healthz?api_key=sk_live_4242", timeout=10)
        assert leaked.status_code == 200
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert "NOT authenticated" in output
    assert "sandbox-finsync-key" not in output
    assert "GET /healthz?api_key=[hidden]" in output
    assert "sk_live_4242" not in output


def test_a_setting_that_is_not_json_is_one_line_naming_it_without_its_value(
    tmp_path: Path,
) -> None:
    env = {**clean_env(), "PYTHONPATH": str(ROOT), "TESORO_API_KEYS": '{"svc": sk_live_9'}
    result = run_tesoro("serve", "--sandbox", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "TESORO_API_KEYS: not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr
    assert "sk_live_9" not in result.stderr + result.stdout


def test_a_base_url_without_its_scheme_refuses_to_start(tmp_path: Path) -> None:
    env = {
        **clean_env(),
        "PYTHONPATH": str(ROOT),
        "TESORO_FINSYNC_BASE_URL": "finsync.ar",
        "TESORO_FINSYNC_API_KEY": "k",
        "TESORO_AUTH_DISABLED": "true",
    }
    result = run_tesoro("serve", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "TESORO_FINSYNC_BASE_URL" in result.stderr
    assert "http://" in result.stderr
