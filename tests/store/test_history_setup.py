"""Setting the history store up: its settings and their defaults, the migrations matching the
tables, `tesoro db upgrade`, and a store that cannot be reached at start (the service starts,
history waits, the password is never shown)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx2
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pydantic import ValidationError
from sqlalchemy import Connection

from app.cli import main
from app.settings import Settings, database_url_shown, secret_values
from app.store.history import HistoryStore
from app.store.tables import metadata
from tests.support.apps import sandbox_app
from tests.support.asgi import started
from tests.support.servers import free_port

PASSWORD = "pa55-w0rd-never-shown"


def test_history_is_on_by_default_as_the_contract_says() -> None:
    settings = Settings(_env_file=None, history_enabled=True)
    assert settings.database_url.get_secret_value() == "sqlite:///tesoro.db"
    assert settings.database_migrate is True
    assert settings.history_retention_days == 400
    assert (settings.observe_finsync_seconds, settings.observe_finqware_seconds) == (900, 21600)
    assert settings.timezone == "UTC"
    assert Settings.model_fields["history_enabled"].default is True


def test_the_database_url_is_a_secret_shown_without_its_password() -> None:
    url = f"postgresql://tesoro:{PASSWORD}@db:5432/tesoro"
    settings = Settings(_env_file=None, database_url=url)
    assert PASSWORD not in repr(settings) + str(settings.model_dump())
    assert database_url_shown(settings.database_url) == "postgresql://tesoro:***@db:5432/tesoro"
    assert PASSWORD in secret_values(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("database_url", f"mysql://tesoro:{PASSWORD}@db/tesoro"),
        ("timezone", "Mars/Olympus_Mons"),
        ("history_retention_days", "0"),
    ],
)
def test_a_bad_history_setting_is_refused_naming_it_without_its_value(
    name: str, value: str
) -> None:
    given: dict[str, Any] = {name: value}
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, **given)
    assert name in str(refused.value)
    assert PASSWORD not in str(refused.value)


def _differences(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), metadata))


@pytest.mark.anyio
async def test_the_migrations_build_exactly_the_tables_the_code_uses(database_url: str) -> None:
    store = HistoryStore.open(database_url)
    try:
        await store.upgrade()
        async with store.engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
    finally:
        await store.close()


def test_tesoro_db_upgrade_migrates_once_and_says_so(
    clean_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    assert (
        "history store sqlite:///tesoro.db: migrated from empty to 0002" in capsys.readouterr().out
    )
    assert main(["db", "upgrade"]) == 0
    assert "at revision 0002 already" in capsys.readouterr().out
    assert (tmp_path / "tesoro.db").exists()


def test_tesoro_db_upgrade_against_a_store_that_is_down_fails_without_the_password(
    clean_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "TESORO_DATABASE_URL", f"postgresql://tesoro:{PASSWORD}@127.0.0.1:{free_port()}/tesoro"
    )
    assert main(["db", "upgrade"]) == 1
    said = capsys.readouterr()
    assert "postgresql://tesoro:***@127.0.0.1" in said.err
    assert PASSWORD not in said.out + said.err


@pytest.mark.anyio
async def test_a_store_down_at_start_never_stops_the_service_nor_shows_its_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"postgresql://tesoro:{PASSWORD}@127.0.0.1:{free_port()}/tesoro"
    app = sandbox_app(history_enabled=True, database_url=url)
    async with (
        started(app) as running,
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=running), base_url="http://tesoro"
        ) as client,
    ):
        answer = await client.get("/positions")
        ready = await client.get("/readyz")
        past = await client.get("/positions?as_of=2026-11-01T00:00:00Z")
    assert answer.status_code == 200
    assert (ready.status_code, ready.json()["history"]) == (200, "unavailable")
    assert past.status_code == 503
    assert past.json()["type"] == "/problems/history-unavailable"
    assert PASSWORD not in caplog.text + past.text
    assert "postgresql://tesoro:***@127.0.0.1" in caplog.text
