"""audit entries carry a MAC under a key the database does not hold

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 09:00:00

Each audit entry is written with an HMAC over its id and content under the keyring's audit MAC
key (`mac_key_id` names it, so that keys can rotate). A migration holds no key, so entries
written before this revision have none: those already sealed stay protected by the hash chain
and its signed checkpoints; any left unsealed are refused by the sealer like a forgery (run
`settle audit seal` with the previous version before upgrading to avoid that).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("mac_key_id", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("mac", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("mac")
        batch.drop_column("mac_key_id")
