"""The `tesoro` command: serve the service, serve the simulators, export the OpenAPI spec,
migrate the history store."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsError

from app.healthcheck import DEFAULT_HOST, DEFAULT_PORT
from app.settings import (
    ConfigurationError,
    Settings,
    describe_invalid,
    describe_unparsable,
    unknown_setting_names,
)

logger = logging.getLogger("app")

# The exit status of every configuration tesoro refuses to run (invalid or incomplete
# settings, a missing extra, a missing --env-file), as argparse exits for a bad command line:
# one status to tell "fix the configuration" from a crash (1).
CONFIGURATION_ERROR = 2


class _RefusedError(Exception):
    """A configuration tesoro will not run; the message is what the operator reads."""


def _settings(*, sandbox: bool, env_file: Path | None = None) -> Settings:
    try:
        settings = Settings() if env_file is None else Settings(_env_file=env_file)
    except ValidationError as exc:
        raise _RefusedError(f"invalid configuration:\n{describe_invalid(exc)}") from None
    except SettingsError as exc:
        # A value the settings' reader could not take at all: one line naming it, no
        # traceback (and never the value, which may be a secret).
        raise _RefusedError(f"invalid configuration:\n{describe_unparsable(exc)}") from None
    return settings.model_copy(update={"sandbox": True}) if sandbox else settings


def _warn_unknown_names(env_file: Path) -> None:
    """A TESORO_* name tesoro does not read is a typo until proven otherwise: said at start."""
    for name, nearest in unknown_setting_names(os.environ, env_file):
        hint = f"; did you mean {nearest}?" if nearest else ""
        logger.warning(
            "%s is not a setting tesoro reads: it is ignored%s",
            name,
            hint,
            extra={"variable": name, "nearest": nearest},
        )


# Addresses that mean "every interface": no client can use them, so the spec's `servers`
# entry is left relative (to wherever the spec was fetched from) instead.
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 (compared, never bound)
SWITCH_INTERVAL_SECONDS = 0.001
# A full collection at most once every this many collections of the middle generation
# (Python's default is 10). See `settle_collector`.
FULL_COLLECTION_EVERY = 100


def settle_collector() -> None:
    """What is alive at start-up (modules, settings, the app) is frozen out of every later
    collection: without it, the collections a cold load of 50,000 clients causes walked it
    again and again (2.1 s of them, bench/README.md). The snapshots need nothing more: their
    Structs are never tracked by the collector.

    Then a full (generation 2) collection comes once every `FULL_COLLECTION_EVERY` middle
    ones, not every 10: with the snapshots untracked, what the collector holds as long-lived
    is small, so Python's other condition (a quarter more long-lived objects) never held
    the full ones back, and a 50,000-client reload ran 9 of them, 20 to 370 ms each, every
    one a stall of the event loop whichever thread ran it; now it runs one (bench/README.md,
    "Full collections during a reload"). Young and middle collections are unchanged."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


def _served_base_url(host: str, port: int) -> str | None:
    if host in _WILDCARD_HOSTS:
        return None
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.logs import configure_logging
    from app.main import create_app
    from app.server import limited_protocol

    env_file = Path(args.env_file) if args.env_file is not None else None
    if env_file is not None and not env_file.is_file():
        raise _RefusedError(f"cannot start: --env-file {env_file}: no such file")
    settings = _settings(sandbox=args.sandbox, env_file=env_file)
    configure_logging(settings.log_format, settings.log_level)
    _warn_unknown_names(env_file or Path(".env"))
    if settings.public_base_url is None:
        served = _served_base_url(args.host, args.port)
        settings = settings.model_copy(update={"public_base_url": served})
    try:
        app = create_app(settings)
    except ConfigurationError as exc:
        raise _RefusedError(f"cannot start: {exc}") from None
    settle_collector()
    base = _served_base_url(args.host, args.port) or f"http://127.0.0.1:{args.port}"
    logger.info(
        "tesoro %s on %s: the API browsable at %s/docs, its spec at %s/openapi.json, "
        "probes at /healthz and /readyz, metrics at /metrics",
        version("tesoro"),
        base,
        base,
        base,
        extra={"version": version("tesoro"), "url": base},
    )
    # Answers are built in worker threads: the event loop waits for the interpreter lock at
    # most this long before a builder must hand it over (Python's default is 5 ms, which
    # under two builders put tens of milliseconds on every /healthz).
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        # httptools, with the header size and time limits it lacks.
        http=limited_protocol(on_refused=app.state.metrics.observe_refused_head),
        log_level=settings.log_level,
        proxy_headers=True,
        server_header=False,
        # tesoro writes its own access line (route template, status, duration, request id)
        # and configured logging above: uvicorn's configuration would replace it.
        access_log=False,
        log_config=None,
    )
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    from app.logs import configure_logging
    from app.sandbox.serve import serve_simulators

    # A tool for a terminal: tesoro's readable lines, one per event. uvicorn's lifecycle
    # lines would come once per simulator, word for word; the banner says what they would.
    configure_logging("console", "info")
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    try:
        asyncio.run(
            serve_simulators(
                args.host,
                args.finsync_port,
                args.finqware_port,
                env_file=None if args.env_file is None else Path(args.env_file),
                print_env=args.print_env,
            )
        )
    except FileExistsError as exc:
        raise _RefusedError(str(exc)) from None
    except KeyboardInterrupt:
        pass
    return 0


# The `servers` entry of the published spec: where `make run` serves.
PUBLISHED_BASE_URL = "http://127.0.0.1:8000"


class _DefaultSettings(Settings):
    """The defaults and nothing else: no environment variable, no `.env` file."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def openapi_settings(**overrides: Any) -> Settings:
    """The settings the published spec is built from: the sandbox on defaults only.

    The spec must not depend on the machine that exports it (e.g. TESORO_PUBLIC_BASE_URL
    sets its `servers` entry), or the committed copy would differ from one host to another.
    Tests pass `overrides` (API keys) to serve that spec without the environment's say.
    History is off unless asked (the spec is the same either way): an app started to serve
    the spec never leaves a history file where it runs.
    """
    defaults: dict[str, Any] = {"public_base_url": PUBLISHED_BASE_URL, "history_enabled": False}
    return _DefaultSettings(sandbox=True, **{**defaults, **overrides})


def openapi_document() -> dict[str, object]:
    """The spec exactly as the sandbox-configured app serves it."""
    from app.main import create_app

    return create_app(openapi_settings()).openapi()


def _openapi(args: argparse.Namespace) -> int:
    text = json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    """Apply the history store's migrations (what `tesoro serve` does at start unless
    TESORO_DATABASE_MIGRATE is false); safe while replicas start or run."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.settings import database_url_shown
    from app.store.history import HistoryStore
    from app.store.urls import DatabaseUrlError

    settings = _settings(
        sandbox=False, env_file=None if args.env_file is None else Path(args.env_file)
    )
    shown = database_url_shown(settings.database_url)
    try:
        store = HistoryStore.open(settings.database_url.get_secret_value())
    except DatabaseUrlError as exc:
        raise _RefusedError(f"TESORO_DATABASE_URL: {exc}") from None

    async def upgrade() -> tuple[str | None, str | None]:
        try:
            return await store.upgrade()
        finally:
            await store.close()

    try:
        before, after = asyncio.run(upgrade())
    except (SQLAlchemyError, OSError) as exc:
        # The driver's error names the host, never the password; the URL is shown redacted.
        print(f"tesoro: history store {shown} unavailable: {type(exc).__name__}", file=sys.stderr)
        return 1
    if before == after:
        print(f"history store {shown}: at revision {after} already")
    else:
        print(f"history store {shown}: migrated from {before or 'empty'} to {after}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    formatter = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="tesoro", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the service with uvicorn",
        description="Run tesoro. Configuration comes from TESORO_* variables or ./.env.",
        formatter_class=formatter,
    )
    serve.add_argument(
        "--sandbox",
        action="store_true",
        help="serve the built-in simulators instead of the real upstreams",
    )
    serve.add_argument("--host", default=DEFAULT_HOST, help="address to listen on")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    serve.add_argument(
        "--env-file",
        default=None,
        metavar="PATH",
        help="read TESORO_* settings from PATH instead of ./.env (the environment still "
        "wins over the file); e.g. the file tesoro sandbox --env-file wrote",
    )
    serve.set_defaults(run=_serve)

    sandbox = commands.add_parser(
        "sandbox",
        help="serve the two simulators on their own ports",
        description="Serve the FinSync and Finqware simulators over HTTP, print their "
        "URLs and sandbox credentials, and optionally the settings tesoro serve needs.",
        formatter_class=formatter,
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sandbox.add_argument(
        "--finsync-port", type=int, default=8101, help="FinSync simulator's port (0: any free)"
    )
    sandbox.add_argument(
        "--finqware-port", type=int, default=8102, help="Finqware simulator's port (0: any free)"
    )
    sandbox.add_argument(
        "--env-file",
        default=None,
        metavar="PATH",
        help="write the TESORO_* settings for these simulators, a caller key included, to "
        "PATH (e.g. .env, which tesoro serve reads from its working directory); a file "
        "tesoro sandbox did not write is never replaced",
    )
    sandbox.add_argument(
        "--print-env",
        action="store_true",
        help="print only `export TESORO_...` lines for a shell, instead of the banner",
    )
    sandbox.set_defaults(run=_sandbox)

    spec = commands.add_parser(
        "openapi", help="write the OpenAPI document", formatter_class=formatter
    )
    spec.add_argument("--output", default="-", help="file to write, or - for stdout")
    spec.set_defaults(run=_openapi)

    database = commands.add_parser(
        "db",
        help="the history store",
        description="The history store (TESORO_DATABASE_URL).",
        formatter_class=formatter,
    )
    database_commands = database.add_subparsers(dest="db_command", required=True)
    database_upgrade = database_commands.add_parser(
        "upgrade",
        help="apply the history store's migrations",
        description="Bring the history store (TESORO_DATABASE_URL) to the latest schema; "
        "tesoro serve does it at start unless TESORO_DATABASE_MIGRATE is false. Several "
        "replicas may run it at once: it migrates once.",
        formatter_class=formatter,
    )
    database_upgrade.add_argument(
        "--env-file", default=None, metavar="PATH", help="read TESORO_* settings from PATH"
    )
    database_upgrade.set_defaults(run=_db_upgrade)

    args = parser.parse_args(argv)
    try:
        result: int = args.run(args)
    except _RefusedError as exc:
        print(f"tesoro: {exc}", file=sys.stderr)
        return CONFIGURATION_ERROR
    return result
