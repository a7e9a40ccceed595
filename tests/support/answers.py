"""Reading tesoro's answers in tests: a 200 with its JSON body, or the test fails there."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient


def ok_json(client: TestClient, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def positions(client: TestClient, **params: Any) -> dict[str, Any]:
    return ok_json(client, "/positions", **params)
