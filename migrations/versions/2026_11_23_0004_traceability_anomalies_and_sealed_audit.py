"""traceability codes, anomalies, prescriptions; the audit log's hash chain; append-only tables

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 09:00:00

On PostgreSQL the ledger, the audit log with its seals and checkpoints, and the trace events are
append-only: a trigger refuses UPDATE, DELETE and TRUNCATE on them for every role (the
application's role is, besides, granted no such privilege on them).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

APPEND_ONLY = ("ledger_entries", "audit_log", "audit_seals", "audit_checkpoints", "trace_events")


def upgrade() -> None:
    with op.batch_alter_table("settlement_lines") as batch:
        batch.add_column(sa.Column("split", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "trace_packages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("drug_code", sa.String(length=64), nullable=False),
        sa.Column("package_units", sa.Integer(), nullable=False),
        sa.Column("units_sold", sa.Integer(), nullable=False),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("units_sold >= 0 AND units_sold <= package_units", name=op.f("ck_trace_packages_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trace_packages")),
        sa.UniqueConstraint("code", name=op.f("uq_trace_packages_code")),
    )
    op.create_table(
        "trace_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("drug_code", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("institution_code", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("settlement_id", sa.Uuid(), nullable=True),
        sa.Column("line_index", sa.Integer(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("patient_index", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('sold', 'returned')", name=op.f("ck_trace_events_kind")),
        sa.ForeignKeyConstraint(
            ["settlement_id"], ["settlements.id"], name=op.f("fk_trace_events_settlement_id_settlements")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trace_events")),
    )
    op.create_index(op.f("ix_trace_events_code"), "trace_events", ["code"], unique=False)
    op.create_index(op.f("ix_trace_events_settlement_id"), "trace_events", ["settlement_id"], unique=False)
    op.create_table(
        "trace_policies",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("institution_code", sa.String(length=64), nullable=False),
        sa.Column("drug_code", sa.String(length=64), nullable=False),
        sa.Column("invalid_codes", sa.String(length=16), nullable=False),
        sa.Column("no_code_stock", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "invalid_codes IN ('refuse', 'accept_and_flag')", name=op.f("ck_trace_policies_invalid_codes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trace_policies")),
        sa.UniqueConstraint("institution_code", "drug_code", name=op.f("uq_trace_policies_institution_code_drug_code")),
    )
    op.create_table(
        "prescriptions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("prescription_id", sa.String(length=64), nullable=False),
        sa.Column("hospital_code", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("drugs", sa.JSON(), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_prescriptions_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prescriptions")),
        sa.UniqueConstraint("prescription_id", name=op.f("uq_prescriptions_prescription_id")),
    )
    op.create_table(
        "anomalies",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("fingerprint", sa.String(length=200), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=True),
        sa.Column("institution_code", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("drug_code", sa.String(length=64), nullable=True),
        sa.Column("settlement_id", sa.Uuid(), nullable=True),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detected_by", sa.String(length=8), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("handled_by", sa.String(length=200), nullable=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.CheckConstraint("detected_by IN ('write', 'scan')", name=op.f("ck_anomalies_detected_by")),
        sa.CheckConstraint("severity IN ('low', 'medium', 'high')", name=op.f("ck_anomalies_severity")),
        sa.CheckConstraint("status IN ('open', 'explained', 'confirmed')", name=op.f("ck_anomalies_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anomalies")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_anomalies_fingerprint")),
    )
    for column in ("kind", "code", "institution_code", "region", "detected_at"):
        op.create_index(op.f(f"ix_anomalies_{column}"), "anomalies", [column], unique=False)
    op.create_table(
        "audit_seals",
        sa.Column("sequence", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("previous_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_audit_seals")),
        sa.UniqueConstraint("entry_id", name=op.f("uq_audit_seals_entry_id")),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=100), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
        sa.UniqueConstraint("sequence", name=op.f("uq_audit_checkpoints_sequence")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION settle_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
                    USING ERRCODE = 'insufficient_privilege';
            END
            $$
            """
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION settle_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION settle_append_only()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
        op.execute("DROP FUNCTION settle_append_only()")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_seals")
    for column in ("detected_at", "region", "institution_code", "code", "kind"):
        op.drop_index(op.f(f"ix_anomalies_{column}"), table_name="anomalies")
    op.drop_table("anomalies")
    op.drop_table("prescriptions")
    op.drop_table("trace_policies")
    op.drop_index(op.f("ix_trace_events_settlement_id"), table_name="trace_events")
    op.drop_index(op.f("ix_trace_events_code"), table_name="trace_events")
    op.drop_table("trace_events")
    op.drop_table("trace_packages")
    with op.batch_alter_table("settlement_lines") as batch:
        batch.drop_column("split")
