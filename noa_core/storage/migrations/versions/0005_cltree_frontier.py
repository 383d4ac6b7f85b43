"""The CL tree's stored Merkle frontier (appends stop re-hashing the whole log).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

The table starts empty; the first append after this revision builds the frontier from
the entries once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cltree_frontier",
        sa.Column("name", sa.String(length=20), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("hashes", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_cltree_frontier")),
    )


def downgrade() -> None:
    op.drop_table("cltree_frontier")
