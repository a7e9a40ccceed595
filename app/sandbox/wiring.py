"""Wiring of the simulators into tesoro: sandbox settings and the in-process transport."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

import httpx2
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.types import ASGIApp

from app.settings import ConsentSettings, Settings

if TYPE_CHECKING:
    from app.sandbox.moves import BalanceMoves

FINSYNC_SANDBOX_URL = "http://finsync.sandbox"
FINQWARE_SANDBOX_URL = "http://finqware.sandbox/v1"
# The rate sources' simulators, by source name.
RATE_SANDBOX_URLS: dict[str, str] = {
    "bcra": "http://bcra.sandbox",
    "bnr": "http://bnr.sandbox",
    "ecb": "http://ecb.sandbox",
    "dolarapi": "http://dolarapi.sandbox",
}


def sandbox_settings(settings: Settings) -> Settings:
    """The settings with every upstream pointed at the in-process simulators."""
    from app.sandbox.data import (
        FINQWARE_CLIENT_ID,
        FINQWARE_CLIENT_SECRET,
        FINSYNC_API_KEY,
        SANDBOX_CONSENTS,
    )

    return settings.model_copy(
        update={
            "finsync_base_url": FINSYNC_SANDBOX_URL,
            "finsync_api_key": SecretStr(FINSYNC_API_KEY),
            "finqware_base_url": FINQWARE_SANDBOX_URL,
            "finqware_client_id": FINQWARE_CLIENT_ID,
            "finqware_client_secret": SecretStr(FINQWARE_CLIENT_SECRET),
            "finqware_consents": [
                ConsentSettings.model_validate(consent.as_setting()) for consent in SANDBOX_CONSENTS
            ],
            **{f"fx_{name}_base_url": url for name, url in RATE_SANDBOX_URLS.items()},
        }
    )


class HostRouterTransport(httpx2.AsyncBaseTransport):
    """Sends each request to the ASGI app serving its host, as if over the network.

    An exception inside a simulator becomes a dropped connection
    (``RemoteProtocolError``), which is what a caller of a real server would see.
    """

    def __init__(self, apps: Mapping[str, ASGIApp]) -> None:
        self._transports = {host: httpx2.ASGITransport(app=app) for host, app in apps.items()}

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        transport = self._transports.get(request.url.host)
        if transport is None:
            raise httpx2.ConnectError(f"no sandbox host {request.url.host}", request=request)
        # ASGITransport ignores time-outs (they live in the network layer): enforce the
        # client's read time-out here so a slow simulator behaves like a slow server.
        timeouts = request.extensions.get("timeout", {})
        read_timeout = timeouts.get("read") if isinstance(timeouts, dict) else None
        try:
            async with asyncio.timeout(read_timeout):
                return await transport.handle_async_request(request)
        except TimeoutError as exc:
            raise httpx2.ReadTimeout("timed out waiting for the sandbox", request=request) from exc
        except httpx2.HTTPError:
            raise
        except Exception as exc:
            raise httpx2.RemoteProtocolError(
                "server closed the connection", request=request
            ) from exc

    async def aclose(self) -> None:
        for transport in self._transports.values():
            await transport.aclose()


def rate_simulators() -> dict[str, Starlette]:
    """Fresh simulators of the four rate sources, by source name."""
    from app.sandbox.bcra import create_bcra_app
    from app.sandbox.bnr import create_bnr_app
    from app.sandbox.dolarapi import create_dolarapi_app
    from app.sandbox.ecb import create_ecb_app

    return {
        "bcra": create_bcra_app(),
        "bnr": create_bnr_app(),
        "ecb": create_ecb_app(),
        "dolarapi": create_dolarapi_app(),
    }


def sandbox_transport(
    finsync_app: ASGIApp | None = None,
    finqware_app: ASGIApp | None = None,
    *,
    rate_apps: Mapping[str, ASGIApp] | None = None,
) -> HostRouterTransport:
    """A transport to fresh simulators (or the given ones) on the sandbox hosts."""
    from app.sandbox.finqware import create_finqware_app
    from app.sandbox.finsync import create_finsync_app

    given = dict(rate_apps or {})
    rates: dict[str, ASGIApp] = {
        **({} if set(given) >= set(RATE_SANDBOX_URLS) else rate_simulators()),
        **given,
    }
    return HostRouterTransport(
        {
            httpx2.URL(FINSYNC_SANDBOX_URL).host: finsync_app or create_finsync_app(),
            httpx2.URL(FINQWARE_SANDBOX_URL).host: finqware_app or create_finqware_app(),
            **{httpx2.URL(RATE_SANDBOX_URLS[name]).host: app for name, app in rates.items()},
        }
    )


def moving_sandbox() -> tuple[HostRouterTransport, BalanceMoves]:
    """A transport to fresh simulators, and the moves of their balances (`tesoro serve
    --sandbox` runs them; tests build their simulators still)."""
    from app.sandbox.finqware import create_finqware_app
    from app.sandbox.finsync import create_finsync_app
    from app.sandbox.moves import BalanceMoves

    finsync, finqware = create_finsync_app(), create_finqware_app()
    moves = BalanceMoves(finsync.state.store, finqware.state.store)
    return sandbox_transport(finsync, finqware), moves
