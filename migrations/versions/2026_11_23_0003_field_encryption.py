"""field encryption: data keys; ID numbers, names, settlement prices and rebates encrypted

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 08:00:00

The plaintext columns are replaced by ciphertext columns. Encrypting needs the keyring, which a
migration does not hold, so this revision refuses a database that already has people, catalogue
entries or rebates in clear (none exists in production yet): reload such data after upgrading
(in development: remove var/settle.sqlite3 and start again). Its downgrade refuses likewise to
drop ciphertexts it could not decrypt.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("people", "commercial_entries", "settlement_rebates")


def _refuse_rows(direction: str) -> None:
    connection = op.get_bind()
    for table in TABLES:
        count = connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
        if count:
            raise RuntimeError(
                f"revision 0003 cannot {direction} with {count} rows in {table}: it would have to "
                f"{'encrypt' if direction == 'upgrade' else 'decrypt'} them without the keyring; "
                "empty these tables (reload after upgrading), or start from an empty database"
            )


def upgrade() -> None:
    _refuse_rows("upgrade")
    op.create_table(
        "data_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("master_key_id", sa.String(length=100), nullable=False),
        sa.Column("suite", sa.Integer(), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rewrapped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_keys")),
    )
    op.create_index(op.f("ix_data_keys_master_key_id"), "data_keys", ["master_key_id"], unique=False)
    with op.batch_alter_table("people") as batch:
        batch.drop_column("id_number")
        batch.drop_column("name")
        batch.add_column(sa.Column("id_number_ct", sa.LargeBinary(), nullable=False))
        batch.add_column(sa.Column("id_number_index", sa.String(length=64), nullable=False))
        batch.add_column(sa.Column("name_ct", sa.LargeBinary(), nullable=False))
        batch.create_unique_constraint(batch.f("uq_people_id_number_index"), ["id_number_index"])
    with op.batch_alter_table("commercial_entries") as batch:
        batch.drop_column("settlement_price_fen")
        batch.add_column(sa.Column("settlement_price_ct", sa.LargeBinary(), nullable=False))
    with op.batch_alter_table("settlement_rebates") as batch:
        batch.drop_column("amount_fen")
        batch.add_column(sa.Column("amount_ct", sa.LargeBinary(), nullable=False))


def downgrade() -> None:
    _refuse_rows("downgrade")
    with op.batch_alter_table("settlement_rebates") as batch:
        batch.drop_column("amount_ct")
        batch.add_column(sa.Column("amount_fen", sa.BigInteger(), nullable=False))
    with op.batch_alter_table("commercial_entries") as batch:
        batch.drop_column("settlement_price_ct")
        batch.add_column(sa.Column("settlement_price_fen", sa.BigInteger(), nullable=False))
    with op.batch_alter_table("people") as batch:
        batch.drop_constraint(batch.f("uq_people_id_number_index"), type_="unique")
        batch.drop_column("name_ct")
        batch.drop_column("id_number_index")
        batch.drop_column("id_number_ct")
        batch.add_column(sa.Column("id_number", sa.String(length=32), nullable=False))
        batch.add_column(sa.Column("name", sa.String(length=100), nullable=False))
    op.drop_index(op.f("ix_data_keys_master_key_id"), table_name="data_keys")
    op.drop_table("data_keys")
