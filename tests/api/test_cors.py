"""Browsers on the configured origins may call tesoro; other origins get no CORS headers."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.support.apps import MakeClient

APP = "https://treasury.example.com"


@pytest.fixture
def browser_client(make_client: MakeClient) -> TestClient:
    return make_client(cors_origins=[APP + "/"])


def test_a_preflight_from_an_allowed_origin_is_answered(browser_client: TestClient) -> None:
    response = browser_client.options(
        "/counterparties",
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, idempotency-key, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    allowed = response.headers["access-control-allow-headers"].lower()
    assert {"authorization", "idempotency-key", "if-none-match", "x-request-id"} <= {
        part.strip() for part in allowed.split(",")
    }


def test_answers_expose_their_validators_to_browser_code(browser_client: TestClient) -> None:
    response = browser_client.get("/positions", headers={"Origin": APP})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    exposed = {
        p.strip().lower() for p in response.headers["access-control-expose-headers"].split(",")
    }
    assert {"etag", "location", "retry-after", "x-request-id"} <= exposed


def test_another_origin_gets_no_cors_headers(browser_client: TestClient) -> None:
    response = browser_client.get("/positions", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers


def test_without_configured_origins_there_is_no_cors(client: TestClient) -> None:
    preflight = client.options(
        "/positions", headers={"Origin": APP, "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_an_origin_with_a_path_refuses_to_start(make_client: MakeClient) -> None:
    with pytest.raises(ValueError, match="without a path"):
        make_client(cors_origins=[APP + "/app"])
