"""tesoro apps for tests: on the sandbox, or wired by hand to the sandbox's credentials and
consents (with expiries, which the sandbox wiring never sets), and started test clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import datetime
from typing import Any

import httpx2
from fastapi import FastAPI
from pydantic import SecretStr
from starlette.testclient import TestClient

from app.main import create_app
from app.sandbox import FINQWARE_CLIENT_ID, FINQWARE_CLIENT_SECRET, FINSYNC_API_KEY
from app.sandbox.wiring import FINQWARE_SANDBOX_URL, FINSYNC_SANDBOX_URL, sandbox_settings
from app.settings import ConsentSettings, Settings
from tests.support.simulators import Simulators

MakeClient = Callable[..., TestClient]
"""Builds a started client of an app on the sandbox, given setting overrides."""

Expiries = Mapping[str, datetime | None]
"""When each sandbox consent (by key) expires; a consent left out has no expiry."""


def sandbox_app(
    simulators: Simulators | None = None,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    **overrides: Any,
) -> FastAPI:
    """The app as ``--sandbox`` builds it, with the given settings overrides; it calls
    `transport` if given, else `simulators`, else simulators of its own."""
    if transport is None and simulators is not None:
        transport = simulators.transport()
    return create_app(Settings(_env_file=None, sandbox=True, **overrides), transport=transport)


def sandbox_consents(expiries: Expiries | None = None) -> list[ConsentSettings]:
    """The sandbox's consents as its wiring sets them, each with its expiry from `expiries`."""
    expiries = expiries or {}
    wired = sandbox_settings(Settings(_env_file=None, sandbox=True)).finqware_consents
    return [
        consent.model_copy(update={"expires_at": expiries.get(consent.key)}) for consent in wired
    ]


def upstream_settings(
    finsync_url: str, finqware_url: str, *, expiries: Expiries | None = None, **overrides: Any
) -> Settings:
    """Settings wired by hand (no ``sandbox``) to a FinSync and a Finqware API at the given
    URLs, with the sandbox's credentials and consents, then the given overrides."""
    return Settings(
        _env_file=None,
        finsync_base_url=finsync_url,
        finsync_api_key=SecretStr(FINSYNC_API_KEY),
        finqware_base_url=finqware_url,
        finqware_client_id=FINQWARE_CLIENT_ID,
        finqware_client_secret=SecretStr(FINQWARE_CLIENT_SECRET),
        finqware_consents=sandbox_consents(expiries),
        **overrides,
    )


def wired_app(
    simulators: Simulators, *, expiries: Expiries | None = None, **overrides: Any
) -> FastAPI:
    """The app on the in-process simulators through `upstream_settings`, so its consents can
    expire."""
    settings = upstream_settings(
        FINSYNC_SANDBOX_URL, FINQWARE_SANDBOX_URL, expiries=expiries, **overrides
    )
    return create_app(settings, transport=simulators.transport())


@contextmanager
def opened_clients() -> Iterator[Callable[[FastAPI], TestClient]]:
    """Opens a started client of each app it is given (a server error is a 500 answer, as a
    caller sees it); every one is closed when the block ends."""
    with ExitStack() as stack:

        def open_client(app: FastAPI) -> TestClient:
            return stack.enter_context(TestClient(app, raise_server_exceptions=False))

        yield open_client
