"""authorization: the audit log, and each settlement's region for supervisors' scope

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 07:20:00
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
        "audit_log",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("token_id", sa.String(length=100), nullable=True),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("org", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.CheckConstraint("outcome IN ('allowed', 'denied', 'unauthenticated')", name=op.f("ck_audit_log_outcome")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_occurred_at"), "audit_log", ["occurred_at"], unique=False)
    # a settlement's region is its institution's: backfill, then require it
    with op.batch_alter_table("settlements") as batch:
        batch.add_column(sa.Column("region", sa.String(length=16), nullable=True))
    op.execute(
        "UPDATE settlements SET region = "
        "(SELECT institutions.region FROM institutions WHERE institutions.code = settlements.institution_code)"
    )
    with op.batch_alter_table("settlements") as batch:
        batch.alter_column("region", existing_type=sa.String(length=16), nullable=False)
        batch.create_index(batch.f("ix_settlements_region"), ["region"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("settlements") as batch:
        batch.drop_index(batch.f("ix_settlements_region"))
        batch.drop_column("region")
    op.drop_index(op.f("ix_audit_log_occurred_at"), table_name="audit_log")
    op.drop_table("audit_log")
