"""The history tables (SQLAlchemy Core), one definition for SQLite and PostgreSQL.

- `observations`: one row per connection per new data state or status change, written once
  across replicas (unique `source`, `version`); `at` is the moment it speaks for (the data's
  `fetched_at`, or when a status change was seen).
- `observed_accounts`: only the accounts whose position changed in that observation (or that
  appeared, `present`, or vanished); `position` is the position's JSON with its load time left
  out, so an unchanged account costs nothing and a past answer is rebuilt byte for byte;
  `before` holds the figures it replaced.
- `observed_totals`: the connection's totals per currency, written with each observation
  whose totals may have changed (`has_totals`; none at all is an empty set).
- `checkpoints` and `checkpoint_accounts`: each connection's full state at its first data
  observation of each UTC day (which row of each present account is the latest then), so the
  state at any instant is read from the day's checkpoint and that day's rows, not from every
  row ever kept.
- `gaps`: stretches history knows it missed (observations dropped while the store was down).
- `runs`: when tesoro was running (each process's start and latest heartbeat).

Money is stored as exact decimal text: SQLite has no exact decimal type.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class Instant(TypeDecorator[datetime]):
    """An aware instant, kept in UTC: SQLite's text holds it without an offset (and sorts), so
    every value is turned to UTC going in and read back as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("history instants carry an offset")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# SQLite numbers a table's rows itself only for an INTEGER PRIMARY KEY.
Seq = BigInteger().with_variant(Integer(), "sqlite")

observations = Table(
    "observations",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False),
    Column("version", String(200), nullable=False),
    Column("at", Instant(), nullable=False),
    Column("fetched_at", Instant(), nullable=True),
    Column("observed_at", Instant(), nullable=False),
    Column("status", String(20), nullable=False),
    Column("error_code", String(50), nullable=True),
    Column("error_message", Text(), nullable=True),
    Column("data", Boolean(), nullable=False),
    # Whether its totals were written (with it: they may have changed), empty ones included.
    Column("has_totals", Boolean(), nullable=False),
    Column("warnings", Text(), nullable=True),
    UniqueConstraint("source", "version"),
    Index(None, "source", "at"),
)

observed_accounts = Table(
    "observed_accounts",
    metadata,
    Column(
        "seq",
        Seq,
        ForeignKey("observations.seq", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("counterparty_id", String(200), primary_key=True),
    Column("account_id", String(200), primary_key=True),
    Column("currency", String(16), primary_key=True),
    Column("source", String(100), nullable=False),
    Column("present", Boolean(), nullable=False),
    Column("figures_changed", Boolean(), nullable=False),
    Column("amount", Text(), nullable=True),
    Column("available", Text(), nullable=True),
    Column("credit_line", Text(), nullable=True),
    Column("meaning", String(20), nullable=True),
    Column("side", String(20), nullable=True),
    Column("as_of", Instant(), nullable=True),
    Column("position", Text(), nullable=True),
    Column("before", Text(), nullable=True),
    # What a listing reads besides the figures, beside the JSON so a past state is listed
    # without reading it (null in rows written before revision 0002: read from the JSON).
    Column("kind", String(20), nullable=True),
    Column("counterparty_name", Text(), nullable=True),
    Column("account_name", Text(), nullable=True),
    Index(
        "ix_observed_accounts_account_seq",
        "source",
        "counterparty_id",
        "account_id",
        "currency",
        "seq",
    ),
)

observed_totals = Table(
    "observed_totals",
    metadata,
    Column(
        "seq",
        Seq,
        ForeignKey("observations.seq", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("currency", String(16), primary_key=True),
    Column("assets", Text(), nullable=False),
    Column("liabilities", Text(), nullable=False),
    Column("net", Text(), nullable=False),
    Column("cash", Text(), nullable=False),
    Column("overdraft", Text(), nullable=False),
    Column("receivable", Text(), nullable=False),
    Column("payable", Text(), nullable=False),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column(
        "seq",
        Seq,
        ForeignKey("observations.seq", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("source", String(100), nullable=False),
    Column("at", Instant(), nullable=False),
    Index(None, "source", "seq"),
)

checkpoint_accounts = Table(
    "checkpoint_accounts",
    metadata,
    Column(
        "seq",
        Seq,
        ForeignKey("checkpoints.seq", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("counterparty_id", String(200), primary_key=True),
    Column("account_id", String(200), primary_key=True),
    Column("currency", String(16), primary_key=True),
    # The observation whose row of this account is the latest at the checkpoint.
    Column("row_seq", Seq, nullable=False),
)

gaps = Table(
    "gaps",
    metadata,
    Column("id", Seq, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False),
    Column("started_at", Instant(), nullable=False),
    Column("ended_at", Instant(), nullable=False),
    Column("reason", String(50), nullable=False),
    Column("dropped", Integer(), nullable=False),
    Index(None, "source", "started_at"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("started_at", Instant(), nullable=False),
    Column("last_seen_at", Instant(), nullable=False),
    Column("stopped_at", Instant(), nullable=True),
    Index(None, "started_at"),
)
