"""a rebate may be not computable: its insurer's price was unreadable when the claim settled

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 08:00:00

`settlement_rebates.status` is `computed` (with its encrypted amount) or `not_computable` (no
amount: the insurer's master key was destroyed, so its settlement price could not be read; the
claim settled all the same). The downgrade refuses a database holding not-computable rebates:
the older schema has no way to say so.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("settlement_rebates") as batch:
        batch.add_column(sa.Column("status", sa.String(length=16), nullable=False, server_default="computed"))
        batch.alter_column("amount_ct", existing_type=sa.LargeBinary(), nullable=True)
        batch.create_check_constraint(
            "status",
            "(status = 'computed' AND amount_ct IS NOT NULL) OR (status = 'not_computable' AND amount_ct IS NULL)",
        )


def downgrade() -> None:
    connection = op.get_bind()
    lost = connection.execute(
        sa.text("SELECT count(*) FROM settlement_rebates WHERE status <> 'computed'")
    ).scalar_one()
    if lost:
        raise RuntimeError(
            f"revision 0005 cannot downgrade with {lost} not-computable rebates: the older schema "
            "requires an amount on every rebate"
        )
    with op.batch_alter_table("settlement_rebates") as batch:
        batch.drop_constraint(op.f("ck_settlement_rebates_status"), type_="check")
        batch.alter_column("amount_ct", existing_type=sa.LargeBinary(), nullable=False)
        batch.drop_column("status")
