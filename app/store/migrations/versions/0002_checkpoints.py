"""What a listing reads, kept beside each account row's JSON (its kind and names), and
daily checkpoints: each connection's full state at its first data observation of a UTC day,
so a past state is read from one day's rows rather than from all of them. Existing history
gets its first checkpoint with the next observation (reads without one fall back to every
row, as before).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.store.tables import Instant

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Rows written before stay null: they are read from their JSON.
    with op.batch_alter_table("observed_accounts") as table:
        table.add_column(sa.Column("kind", sa.String(20), nullable=True))
        table.add_column(sa.Column("counterparty_name", sa.Text(), nullable=True))
        table.add_column(sa.Column("account_name", sa.Text(), nullable=True))
    op.create_table(
        "checkpoints",
        sa.Column("seq", Seq, nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("at", Instant(), nullable=False),
        sa.ForeignKeyConstraint(
            ["seq"],
            ["observations.seq"],
            name="fk_checkpoints_seq_observations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name="pk_checkpoints"),
    )
    op.create_index("ix_checkpoints_source_seq", "checkpoints", ["source", "seq"])
    op.create_table(
        "checkpoint_accounts",
        sa.Column("seq", Seq, nullable=False),
        sa.Column("counterparty_id", sa.String(200), nullable=False),
        sa.Column("account_id", sa.String(200), nullable=False),
        sa.Column("currency", sa.String(16), nullable=False),
        sa.Column("row_seq", Seq, nullable=False),
        sa.ForeignKeyConstraint(
            ["seq"],
            ["checkpoints.seq"],
            name="fk_checkpoint_accounts_seq_checkpoints",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "seq", "counterparty_id", "account_id", "currency", name="pk_checkpoint_accounts"
        ),
    )


def downgrade() -> None:
    op.drop_table("checkpoint_accounts")
    op.drop_table("checkpoints")
    with op.batch_alter_table("observed_accounts") as table:
        table.drop_column("account_name")
        table.drop_column("counterparty_name")
        table.drop_column("kind")
