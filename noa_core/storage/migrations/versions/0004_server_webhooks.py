"""The API server's tokens and write log, and the GitHub webhook delivery store.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

Before this revision the three stores created their tables themselves (``checkfirst``);
a database that already has one keeps it and is only stamped.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from noa_core.storage.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _missing(name: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(name)


def upgrade() -> None:
    if _missing("api_tokens"):
        op.create_table(
            "api_tokens",
            sa.Column("key_id", sa.String(length=12), nullable=False),
            sa.Column("name", sa.String(length=80), nullable=False),
            sa.Column("scope", sa.String(length=10), nullable=False),
            sa.Column("secret_sha256", sa.String(length=64), nullable=False),
            sa.Column("rate_per_s", sa.Float(), nullable=True),
            sa.Column("created", UTCDateTime(), nullable=False),
            sa.Column("revoked", UTCDateTime(), nullable=True),
            sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_tokens")),
            sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        )
    if _missing("api_writes"):
        op.create_table(
            "api_writes",
            sa.Column("id", sa.String(length=32), nullable=False),
            sa.Column("kind", sa.String(length=20), nullable=False),
            sa.Column("subject", sa.String(length=300), nullable=False),
            sa.Column("params", sa.JSON(), nullable=False),
            sa.Column("token_name", sa.String(length=80), nullable=False),
            sa.Column("flow_run_id", sa.String(length=64), nullable=True),
            sa.Column("status", sa.String(length=20), nullable=False),
            sa.Column("created", UTCDateTime(), nullable=False),
            sa.Column("note", sa.Text(), nullable=True),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_api_writes")),
        )
        op.create_index(op.f("ix_api_writes_kind"), "api_writes", ["kind"], unique=False)
    if _missing("webhook_deliveries"):
        op.create_table(
            "webhook_deliveries",
            sa.Column("delivery_id", sa.String(length=100), nullable=False),
            sa.Column("source", sa.String(length=20), nullable=False),
            sa.Column("event", sa.String(length=64), nullable=False),
            sa.Column("repo", sa.String(length=200), nullable=False),
            sa.Column("ref", sa.Text(), nullable=False),
            sa.Column("commit", sa.String(length=64), nullable=False),
            sa.Column("pr_number", sa.Integer(), nullable=True),
            sa.Column("run_id", sa.String(length=64), nullable=True),
            sa.Column("status", sa.String(length=20), nullable=False),
            sa.Column("created", UTCDateTime(), nullable=False),
            sa.Column("updated", UTCDateTime(), nullable=False),
            sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_webhook_deliveries")),
        )
        op.create_index(op.f("ix_webhook_deliveries_created"), "webhook_deliveries", ["created"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_deliveries_created"), table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index(op.f("ix_api_writes_kind"), table_name="api_writes")
    op.drop_table("api_writes")
    op.drop_table("api_tokens")
