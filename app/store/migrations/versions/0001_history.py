"""The history store: observations, the accounts that changed, totals, gaps and runs.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.store.tables import Instant

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "observations",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("at", Instant(), nullable=False),
        sa.Column("fetched_at", Instant(), nullable=True),
        sa.Column("observed_at", Instant(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error_code", sa.String(50), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("data", sa.Boolean(), nullable=False),
        sa.Column("warnings", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_observations"),
        sa.UniqueConstraint("source", "version", name="uq_observations_source_version"),
    )
    op.create_index("ix_observations_source_at", "observations", ["source", "at"])
    op.create_table(
        "observed_accounts",
        sa.Column("seq", Seq, nullable=False),
        sa.Column("counterparty_id", sa.String(200), nullable=False),
        sa.Column("account_id", sa.String(200), nullable=False),
        sa.Column("currency", sa.String(16), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("present", sa.Boolean(), nullable=False),
        sa.Column("figures_changed", sa.Boolean(), nullable=False),
        sa.Column("amount", sa.Text(), nullable=True),
        sa.Column("available", sa.Text(), nullable=True),
        sa.Column("credit_line", sa.Text(), nullable=True),
        sa.Column("meaning", sa.String(20), nullable=True),
        sa.Column("side", sa.String(20), nullable=True),
        sa.Column("as_of", Instant(), nullable=True),
        sa.Column("position", sa.Text(), nullable=True),
        sa.Column("before", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["seq"],
            ["observations.seq"],
            name="fk_observed_accounts_seq_observations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "seq", "counterparty_id", "account_id", "currency", name="pk_observed_accounts"
        ),
    )
    op.create_index(
        "ix_observed_accounts_account_seq",
        "observed_accounts",
        ["source", "counterparty_id", "account_id", "currency", "seq"],
    )
    op.create_table(
        "observed_totals",
        sa.Column("seq", Seq, nullable=False),
        sa.Column("currency", sa.String(16), nullable=False),
        *(
            sa.Column(name, sa.Text(), nullable=False)
            for name in (
                "assets",
                "liabilities",
                "net",
                "cash",
                "overdraft",
                "receivable",
                "payable",
            )
        ),
        sa.ForeignKeyConstraint(
            ["seq"],
            ["observations.seq"],
            name="fk_observed_totals_seq_observations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", "currency", name="pk_observed_totals"),
    )
    op.create_table(
        "gaps",
        sa.Column("id", Seq, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("started_at", Instant(), nullable=False),
        sa.Column("ended_at", Instant(), nullable=False),
        sa.Column("reason", sa.String(50), nullable=False),
        sa.Column("dropped", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_gaps"),
    )
    op.create_index("ix_gaps_source_started_at", "gaps", ["source", "started_at"])
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("started_at", Instant(), nullable=False),
        sa.Column("last_seen_at", Instant(), nullable=False),
        sa.Column("stopped_at", Instant(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_started_at", "runs", ["started_at"])


def downgrade() -> None:
    op.drop_table("runs")
    op.drop_table("gaps")
    op.drop_table("observed_totals")
    op.drop_table("observed_accounts")
    op.drop_table("observations")
