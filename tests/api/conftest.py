"""API test fixtures: the real app over in-process simulators tests can fault and count."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.support.apps import MakeClient, opened_clients, sandbox_app
from tests.support.keys import reader_and_writer
from tests.support.simulators import Simulators


@pytest.fixture
def simulators() -> Simulators:
    return Simulators.fresh()


@pytest.fixture
def make_client(simulators: Simulators) -> Iterator[MakeClient]:
    """Builds a started app on the sandbox with the given setting overrides."""
    with opened_clients() as open_client:

        def make(**overrides: Any) -> TestClient:
            return open_client(sandbox_app(simulators, **overrides))

        yield make


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()


@pytest.fixture
def authed_client(make_client: MakeClient) -> TestClient:
    return make_client(api_keys=reader_and_writer())
