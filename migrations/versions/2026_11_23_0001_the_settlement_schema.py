"""the settlement schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-23 06:58:13.404454
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "drugs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("generic_name", sa.String(length=200), nullable=False),
        sa.Column("specification", sa.String(length=200), nullable=False),
        sa.Column("package_units", sa.Integer(), nullable=False),
        sa.Column("manufacturer", sa.String(length=200), nullable=False),
        sa.Column("trace_prefixes", sa.JSON(), nullable=False),
        sa.Column("listed_on", sa.Date(), nullable=True),
        sa.CheckConstraint("package_units > 0", name=op.f("ck_drugs_package_units_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drugs")),
        sa.UniqueConstraint("code", name=op.f("uq_drugs_code")),
    )
    op.create_table(
        "formulary_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("self_pay_first_ratio_ppm", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_formulary_versions")),
        sa.UniqueConstraint("region", "effective_from", name=op.f("uq_formulary_versions_region_effective_from")),
    )
    op.create_table(
        "institutions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.CheckConstraint("kind IN ('hospital', 'pharmacy')", name=op.f("ck_institutions_kind")),
        sa.CheckConstraint("level BETWEEN 1 AND 3", name=op.f("ck_institutions_level")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_institutions")),
        sa.UniqueConstraint("code", name=op.f("uq_institutions_code")),
    )
    with op.batch_alter_table("institutions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_institutions_region"), ["region"], unique=False)

    op.create_table(
        "payers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=True),
        sa.CheckConstraint("kind IN ('fund', 'insurer', 'mutual_aid', 'charity')", name=op.f("ck_payers_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payers")),
        sa.UniqueConstraint("code", name=op.f("uq_payers_code")),
    )
    op.create_table(
        "people",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("psn_no", sa.String(length=64), nullable=False),
        sa.Column("id_number", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("insurance_type", sa.String(length=16), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("memberships", sa.JSON(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.CheckConstraint("insurance_type IN ('employee', 'resident')", name=op.f("ck_people_insurance_type")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_people")),
        sa.UniqueConstraint("psn_no", name=op.f("uq_people_psn_no")),
    )
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_people_region"), ["region"], unique=False)

    op.create_table(
        "plan_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("plan_code", sa.String(length=64), nullable=False),
        sa.Column("payer_code", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_versions")),
        sa.UniqueConstraint("plan_code", "effective_from", name=op.f("uq_plan_versions_plan_code_effective_from")),
    )
    with op.batch_alter_table("plan_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_versions_payer_code"), ["payer_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_plan_versions_region"), ["region", "effective_from"], unique=False)

    op.create_table(
        "prepayment_pools",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("payer_code", sa.String(length=64), nullable=False),
        sa.Column("institution_code", sa.String(length=64), nullable=False),
        sa.Column("granted_fen", sa.BigInteger(), nullable=False),
        sa.Column("drawn_fen", sa.BigInteger(), nullable=False),
        sa.Column("returned_fen", sa.BigInteger(), nullable=False),
        sa.Column("balance_fen", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "balance_fen = granted_fen - drawn_fen + returned_fen", name=op.f("ck_prepayment_pools_balance")
        ),
        sa.CheckConstraint("balance_fen >= 0", name=op.f("ck_prepayment_pools_not_overdrawn")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prepayment_pools")),
        sa.UniqueConstraint(
            "payer_code", "institution_code", name=op.f("uq_prepayment_pools_payer_code_institution_code")
        ),
    )
    with op.batch_alter_table("prepayment_pools", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_prepayment_pools_institution_code"), ["institution_code"], unique=False)

    op.create_table(
        "voided_serials",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("institution_code", sa.String(length=64), nullable=False),
        sa.Column("serial", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voided_serials")),
        sa.UniqueConstraint("institution_code", "serial", name=op.f("uq_voided_serials_institution_code_serial")),
    )
    op.create_table(
        "accumulators",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("plan_code", sa.String(length=64), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("deductible_met_fen", sa.BigInteger(), nullable=False),
        sa.Column("base_spent_fen", sa.BigInteger(), nullable=False),
        sa.Column("paid_fen", sa.BigInteger(), nullable=False),
        sa.Column("claims", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_accumulators_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accumulators")),
        sa.UniqueConstraint("person_id", "year", "plan_code", name=op.f("uq_accumulators_person_id_year_plan_code")),
    )
    op.create_table(
        "basic_entries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("formulary_version_id", sa.Uuid(), nullable=False),
        sa.Column("drug_code", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=1), nullable=False),
        sa.Column("payment_standard_fen", sa.BigInteger(), nullable=True),
        sa.Column("self_pay_first_ratio_ppm", sa.Integer(), nullable=True),
        sa.Column("negotiated", sa.Boolean(), nullable=False),
        sa.Column("dual_channel", sa.Boolean(), nullable=False),
        sa.Column("restricted_diagnoses", sa.JSON(), nullable=False),
        sa.Column("restricted_visits", sa.JSON(), nullable=False),
        sa.CheckConstraint("category IN ('A', 'B')", name=op.f("ck_basic_entries_category")),
        sa.ForeignKeyConstraint(
            ["formulary_version_id"],
            ["formulary_versions.id"],
            name=op.f("fk_basic_entries_formulary_version_id_formulary_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_basic_entries")),
        sa.UniqueConstraint(
            "formulary_version_id", "drug_code", name=op.f("uq_basic_entries_formulary_version_id_drug_code")
        ),
    )
    op.create_table(
        "commercial_entries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("formulary_version_id", sa.Uuid(), nullable=False),
        sa.Column("drug_code", sa.String(length=64), nullable=False),
        sa.Column("insurer_code", sa.String(length=64), nullable=False),
        sa.Column("settlement_price_fen", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["formulary_version_id"],
            ["formulary_versions.id"],
            name=op.f("fk_commercial_entries_formulary_version_id_formulary_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commercial_entries")),
        sa.UniqueConstraint(
            "formulary_version_id",
            "drug_code",
            "insurer_code",
            name=op.f("uq_commercial_entries_formulary_version_id_drug_code_insurer_code"),
        ),
    )
    op.create_table(
        "prepayment_grants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=False),
        sa.Column("pool_id", sa.Uuid(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_prepayment_grants_positive")),
        sa.ForeignKeyConstraint(
            ["pool_id"], ["prepayment_pools.id"], name=op.f("fk_prepayment_grants_pool_id_prepayment_pools")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prepayment_grants")),
        sa.UniqueConstraint("reference", name=op.f("uq_prepayment_grants_reference")),
    )
    op.create_table(
        "settlements",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("institution_code", sa.String(length=64), nullable=False),
        sa.Column("serial", sa.String(length=100), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("service_date", sa.Date(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("visit", sa.String(length=16), nullable=False),
        sa.Column("diagnoses", sa.JSON(), nullable=False),
        sa.Column("drg_group", sa.String(length=32), nullable=True),
        sa.Column("prescribing_hospital", sa.String(length=64), nullable=True),
        sa.Column("formulary_version_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("total_fen", sa.BigInteger(), nullable=False),
        sa.Column("in_scope_fen", sa.BigInteger(), nullable=False),
        sa.Column("self_pay_first_fen", sa.BigInteger(), nullable=False),
        sa.Column("above_standard_fen", sa.BigInteger(), nullable=False),
        sa.Column("out_of_scope_fen", sa.BigInteger(), nullable=False),
        sa.Column("patient_fen", sa.BigInteger(), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reversed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reversal_reason", sa.String(length=500), nullable=True),
        sa.CheckConstraint("status IN ('settled', 'reversed')", name=op.f("ck_settlements_status")),
        sa.ForeignKeyConstraint(
            ["formulary_version_id"],
            ["formulary_versions.id"],
            name=op.f("fk_settlements_formulary_version_id_formulary_versions"),
        ),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_settlements_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlements")),
        sa.UniqueConstraint("institution_code", "serial", name=op.f("uq_settlements_institution_code_serial")),
    )
    with op.batch_alter_table("settlements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_settlements_person_id"), ["person_id", "year"], unique=False)
        batch_op.create_index(batch_op.f("ix_settlements_service_date"), ["service_date"], unique=False)

    op.create_table(
        "units_received",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("drug_code", sa.String(length=64), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_units_received_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_units_received")),
        sa.UniqueConstraint("person_id", "year", "drug_code", name=op.f("uq_units_received_person_id_year_drug_code")),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("transaction_id", sa.Uuid(), nullable=False),
        sa.Column("settlement_id", sa.Uuid(), nullable=True),
        sa.Column("grant_id", sa.Uuid(), nullable=True),
        sa.Column("account", sa.String(length=160), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["prepayment_grants.id"], name=op.f("fk_ledger_entries_grant_id_prepayment_grants")
        ),
        sa.ForeignKeyConstraint(
            ["settlement_id"], ["settlements.id"], name=op.f("fk_ledger_entries_settlement_id_settlements")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_entries_account"), ["account"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_entries_settlement_id"), ["settlement_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_entries_transaction_id"), ["transaction_id"], unique=False)

    op.create_table(
        "settlement_accumulator_changes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("settlement_id", sa.Uuid(), nullable=False),
        sa.Column("plan_code", sa.String(length=64), nullable=False),
        sa.Column("deductible_met_fen", sa.BigInteger(), nullable=False),
        sa.Column("base_spent_fen", sa.BigInteger(), nullable=False),
        sa.Column("paid_fen", sa.BigInteger(), nullable=False),
        sa.Column("claims", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["settlement_id"],
            ["settlements.id"],
            name=op.f("fk_settlement_accumulator_changes_settlement_id_settlements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_accumulator_changes")),
        sa.UniqueConstraint(
            "settlement_id", "plan_code", name=op.f("uq_settlement_accumulator_changes_settlement_id_plan_code")
        ),
    )
    op.create_table(
        "settlement_line_payments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("settlement_id", sa.Uuid(), nullable=False),
        sa.Column("line_index", sa.Integer(), nullable=False),
        sa.Column("plan_code", sa.String(length=64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["settlement_id"], ["settlements.id"], name=op.f("fk_settlement_line_payments_settlement_id_settlements")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_line_payments")),
        sa.UniqueConstraint(
            "settlement_id",
            "line_index",
            "plan_code",
            name=op.f("uq_settlement_line_payments_settlement_id_line_index_plan_code"),
        ),
    )
    op.create_table(
        "settlement_lines",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("settlement_id", sa.Uuid(), nullable=False),
        sa.Column("line_index", sa.Integer(), nullable=False),
        sa.Column("drug_code", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_fen", sa.BigInteger(), nullable=False),
        sa.Column("total_fen", sa.BigInteger(), nullable=False),
        sa.Column("donated_units", sa.Integer(), nullable=False),
        sa.Column("in_scope_fen", sa.BigInteger(), nullable=False),
        sa.Column("self_pay_first_fen", sa.BigInteger(), nullable=False),
        sa.Column("above_standard_fen", sa.BigInteger(), nullable=False),
        sa.Column("out_of_scope_fen", sa.BigInteger(), nullable=False),
        sa.Column("patient_fen", sa.BigInteger(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("trace_codes", sa.JSON(), nullable=False),
        sa.Column("prescription_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["settlement_id"], ["settlements.id"], name=op.f("fk_settlement_lines_settlement_id_settlements")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_lines")),
        sa.UniqueConstraint("settlement_id", "line_index", name=op.f("uq_settlement_lines_settlement_id_line_index")),
    )
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_settlement_lines_drug_code"), ["drug_code"], unique=False)

    op.create_table(
        "settlement_payers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("settlement_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("plan_code", sa.String(length=64), nullable=False),
        sa.Column("plan_version_id", sa.Uuid(), nullable=False),
        sa.Column("payer_code", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("base_fen", sa.BigInteger(), nullable=False),
        sa.Column("deductible_applied_fen", sa.BigInteger(), nullable=False),
        sa.Column("drawn_fen", sa.BigInteger(), nullable=False),
        sa.Column("receivable_fen", sa.BigInteger(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.CheckConstraint("amount_fen = drawn_fen + receivable_fen", name=op.f("ck_settlement_payers_funded")),
        sa.ForeignKeyConstraint(
            ["plan_version_id"], ["plan_versions.id"], name=op.f("fk_settlement_payers_plan_version_id_plan_versions")
        ),
        sa.ForeignKeyConstraint(
            ["settlement_id"], ["settlements.id"], name=op.f("fk_settlement_payers_settlement_id_settlements")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_payers")),
        sa.UniqueConstraint("settlement_id", "position", name=op.f("uq_settlement_payers_settlement_id_position")),
    )
    with op.batch_alter_table("settlement_payers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_settlement_payers_payer_code"), ["payer_code"], unique=False)

    op.create_table(
        "settlement_rebates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("settlement_id", sa.Uuid(), nullable=False),
        sa.Column("line_index", sa.Integer(), nullable=False),
        sa.Column("drug_code", sa.String(length=64), nullable=False),
        sa.Column("insurer_code", sa.String(length=64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["settlement_id"], ["settlements.id"], name=op.f("fk_settlement_rebates_settlement_id_settlements")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_rebates")),
    )
    with op.batch_alter_table("settlement_rebates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_settlement_rebates_insurer_code"), ["insurer_code"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("settlement_rebates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlement_rebates_insurer_code"))

    op.drop_table("settlement_rebates")
    with op.batch_alter_table("settlement_payers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlement_payers_payer_code"))

    op.drop_table("settlement_payers")
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlement_lines_drug_code"))

    op.drop_table("settlement_lines")
    op.drop_table("settlement_line_payments")
    op.drop_table("settlement_accumulator_changes")
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_entries_transaction_id"))
        batch_op.drop_index(batch_op.f("ix_ledger_entries_settlement_id"))
        batch_op.drop_index(batch_op.f("ix_ledger_entries_account"))

    op.drop_table("ledger_entries")
    op.drop_table("units_received")
    with op.batch_alter_table("settlements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlements_service_date"))
        batch_op.drop_index(batch_op.f("ix_settlements_person_id"))

    op.drop_table("settlements")
    op.drop_table("prepayment_grants")
    op.drop_table("commercial_entries")
    op.drop_table("basic_entries")
    op.drop_table("accumulators")
    op.drop_table("voided_serials")
    with op.batch_alter_table("prepayment_pools", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prepayment_pools_institution_code"))

    op.drop_table("prepayment_pools")
    with op.batch_alter_table("plan_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_versions_region"))
        batch_op.drop_index(batch_op.f("ix_plan_versions_payer_code"))

    op.drop_table("plan_versions")
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_people_region"))

    op.drop_table("people")
    op.drop_table("payers")
    with op.batch_alter_table("institutions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_institutions_region"))

    op.drop_table("institutions")
    op.drop_table("formulary_versions")
    op.drop_table("drugs")
