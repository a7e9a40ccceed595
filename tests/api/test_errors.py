"""Every error is RFC 9457 problem+json, and nothing unexpected leaks a stack trace."""

from __future__ import annotations

from starlette.testclient import TestClient

from app.main import create_app
from app.settings import Settings


def test_unknown_route_is_a_404_problem(client: TestClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert set(problem) >= {"type", "title", "status", "detail"}
    assert problem["status"] == 404


def test_wrong_method_is_a_405_problem(client: TestClient) -> None:
    response = client.delete("/positions")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert "GET" in response.headers["allow"]


def test_a_405_allows_every_method_of_the_path(client: TestClient) -> None:
    response = client.request("OPTIONS", "/counterparties")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


def test_unexpected_exception_is_a_500_problem_without_details() -> None:
    app = create_app(Settings(_env_file=None, sandbox=True))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret-internal-detail at line 42")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret-internal-detail" not in response.text
    assert "Traceback" not in response.text
    assert response.json()["status"] == 500
