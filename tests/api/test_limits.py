"""Whom a request counts against for the per-caller limit: its API key's name, else the
client's address."""

from __future__ import annotations

from typing import Any

from app.api.edge.limits import caller_of
from app.settings import Settings
from tests.support.keys import READ_KEY, WRITE_KEY, reader_and_writer


def scope(authorization: str | None = None, client: str = "10.0.0.7") -> dict[str, Any]:
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    return {"type": "http", "headers": headers, "client": (client, 50123), "path": "/positions"}


def keyed() -> Settings:
    return Settings(_env_file=None, sandbox=True, api_keys=reader_and_writer())


def test_a_caller_with_a_valid_key_is_its_key_wherever_it_calls_from() -> None:
    settings = keyed()
    assert caller_of(settings, scope(f"Bearer {READ_KEY}")) == "key:reader"
    assert caller_of(settings, scope(f"bearer {READ_KEY}", client="10.0.0.8")) == "key:reader"
    assert caller_of(settings, scope(f"Bearer {WRITE_KEY}")) == "key:writer"


def test_a_missing_or_unknown_key_counts_against_the_client_address() -> None:
    settings = keyed()
    assert caller_of(settings, scope()) == "address:10.0.0.7"
    assert caller_of(settings, scope("Bearer not-a-key")) == "address:10.0.0.7"
    assert caller_of(settings, scope(f"Basic {READ_KEY}")) == "address:10.0.0.7"


def test_without_authentication_every_caller_is_its_address() -> None:
    settings = Settings(_env_file=None, sandbox=True)
    assert not settings.auth_required
    assert caller_of(settings, scope(f"Bearer {READ_KEY}")) == "address:10.0.0.7"
    assert caller_of(settings, scope(client="10.0.0.9")) == "address:10.0.0.9"
