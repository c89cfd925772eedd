"""each settlement's insuring region, for the supervisors of the patient's region (异地就医)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 09:00:00

`settlements.insured_region` is the patient's insuring region (参保地) when the claim settled:
its plans paid, and its supervisors see the settlement beside those of the treating
institution's region (`region`). Existing settlements are backfilled from `people.region`,
which is their insuring region unless the person has since moved to another region (a later
load of the person with another region): such a settlement is attributed to the new region.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("settlements") as batch:
        batch.add_column(sa.Column("insured_region", sa.String(length=16), nullable=True))
    op.execute(
        "UPDATE settlements SET insured_region = "
        "(SELECT people.region FROM people WHERE people.id = settlements.person_id)"
    )
    with op.batch_alter_table("settlements") as batch:
        batch.alter_column("insured_region", existing_type=sa.String(length=16), nullable=False)
        batch.create_index(batch.f("ix_settlements_insured_region"), ["insured_region"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("settlements") as batch:
        batch.drop_index(batch.f("ix_settlements_insured_region"))
        batch.drop_column("insured_region")
