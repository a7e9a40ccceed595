"""Fixtures for the sandbox simulator tests: fresh apps and clients wired in-process."""

from collections.abc import AsyncIterator

import httpx2
import pytest
from starlette.applications import Starlette

from app.sandbox import (
    FINQWARE_CLIENT_ID,
    FINQWARE_CLIENT_SECRET,
    FINSYNC_API_KEY,
    SANDBOX_CONSENTS,
    create_finqware_app,
    create_finsync_app,
)

FINSYNC_BASE_URL = "http://finsync.sandbox"
FINQWARE_BASE_URL = "http://finqware.sandbox/v1"


def consent(key: str) -> dict[str, str]:
    """A valid Finqware request body for one sandbox consent."""
    found = next(c for c in SANDBOX_CONSENTS if c.key == key)
    return {
        "client_id": FINQWARE_CLIENT_ID,
        "client_secret": FINQWARE_CLIENT_SECRET,
        "credentials_id": found.credentials_id,
        "access_token": found.access_token,
        "tenant_user_id": found.tenant_user_id,
    }


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
        base_url=FINSYNC_BASE_URL,
        headers={"x-api-key": FINSYNC_API_KEY},
    ) as client:
        yield client


@pytest.fixture
async def finqware(finqware_app: Starlette) -> AsyncIterator[httpx2.AsyncClient]:
    """A client of the Finqware simulator; secrets go in each request's body."""
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=finqware_app), base_url=FINQWARE_BASE_URL
    ) as client:
        yield client
