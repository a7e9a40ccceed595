"""The `tesoro` command as a user runs it: refusals at start-up and the served service."""

from __future__ import annotations

import gc
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import httpx2
import pytest

from app.cli import CONFIGURATION_ERROR, FULL_COLLECTION_EVERY, main, settle_collector
from app.sandbox.data import (
    FINQWARE_CLIENT_SECRET,
    FINSYNC_API_KEY,
    SANDBOX_CALLER_KEY,
    SANDBOX_CONSENTS,
)
from tests.support.keys import bearer
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
    assert result.returncode == CONFIGURATION_ERROR
    assert "TESORO_FINSYNC_API_KEY" in result.stderr


def test_serve_without_caller_keys_stops_and_never_prints_the_secret(tmp_path: Path) -> None:
    env = {
        **clean_env(),
        "PYTHONPATH": str(ROOT),
        "TESORO_FINSYNC_API_KEY": "very-secret-finsync-key",
    }
    result = run_tesoro("serve", env=env, cwd=tmp_path)
    assert result.returncode == CONFIGURATION_ERROR
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
    assert "sk_live_4242" not in output
    # Every line is JSON (uvicorn's own included), and each request has one access line.
    records = [json.loads(line) for line in output.splitlines() if line.strip()]
    access = [r for r in records if r["logger"] == "app.access"]
    assert [(r["method"], r["route"], r["status"]) for r in access] == [
        ("GET", "/positions", 200),
        ("GET", "/healthz", 200),
    ]
    assert all(r["request_id"] for r in access)
    assert not any(r["logger"] == "uvicorn.access" for r in records)
    assert any(r["logger"] == "uvicorn.error" for r in records)


def test_a_setting_that_is_not_json_is_one_line_naming_it_without_its_value(
    tmp_path: Path,
) -> None:
    env = {**clean_env(), "PYTHONPATH": str(ROOT), "TESORO_API_KEYS": '{"svc": sk_live_9'}
    result = run_tesoro("serve", "--sandbox", env=env, cwd=tmp_path)
    assert result.returncode == CONFIGURATION_ERROR
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
    assert result.returncode == CONFIGURATION_ERROR
    assert "TESORO_FINSYNC_BASE_URL" in result.stderr
    assert "http://" in result.stderr


@contextmanager
def running(
    *args: str, env: dict[str, str], cwd: Path, port: int | None = None
) -> Iterator[subprocess.Popen[str]]:
    """`tesoro <args>` as a process (waiting for `port` to accept, if given), then stopped."""
    process = subprocess.Popen(
        [sys.executable, "-m", "app", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while port is not None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < deadline, "did not start"
                time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        process.communicate(timeout=10)


def free_port() -> int:
    with loopback_socket() as probe:
        port: int = probe.getsockname()[1]
    return port


def wait_for(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, f"{path} was not written"
        time.sleep(0.1)


def test_every_option_shows_its_help_and_default(capsys: pytest.CaptureFixture[str]) -> None:
    for command, expected in (
        (
            "serve",
            [
                "--host HOST",
                "(default: 127.0.0.1)",
                "(default: 8000)",
                "--sandbox",
                "--env-file PATH",
            ],
        ),
        ("sandbox", ["(default: 8101)", "(default: 8102)", "--env-file PATH", "--print-env"]),
        ("openapi", ["(default: -)"]),
    ):
        with pytest.raises(SystemExit) as exited:
            main([command, "--help"])
        assert exited.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        for part in expected:
            assert part in text, (command, part)


def test_sandbox_env_file_makes_serving_against_the_simulators_one_step(tmp_path: Path) -> None:
    env = {**clean_env(), "PYTHONPATH": str(ROOT)}
    env_file = tmp_path / ".env"
    port = free_port()
    with running(
        "sandbox", "--finsync-port", "0", "--finqware-port", "0", "--env-file", str(env_file),
        env=env, cwd=tmp_path,
    ) as sandbox:  # fmt: skip
        wait_for(env_file, sandbox)
        # The one step: tesoro serve in the folder of that .env, no other configuration.
        with running("serve", "--port", str(port), env=env, cwd=tmp_path, port=port) as served:
            base = f"http://127.0.0.1:{port}"
            answer = httpx2.get(f"{base}/positions", headers=bearer(SANDBOX_CALLER_KEY))
            refused = httpx2.get(f"{base}/positions")
            spec = httpx2.get(f"{base}/openapi.json").json()
            served.terminate()
            output = served.communicate(timeout=10)[0]
    assert answer.status_code == 200, answer.text
    assert answer.json()["positions"]
    assert refused.status_code == 401
    # The spec's server is the address served (TESORO_PUBLIC_BASE_URL unset).
    assert spec["servers"] == [{"url": base, "description": "This deployment"}]
    # The start-up log names the connections by key and label, and nothing secret.
    records = [json.loads(line) for line in output.splitlines() if line.strip()]
    (listed,) = [r["connections"] for r in records if "connections" in r]
    assert {"key": "finsync", "label": None} in listed
    assert {"key": "finqware:bt-main", "label": "Banca Transilvania"} in listed
    assert set().union(*listed) == {"key", "label"}
    secrets = [FINSYNC_API_KEY, FINQWARE_CLIENT_SECRET, SANDBOX_CALLER_KEY]
    secrets += [c.access_token for c in SANDBOX_CONSENTS] + [
        c.credentials_id for c in SANDBOX_CONSENTS
    ]
    assert all(secret in env_file.read_text(encoding="utf-8") for secret in secrets[:2])
    for secret in secrets:
        assert secret not in output, secret


def test_sandbox_never_replaces_a_file_it_did_not_write(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("TESORO_FINSYNC_API_KEY=mine\n", encoding="utf-8")
    env = {**clean_env(), "PYTHONPATH": str(ROOT)}
    result = run_tesoro(
        "sandbox", "--finsync-port", "0", "--finqware-port", "0", "--env-file", str(env_file),
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == CONFIGURATION_ERROR
    assert "was not written by tesoro sandbox" in result.stderr
    assert env_file.read_text(encoding="utf-8") == "TESORO_FINSYNC_API_KEY=mine\n"


def test_sandbox_prints_export_lines_a_shell_can_source(tmp_path: Path) -> None:
    env = {**clean_env(), "PYTHONPATH": str(ROOT)}
    with running(
        "sandbox", "--finsync-port", "0", "--finqware-port", "0", "--print-env",
        env=env, cwd=tmp_path,
    ) as sandbox:  # fmt: skip
        assert sandbox.stdout is not None
        exports: list[str] = []
        while not any(line.startswith("export TESORO_API_KEYS=") for line in exports):
            line = sandbox.stdout.readline()
            assert line, "the sandbox stopped"
            if line.startswith("export "):
                exports.append(line.rstrip("\n"))
    script = "\n".join([*exports, 'printf %s "$TESORO_FINQWARE_CONSENTS"'])
    shell = subprocess.run(
        ["/bin/sh", "-c", script], capture_output=True, text=True, check=True, timeout=10
    )
    consents = json.loads(shell.stdout)
    assert [c["key"] for c in consents] == ["bt-main", "ing-ops", "brd-legacy"]
    names = {line.split("=", 1)[0].removeprefix("export ") for line in exports}
    assert {"TESORO_FINSYNC_BASE_URL", "TESORO_FINQWARE_BASE_URL", "TESORO_API_KEYS"} <= names


def test_an_unknown_balance_type_refuses_to_start(tmp_path: Path) -> None:
    env = {
        **clean_env(),
        "PYTHONPATH": str(ROOT),
        "TESORO_CURRENT_BALANCE_TYPES": "InterimBooked,ClosingBookd",
    }
    result = run_tesoro("serve", "--sandbox", env=env, cwd=tmp_path)
    assert result.returncode == CONFIGURATION_ERROR
    assert "TESORO_CURRENT_BALANCE_TYPES" in result.stderr
    assert "ClosingBookd" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_mistake_in_the_settings_is_one_line_each_with_one_exit_status(
    tmp_path: Path,
) -> None:
    env = {
        **clean_env(),
        "PYTHONPATH": str(ROOT),
        "TESORO_API_KEYS": '{"svc": sk_live_9',
        "TESORO_CORS_ORIGINS": "[https://app.example",
        "TESORO_UPSTREAM_TIMEOUT_SECONDS": "soon",
    }
    result = run_tesoro("serve", "--sandbox", env=env, cwd=tmp_path)
    assert result.returncode == CONFIGURATION_ERROR
    assert result.stderr.splitlines()[0] == "tesoro: invalid configuration:"
    named = sorted(line.split(":", 1)[0] for line in result.stderr.splitlines()[1:])
    assert named == ["TESORO_API_KEYS", "TESORO_CORS_ORIGINS", "TESORO_UPSTREAM_TIMEOUT_SECONDS"]
    assert "Traceback" not in result.stderr
    assert "sk_live_9" not in result.stderr + result.stdout


def test_a_redis_url_without_the_redis_extra_is_one_line_and_the_same_exit_status(
    tmp_path: Path,
) -> None:
    # The extra hidden, not uninstalled: a `redis` package first on the path that cannot be
    # imported, as when the extra is missing.
    hidden = tmp_path / "hidden" / "redis"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text('raise ImportError("no redis here")\n')
    env = {
        **clean_env(),
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "hidden"), str(ROOT)]),
        "TESORO_REDIS_URL": "redis://:hunter2-password@redis:6379/0",
    }
    result = run_tesoro("serve", "--sandbox", env=env, cwd=tmp_path)
    assert result.returncode == CONFIGURATION_ERROR
    assert result.stderr.splitlines()[-1] == (
        "tesoro: cannot start: TESORO_REDIS_URL is set but the redis extra is not installed "
        "(pip install 'tesoro[redis]'), or unset TESORO_REDIS_URL"
    )
    assert "Traceback" not in result.stderr
    assert "hunter2-password" not in result.stderr + result.stdout


def test_unknown_tesoro_names_are_warned_at_start_with_the_nearest_known_name(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text("TESORO_FINQWARE_TTL=5\n", encoding="utf-8")
    env = {**clean_env(), "PYTHONPATH": str(ROOT), "TESORO_FINSYNC_TTL": "60"}
    result = run_tesoro("serve", env=env, cwd=tmp_path)
    # Refused for want of a source, after saying what it ignores.
    assert result.returncode == CONFIGURATION_ERROR
    warned = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [(line["level"], line["variable"], line["nearest"]) for line in warned] == [
        ("warning", "TESORO_FINQWARE_TTL", "TESORO_FINQWARE_TTL_SECONDS"),
        ("warning", "TESORO_FINSYNC_TTL", "TESORO_FINSYNC_TTL_SECONDS"),
    ]
    assert warned[1]["event"] == (
        "TESORO_FINSYNC_TTL is not a setting tesoro reads: it is ignored; "
        "did you mean TESORO_FINSYNC_TTL_SECONDS?"
    )


def test_serve_reads_the_env_file_it_is_given_and_says_where_to_look(tmp_path: Path) -> None:
    settings = tmp_path / "conf" / "tesoro.env"
    settings.parent.mkdir()
    settings.write_text("TESORO_SANDBOX=true\nTESORO_LOG_FORMAT=json\n", encoding="utf-8")
    env = {**clean_env(), "PYTHONPATH": str(ROOT)}
    port = free_port()
    with running(
        "serve", "--env-file", str(settings), "--port", str(port), env=env, cwd=tmp_path, port=port
    ) as served:
        ready = httpx2.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        served.terminate()
        output = served.communicate(timeout=10)[0]
    assert ready.status_code == 200
    assert ready.json()["sandbox"] is True
    records = [json.loads(line) for line in output.splitlines() if line.strip()]
    (started,) = [r for r in records if "version" in r]
    base = f"http://127.0.0.1:{port}"
    assert started["version"] == version("tesoro")
    assert started["url"] == base
    assert started["event"].startswith(f"tesoro {version('tesoro')} on {base}: ")
    assert f"{base}/docs" in started["event"]

    missing = run_tesoro("serve", "--env-file", "nowhere.env", env=env, cwd=tmp_path)
    assert missing.returncode == CONFIGURATION_ERROR
    assert missing.stderr == "tesoro: cannot start: --env-file nowhere.env: no such file\n"


def test_sandbox_logs_one_line_per_event_in_tesoros_format(tmp_path: Path) -> None:
    env = {**clean_env(), "PYTHONPATH": str(ROOT)}
    finsync = free_port()
    with running(
        "sandbox", "--finsync-port", str(finsync), "--finqware-port", "0",
        env=env, cwd=tmp_path, port=finsync,
    ) as sandbox:  # fmt: skip
        assert httpx2.get(f"http://127.0.0.1:{finsync}/_sandbox/faults").status_code == 200
        sandbox.terminate()
        output = sandbox.communicate(timeout=10)[0]
    logged = [line for line in output.splitlines() if line[:4].isdigit()]
    # One access line for the one request, in tesoro's console format; nothing of uvicorn's
    # own plain format ("INFO:     ..."), and no line written twice.
    assert len(logged) == 1, output
    assert '"GET /_sandbox/faults HTTP/1.1" 200' in logged[0]
    assert "[info" in logged[0]
    assert not [line for line in output.splitlines() if line.startswith("INFO:")]


def test_serve_freezes_what_lives_at_start_and_spaces_out_the_full_collections() -> None:
    # What `tesoro serve` does to the collector before it serves, done here and undone.
    threshold = gc.get_threshold()
    try:
        settle_collector()
        assert gc.get_freeze_count() > 0
        young, middle, full = gc.get_threshold()
        # Young and middle collections as Python makes them; a full one rarer (default 10).
        assert (young, middle) == threshold[:2]
        assert full == FULL_COLLECTION_EVERY == 100
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
