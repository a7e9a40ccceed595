"""API test fixtures: the real app over in-process simulators tests can fault and count."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from app.main import create_app
from app.sandbox import Faults, create_finqware_app, create_finsync_app
from app.sandbox.wiring import sandbox_transport
from app.settings import Settings

READ_KEY = "reader-key-0123456789"
WRITE_KEY = "writer-key-0123456789"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Simulators:
    finsync: Starlette
    finqware: Starlette

    @property
    def finsync_faults(self) -> Faults:
        faults: Faults = self.finsync.state.faults
        return faults

    @property
    def finqware_faults(self) -> Faults:
        faults: Faults = self.finqware.state.faults
        return faults

    def finsync_calls(self, route: str = "GET /api/clients") -> int:
        count: int = self.finsync.state.calls[route]
        return count

    def finqware_calls(self, route: str = "POST /v1/balances/get") -> int:
        count: int = self.finqware.state.calls[route]
        return count

    def consent_calls(self, key: str, route: str = "POST /v1/balances/get") -> int:
        """Calls Finqware received for one consent (one bank connection)."""
        count: int = self.finqware.state.calls_by_consent[route, key]
        return count


@pytest.fixture
def simulators() -> Simulators:
    return Simulators(finsync=create_finsync_app(), finqware=create_finqware_app())


MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client(simulators: Simulators) -> Iterator[MakeClient]:
    """Builds a started app on the sandbox with the given setting overrides."""
    opened: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        settings = Settings(_env_file=None, sandbox=True, **overrides)
        app = create_app(
            settings, transport=sandbox_transport(simulators.finsync, simulators.finqware)
        )
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()


@pytest.fixture
def authed_client(make_client: MakeClient) -> TestClient:
    return make_client(
        api_keys={
            "reader": {"sha256": sha256(READ_KEY), "scopes": ["read"]},
            "writer": {"sha256": sha256(WRITE_KEY), "scopes": ["read", "write"]},
        }
    )
