"""Serves the FinSync and Finqware simulators side by side with uvicorn."""

import asyncio
import json

import uvicorn

from app.sandbox.data import (
    EXPIRED_CONSENT_KEYS,
    FINQWARE_CLIENT_ID,
    FINQWARE_CLIENT_SECRET,
    FINSYNC_API_KEY,
    FINSYNC_COMPANY_ID,
    SANDBOX_CONSENTS,
)
from app.sandbox.faults import FAULTS_PATH
from app.sandbox.finqware import create_finqware_app
from app.sandbox.finsync import create_finsync_app

_STARTUP_POLL_SECONDS = 0.02


async def serve_simulators(host: str, finsync_port: int, finqware_port: int) -> None:
    """Serve both simulators until stopped, printing their URLs and sandbox credentials.

    A port of 0 picks a free one; the printed URLs show the ports actually bound.
    """
    servers = [
        uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info"))
        for app, port in (
            (create_finsync_app(), finsync_port),
            (create_finqware_app(), finqware_port),
        )
    ]
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    try:
        while not all(server.started for server in servers):
            if any(task.done() for task in tasks):
                break  # one could not start; its error is raised below
            await asyncio.sleep(_STARTUP_POLL_SECONDS)
        else:
            finsync_url, finqware_url = (_url(host, server) for server in servers)
            print(sandbox_banner(finsync_url, finqware_url), flush=True)
        # asyncio.wait, unlike gather, does not cancel the servers when this task is
        # cancelled, so the finally clause below can still shut them down cleanly.
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.wait(tasks)
    for task in tasks:
        task.result()


def _url(host: str, server: uvicorn.Server) -> str:
    port = server.servers[0].sockets[0].getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def sandbox_banner(finsync_url: str, finqware_root_url: str) -> str:
    """What a person needs to point a client at the simulators (all values are public fakes).

    ``finqware_root_url`` is the server's root; the API itself answers under ``/v1``.
    """
    finqware_url = f"{finqware_root_url}/v1"
    consents = [consent.as_setting() for consent in SANDBOX_CONSENTS]
    lines = [
        f"FinSync simulator:  {finsync_url}",
        f"  x-api-key: {FINSYNC_API_KEY}  (company {FINSYNC_COMPANY_ID})",
        f"Finqware simulator: {finqware_url}",
        f"  client_id: {FINQWARE_CLIENT_ID}",
        f"  client_secret: {FINQWARE_CLIENT_SECRET}",
        "  consents:",
        *(
            f"    {c.key}: credentials_id={c.credentials_id} access_token={c.access_token} "
            f"tenant_user_id={c.tenant_user_id}"
            + (
                "  (expired: answers 401 expired_credentials)"
                if c.key in EXPIRED_CONSENT_KEYS
                else ""
            )
            for c in SANDBOX_CONSENTS
        ),
        f"Faults (no auth): GET/PUT {finsync_url}{FAULTS_PATH}",
        f"                  GET/PUT {finqware_root_url}{FAULTS_PATH}",
        '  e.g. curl -X PUT -d \'{"mode": "error", "remaining": 1}\' <URL above>',
        "",
        "For tesoro:",
        f"  TESORO_FINSYNC_BASE_URL={finsync_url}",
        f"  TESORO_FINSYNC_API_KEY={FINSYNC_API_KEY}",
        f"  TESORO_FINQWARE_BASE_URL={finqware_url}",
        f"  TESORO_FINQWARE_CLIENT_ID={FINQWARE_CLIENT_ID}",
        f"  TESORO_FINQWARE_CLIENT_SECRET={FINQWARE_CLIENT_SECRET}",
        f"  TESORO_FINQWARE_CONSENTS='{json.dumps(consents, ensure_ascii=False)}'",
    ]
    return "\n".join(lines)
