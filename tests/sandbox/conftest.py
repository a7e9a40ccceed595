"""Fixtures for the sandbox simulator tests: fresh apps and clients wired in-process."""

from collections.abc import AsyncIterator

import httpx2
import pytest
from starlette.applications import Starlette

from app.sandbox import FINSYNC_API_KEY, create_finqware_app, create_finsync_app
from app.sandbox.wiring import FINQWARE_SANDBOX_URL, FINSYNC_SANDBOX_URL


@pytest.fixture
def finsync_app() -> Starlette:
    return create_finsync_app()


@pytest.fixture
def finqware_app() -> Starlette:
    return create_finqware_app()


@pytest.fixture
async def finsync(finsync_app: Starlette) -> AsyncIterator[httpx2.AsyncClient]:
    """A client of the FinSync simulator that sends the sandbox API key."""
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=finsync_app),
        base_url=FINSYNC_SANDBOX_URL,
        headers={"x-api-key": FINSYNC_API_KEY},
    ) as client:
        yield client


@pytest.fixture
async def finqware(finqware_app: Starlette) -> AsyncIterator[httpx2.AsyncClient]:
    """A client of the Finqware simulator; secrets go in each request's body."""
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=finqware_app), base_url=FINQWARE_SANDBOX_URL
    ) as client:
        yield client
