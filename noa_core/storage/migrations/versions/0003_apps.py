"""The app registry (owned and external apps, their endpoints, health checks, owner, status).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("service", sa.String(length=100), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=True),
        sa.Column("project_dir", sa.Text(), nullable=True),
        sa.Column("health_path", sa.String(length=1024), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("instance", sa.Text(), nullable=True),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.Column("updated_at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apps")),
        sa.UniqueConstraint("name", name=op.f("uq_apps_name")),
    )
    op.create_index(op.f("ix_apps_service"), "apps", ["service"])


def downgrade() -> None:
    op.drop_index(op.f("ix_apps_service"), table_name="apps")
    op.drop_table("apps")
