"""audit rejections: entries the sealer refused to chain, set aside once

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 09:20:00

An entry whose MAC does not verify was not written by the service; the sealer records it here
(and as an AUDIT_FORGERY anomaly) so that its next round starts after it. On PostgreSQL the
table is append-only, like the rest of the audit log.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_rejections",
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("entry_txid", sa.BigInteger(), nullable=False),
        sa.Column("entry_position", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_audit_rejections")),
    )
    op.create_index(
        "ix_audit_rejections_entry_txid_entry_position",
        "audit_rejections",
        ["entry_txid", "entry_position"],
        unique=False,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER audit_rejections_append_only BEFORE UPDATE OR DELETE ON audit_rejections "
            "FOR EACH ROW EXECUTE FUNCTION settle_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_rejections_no_truncate BEFORE TRUNCATE ON audit_rejections "
            "FOR EACH STATEMENT EXECUTE FUNCTION settle_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_rejections_no_truncate ON audit_rejections")
        op.execute("DROP TRIGGER audit_rejections_append_only ON audit_rejections")
    op.drop_index("ix_audit_rejections_entry_txid_entry_position", table_name="audit_rejections")
    op.drop_table("audit_rejections")
