"""Serves the FinSync, Finqware and rate-source simulators side by side with uvicorn."""

import asyncio
import hashlib
import json
import shlex
from collections.abc import Mapping
from pathlib import Path

import uvicorn

from app.sandbox.data import (
    EXPIRED_CONSENT_KEYS,
    FINQWARE_CLIENT_ID,
    FINQWARE_CLIENT_SECRET,
    FINSYNC_API_KEY,
    FINSYNC_COMPANY_ID,
    SANDBOX_CALLER_KEY,
    SANDBOX_CONSENTS,
)
from app.sandbox.faults import FAULTS_PATH
from app.sandbox.finqware import create_finqware_app
from app.sandbox.finsync import create_finsync_app
from app.sandbox.moves import BalanceMoves
from app.sandbox.wiring import rate_simulators

_STARTUP_POLL_SECONDS = 0.02


# The first line of an env file `tesoro sandbox` writes: only such a file is ever replaced.
ENV_FILE_MARK = "# Written by `tesoro sandbox`: settings for tesoro serve against its simulators."


async def serve_simulators(
    host: str,
    finsync_port: int,
    finqware_port: int,
    *,
    env_file: Path | None = None,
    print_env: bool = False,
    rate_ports: Mapping[str, int] | None = None,
    moves_seconds: float = 20.0,
) -> None:
    """Serve the simulators until stopped, printing their URLs and sandbox credentials.

    The rate sources' simulators (BCRA, BNR, ECB, dolarapi) are served beside FinSync and
    Finqware, each on its port in `rate_ports` (by source name; a free one by default).
    A port of 0 picks a free one; the printed URLs (and the env file) show the ports
    actually bound. `env_file` gets the settings tesoro needs for them, a caller key
    included; `print_env` prints only `export` lines for them instead of the banner.
    Raises FileExistsError, before serving, for an `env_file` it did not write itself.
    The balances move every `moves_seconds` (0: never; see `app.sandbox.moves`).
    """
    if env_file is not None:
        _check_replaceable(env_file)
    rates = rate_simulators()
    ports = dict(rate_ports or {})
    finsync, finqware = create_finsync_app(), create_finqware_app()
    moves = BalanceMoves(finsync.state.store, finqware.state.store)
    servers = [
        # Logging is the caller's (`tesoro sandbox` configures tesoro's): uvicorn's own
        # configuration would add its plain handlers beside it.
        uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None, log_level=None))
        for app, port in (
            (finsync, finsync_port),
            (finqware, finqware_port),
            *((app, ports.get(name, 0)) for name, app in rates.items()),
        )
    ]
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    moving = asyncio.create_task(moves.run(moves_seconds)) if moves_seconds > 0 else None
    try:
        while not all(server.started for server in servers):
            if any(task.done() for task in tasks):
                break  # one could not start; its error is raised below
            await asyncio.sleep(_STARTUP_POLL_SECONDS)
        else:
            finsync_url, finqware_url, *rate_urls = (_url(host, server) for server in servers)
            rate_url_of = dict(zip(rates, rate_urls, strict=True))
            settings = sandbox_env(finsync_url, finqware_url, rate_url_of)
            if env_file is not None:
                write_env_file(env_file, settings)
            if print_env:
                print(export_lines(settings), flush=True)
            else:
                print(sandbox_banner(finsync_url, finqware_url, rate_url_of), flush=True)
                if env_file is not None:
                    print(f"\nWrote these settings to {env_file}", flush=True)
        # asyncio.wait, unlike gather, does not cancel the servers when this task is
        # cancelled, so the finally clause below can still shut them down cleanly.
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if moving is not None:
            moving.cancel()
        for server in servers:
            server.should_exit = True
        await asyncio.wait(tasks)
    for task in tasks:
        task.result()


def _url(host: str, server: uvicorn.Server) -> str:
    port = server.servers[0].sockets[0].getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def sandbox_env(
    finsync_url: str, finqware_root_url: str, rate_urls: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The TESORO_* settings that point tesoro serve at these simulators (the rate sources'
    too, by source name), with a caller key (`SANDBOX_CALLER_KEY`, read and write scopes) so
    the served API can be called at once."""
    consents = [consent.as_setting() for consent in SANDBOX_CONSENTS]
    caller = hashlib.sha256(SANDBOX_CALLER_KEY.encode()).hexdigest()
    return {
        "TESORO_FINSYNC_BASE_URL": finsync_url,
        "TESORO_FINSYNC_API_KEY": FINSYNC_API_KEY,
        "TESORO_FINQWARE_BASE_URL": f"{finqware_root_url}/v1",
        "TESORO_FINQWARE_CLIENT_ID": FINQWARE_CLIENT_ID,
        "TESORO_FINQWARE_CLIENT_SECRET": FINQWARE_CLIENT_SECRET,
        "TESORO_FINQWARE_CONSENTS": json.dumps(consents, ensure_ascii=False),
        "TESORO_API_KEYS": json.dumps({"sandbox": {"sha256": caller, "scopes": ["read", "write"]}}),
        **{
            f"TESORO_FX_{name.upper()}_BASE_URL": url
            for name, url in sorted((rate_urls or {}).items())
        },
    }


def export_lines(settings: dict[str, str]) -> str:
    """`export NAME='value'` lines a POSIX shell can source."""
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in settings.items())


def _check_replaceable(path: Path) -> None:
    if path.exists():
        with path.open(encoding="utf-8") as existing:
            first = existing.readline().rstrip("\n")
        if first != ENV_FILE_MARK:
            raise FileExistsError(
                f"{path} exists and was not written by tesoro sandbox; "
                "choose another --env-file or remove it"
            )


def write_env_file(path: Path, settings: dict[str, str]) -> None:
    """The settings as a `.env` file (single-quoted values, as python-dotenv reads them)."""
    _check_replaceable(path)
    lines = [
        ENV_FILE_MARK,
        f"# Call the API with: Authorization: Bearer {SANDBOX_CALLER_KEY}",
        *(f"{name}='{value}'" for name, value in settings.items()),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def sandbox_banner(
    finsync_url: str, finqware_root_url: str, rate_urls: Mapping[str, str] | None = None
) -> str:
    """What a person needs to point a client at the simulators (all values are public fakes).

    ``finqware_root_url`` is the server's root; the API itself answers under ``/v1``.
    """
    finqware_url = f"{finqware_root_url}/v1"
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
        *(
            f"{name.upper()} rate simulator: {url}"
            for name, url in sorted((rate_urls or {}).items())
        ),
        f"Faults (no auth): GET/PUT {finsync_url}{FAULTS_PATH}",
        f"                  GET/PUT {finqware_root_url}{FAULTS_PATH}",
        *(
            f"                  GET/PUT {url}{FAULTS_PATH}"
            for _, url in sorted((rate_urls or {}).items())
        ),
        '  e.g. curl -X PUT -d \'{"mode": "error", "remaining": 1}\' <URL above>',
        '  Finqware, some consents only: {"mode": "timeout", "consents": ["ing-ops"]}',
        "",
        "For tesoro (or run tesoro sandbox --env-file .env, then tesoro serve):",
        *(
            f"  {name}='{value}'" if name.endswith(("_CONSENTS", "_KEYS")) else f"  {name}={value}"
            for name, value in sandbox_env(finsync_url, finqware_root_url, rate_urls).items()
        ),
        f"  then call it with: Authorization: Bearer {SANDBOX_CALLER_KEY}",
    ]
    return "\n".join(lines)
