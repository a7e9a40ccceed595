"""A bug of tesoro's: one logged 500 problem, never blamed on an upstream, never logged twice."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.settings import Settings


def boom() -> None:
    raise RuntimeError("a bug of ours, with secret-looking text sk_live_123")


def test_an_unexpected_error_is_one_logged_500_problem(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(_env_file=None, sandbox=True))
    app.add_api_route("/boom", boom)
    # raise_server_exceptions: were the error re-raised past the middleware (and so logged a
    # second time by the server), the client would raise here.
    with TestClient(app, raise_server_exceptions=True) as client, caplog.at_level(logging.INFO):
        response = client.get("/boom")
        metrics = client.get("/metrics").text
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/internal-error"
    assert "sk_live_123" not in response.text  # the message stays in the log
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert 'tesoro_http_requests_total{method="GET",route="/boom",status="500"} 1.0' in metrics
