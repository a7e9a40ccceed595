"""The `tesoro` command: serve the service, serve the simulators, export the OpenAPI spec."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsError

from app.settings import ConfigurationError, Settings, describe_invalid, describe_unparsable


def _settings(*, sandbox: bool) -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        raise SystemExit(f"tesoro: invalid configuration:\n{describe_invalid(exc)}") from None
    except SettingsError as exc:
        # A value that is not the JSON the variable needs: one line naming it, no traceback
        # (and never the value, which may be a secret).
        raise SystemExit(f"tesoro: invalid configuration:\n{describe_unparsable(exc)}") from None
    return settings.model_copy(update={"sandbox": True}) if sandbox else settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.logs import uvicorn_log_config
    from app.main import create_app
    from app.server import limited_protocol

    settings = _settings(sandbox=args.sandbox)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        app = create_app(settings)
    except ConfigurationError as exc:
        print(f"tesoro: cannot start: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        # httptools, with the header size and time limits it lacks.
        http=limited_protocol(),
        log_level=settings.log_level,
        proxy_headers=True,
        server_header=False,
        log_config=uvicorn_log_config(),
    )
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    from app.sandbox.serve import serve_simulators

    logging.basicConfig(level=logging.INFO)
    asyncio.run(serve_simulators(args.host, args.finsync_port, args.finqware_port))
    return 0


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
    """
    return _DefaultSettings(sandbox=True, **overrides)


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tesoro", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service with uvicorn")
    serve.add_argument("--sandbox", action="store_true", help="serve the built-in simulators")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(run=_serve)

    sandbox = commands.add_parser("sandbox", help="serve the two simulators on their own ports")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--finsync-port", type=int, default=8101)
    sandbox.add_argument("--finqware-port", type=int, default=8102)
    sandbox.set_defaults(run=_sandbox)

    spec = commands.add_parser("openapi", help="write the OpenAPI document")
    spec.add_argument("--output", default="-", help="file to write, or - for stdout")
    spec.set_defaults(run=_openapi)

    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result
