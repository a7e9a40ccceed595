"""A client generated from openapi/openapi.json works against tesoro over a real socket.

`make client` builds openapi-python-client in its own virtualenv (.gen/venv) and
generates `tesoro_client` into .gen/client; this test serves tesoro on the sandbox on a
loopback port and runs tests/openapi/client_check.py in that virtualenv, where it makes
real calls through the generated client and asserts typed, parsed answers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import openapi_settings
from app.main import create_app
from app.sandbox.wiring import sandbox_transport
from tests.support.keys import READ_KEY, WRITE_KEY, reader_and_writer
from tests.support.servers import serve

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
GEN_PYTHON = ROOT / ".gen" / "venv" / "bin" / "python"
CLIENT = ROOT / ".gen" / "client"
CHECK = Path(__file__).with_name("client_check.py")
SPEC = ROOT / "openapi" / "openapi.json"

EXPECTED_CHECKS = [
    "probes",
    "list_counterparties",
    "list_counterparties_filtered",
    "get_counterparty",
    "list_positions_filtered",
    "list_positions_include_zero",
    "list_positions_meaning_paged",
    "list_positions_consolidated",
    "list_rates",
    "if_none_match_304",
    "create_counterparty",
    "create_counterparty_replayed",
    "get_created_counterparty",
    "duplicate_is_409_problem",
    "unknown_id_is_404_problem",
    "missing_or_wrong_key_is_401_problem",
    "read_key_cannot_create_403_problem",
    "invalid_query_is_422_problem",
    "metrics",
]


def _require_generated_client() -> None:
    # Never a skip: without the client this proof is missing, and `make test` builds it.
    if not GEN_PYTHON.exists() or not (CLIENT / "tesoro_client").is_dir():
        pytest.fail("the generated client is missing: run `make client` (make test does)")
    generated_from = CLIENT / ".spec"
    if not generated_from.exists() or generated_from.read_bytes() != SPEC.read_bytes():
        pytest.fail("the generated client is older than openapi/openapi.json: run `make client`")


@pytest.fixture
def tesoro_url() -> Iterator[str]:
    # Defaults only, whatever TESORO_* the environment holds: the app serves the committed spec.
    settings = openapi_settings(api_keys=reader_and_writer())
    with serve(create_app(settings, transport=sandbox_transport())) as url:
        yield url


def test_generated_client_makes_typed_calls(tesoro_url: str) -> None:
    _require_generated_client()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(CLIENT),
        "PYTHONDONTWRITEBYTECODE": "1",
    }

    result = subprocess.run(
        [str(GEN_PYTHON), str(CHECK), tesoro_url, READ_KEY, WRITE_KEY],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, f"client check failed:\n{result.stdout}\n{result.stderr}"
    summary = json.loads(result.stdout)
    assert summary["checks"] == EXPECTED_CHECKS
    assert summary["counterparties"] > 0
    assert summary["positions"] > 0
    assert summary["created_id"].startswith("finsync:")


@pytest.mark.parametrize("module", ["httpx", "openapi_python_client", "tesoro_client"])
def test_the_generator_stays_out_of_the_service_environment(module: str) -> None:
    # They belong to .gen/venv only; tesoro itself speaks httpx2.
    assert importlib.util.find_spec(module) is None
