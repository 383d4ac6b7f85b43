"""Baseline: the registry tables as ``create_all`` made them before migrations existed.

A database created by that ``create_all`` is stamped at this revision instead of running
it (see :mod:`noa_core.storage.migrate`); a partly created one gets the missing tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _exists(name: str) -> bool:
    schema = op.get_context().version_table_schema
    return sa.inspect(op.get_bind()).has_table(name, schema=schema)


def upgrade() -> None:
    if not _exists("projects"):
        op.create_table(
            "projects",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("root_commits", sa.JSON(), nullable=False),
            sa.Column("created", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
            sa.UniqueConstraint("name", name=op.f("uq_projects_name")),
        )
    if not _exists("drops"):
        op.create_table(
            "drops",
            sa.Column("id", sa.String(length=120), nullable=False),
            sa.Column("project_id", sa.Integer(), nullable=True),
            sa.Column("source", sa.Text(), nullable=False),
            sa.Column("kind", sa.String(length=20), nullable=False),
            sa.Column("sandbox", sa.String(length=1), nullable=True),
            sa.Column("commit", sa.String(length=64), nullable=True),
            sa.Column("confidence_raw", sa.Float(), nullable=True),
            sa.Column("confidence", sa.Float(), nullable=True),
            sa.Column("status", sa.String(length=20), nullable=False),
            sa.Column("created", sa.DateTime(), nullable=False),
            sa.Column("finished", sa.DateTime(), nullable=True),
            sa.Column("report_path", sa.Text(), nullable=True),
            sa.Column("file_count", sa.Integer(), nullable=True),
            sa.Column("total_bytes", sa.BigInteger(), nullable=True),
            sa.Column("tree_hash", sa.String(length=64), nullable=True),
            sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_drops_project_id_projects"),
                                    ondelete="SET NULL"),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_drops")),
        )
        op.create_index(op.f("ix_drops_created"), "drops", ["created"])
        op.create_index(op.f("ix_drops_project_id"), "drops", ["project_id"])
        op.create_index(op.f("ix_drops_tree_hash"), "drops", ["tree_hash"])
    if not _exists("files"):
        op.create_table(
            "files",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("drop_id", sa.String(length=120), nullable=False),
            sa.Column("path", sa.Text(), nullable=False),
            sa.Column("size", sa.BigInteger(), nullable=False),
            sa.Column("hash", sa.String(length=64), nullable=False),
            sa.ForeignKeyConstraint(["drop_id"], ["drops.id"], name=op.f("fk_files_drop_id_drops"),
                                    ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
            sa.UniqueConstraint("drop_id", "path", name=op.f("uq_files_drop_id")),
        )
        op.create_index("ix_files_hash", "files", ["hash"])
    if not _exists("validations"):
        op.create_table(
            "validations",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("drop_id", sa.String(length=120), nullable=False),
            sa.Column("raw_score", sa.Float(), nullable=False),
            sa.Column("passed", sa.Boolean(), nullable=False),
            sa.Column("counts", sa.JSON(), nullable=False),
            sa.Column("created", sa.DateTime(), nullable=False),
            sa.ForeignKeyConstraint(["drop_id"], ["drops.id"], name=op.f("fk_validations_drop_id_drops"),
                                    ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_validations")),
        )
        op.create_index(op.f("ix_validations_drop_id"), "validations", ["drop_id"])


def downgrade() -> None:
    for table in ("validations", "files", "drops", "projects"):
        op.drop_table(table)
