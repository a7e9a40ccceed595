"""Integer query parameters are read only as written in ASCII digits: Python's own reading
would take `1_000`, Arabic-Indic digits or surrounding spaces as numbers without a word."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient


@pytest.mark.parametrize("route", ["/positions", "/counterparties"])
@pytest.mark.parametrize("name", ["page", "page_size"])
@pytest.mark.parametrize(
    "written",
    # underscores; Arabic-Indic, Persian and fullwidth digits; spaces; a sign; other notations
    ["1_0", "\u0661\u0662", "\u06f1\u06f2", "\uff11\uff12", " 12", "12 ", "+12", "0x1", "1e1"],
)
def test_an_integer_not_written_in_ascii_digits_is_a_422(
    client: TestClient, route: str, name: str, written: str
) -> None:
    response = client.get(route, params={name: written})
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "/problems/validation-error"
    [error] = problem["errors"]
    assert error["location"] == ["query", name]
    assert error["type"] == "ascii_integer"


@pytest.mark.parametrize("route", ["/positions", "/counterparties"])
def test_integers_in_ascii_digits_are_read_as_before(client: TestClient, route: str) -> None:
    body = client.get(route, params={"page": "02", "page_size": "3"}).json()
    assert (body["page"], body["page_size"]) == (2, 3)


def test_bounds_still_apply_to_ascii_integers(client: TestClient) -> None:
    response = client.get("/positions", params={"page": "-1"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["type"] == "greater_than_equal"
