"""CL tree entries and the workspace registry (roots, index, versions, SOT blobs).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cltree_entries",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("parents", sa.Text(), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_cltree_entries")),
        sa.UniqueConstraint("id", name=op.f("uq_cltree_entries_id")),
    )
    op.create_index(op.f("ix_cltree_entries_kind"), "cltree_entries", ["kind"])
    op.create_index(op.f("ix_cltree_entries_subject"), "cltree_entries", ["subject"])
    op.create_table(
        "ws_roots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("last_scan", sa.DateTime(), nullable=True),
        sa.Column("index_written_ns", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ws_roots")),
        sa.UniqueConstraint("path", name=op.f("uq_ws_roots_path")),
    )
    op.create_table(
        "ws_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("root_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("ctime_ns", sa.BigInteger(), nullable=False),
        sa.Column("inode", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["root_id"], ["ws_roots.id"], name=op.f("fk_ws_files_root_id_ws_roots"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ws_files")),
        sa.UniqueConstraint("root_id", "path", name=op.f("uq_ws_files_root_id")),
    )
    op.create_index(op.f("ix_ws_files_hash"), "ws_files", ["hash"])
    op.create_table(
        "ws_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("root_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("change", sa.String(length=10), nullable=False),
        sa.Column("seen", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["root_id"], ["ws_roots.id"], name=op.f("fk_ws_versions_root_id_ws_roots"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ws_versions")),
        sa.UniqueConstraint("root_id", "path", "version", name=op.f("uq_ws_versions_root_id")),
    )
    op.create_table(
        "ws_blobs",
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root_id", sa.Integer(), nullable=True),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("archived_bytes", sa.BigInteger(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["root_id"], ["ws_roots.id"], name=op.f("fk_ws_blobs_root_id_ws_roots"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_ws_blobs")),
    )


def downgrade() -> None:
    for table in ("ws_blobs", "ws_versions", "ws_files", "ws_roots", "cltree_entries"):
        op.drop_table(table)
