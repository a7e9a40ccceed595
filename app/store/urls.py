"""Database URLs as settings give them, as the async drivers need them, and as logs show them."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

# What a settings URL's scheme means, and the async driver that serves it.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


class DatabaseUrlError(ValueError):
    """A database URL tesoro cannot use; the message never holds the password."""


def async_url(url: str) -> URL:
    """The URL with the async driver of its engine: `sqlite:///tesoro.db` is read by aiosqlite,
    `postgresql://` by asyncpg."""
    try:
        parsed = make_url(url.strip())
    except ArgumentError:
        raise DatabaseUrlError(
            "not a database URL: expected sqlite:///<file> or postgresql://<host>/<database>"
        ) from None
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        raise DatabaseUrlError(
            f"unsupported database {parsed.drivername!r}: use sqlite:/// or postgresql://"
        )
    return parsed.set(drivername=driver)


def shown(url: str | URL) -> str:
    """The URL as a log line or an error may show it: the password hidden."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url.strip())
    except ArgumentError:
        return "<unparsable database URL>"
    return parsed.render_as_string(hide_password=True)


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL (None for an in-memory database)."""
    if not is_sqlite(url) or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)
