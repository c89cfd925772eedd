"""The schema. Money is integer fen (BigInteger, `_fen` suffix), ratios integer millionths (`_ppm`).

Nothing is deleted: a reversal changes a settlement's status and posts compensating ledger
entries; formularies and plans are versioned by effective date.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.db.base import Base, UtcDateTime
from api.ids import uuid7

Code = String(64)
Money = BigInteger()


def _id() -> Mapped[uuid.UUID]:
    return mapped_column(Uuid, primary_key=True, default=uuid7)


class Drug(Base):
    """A drug product: national medical-insurance code, package size in its smallest unit."""

    __tablename__ = "drugs"

    id: Mapped[uuid.UUID] = _id()
    code: Mapped[str] = mapped_column(Code, unique=True)
    generic_name: Mapped[str] = mapped_column(String(200))
    specification: Mapped[str] = mapped_column(String(200), default="")
    package_units: Mapped[int] = mapped_column(Integer)
    manufacturer: Mapped[str] = mapped_column(String(200), default="")
    trace_prefixes: Mapped[list[str]] = mapped_column(JSON, default=list)
    listed_on: Mapped[date | None] = mapped_column(Date)

    __table_args__ = (CheckConstraint("package_units > 0", name="package_units_positive"),)


class Institution(Base):
    """A designated hospital (level 1-3) or dual-channel retail pharmacy."""

    __tablename__ = "institutions"

    id: Mapped[uuid.UUID] = _id()
    code: Mapped[str] = mapped_column(Code, unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    level: Mapped[int] = mapped_column(Integer)
    region: Mapped[str] = mapped_column(String(16), index=True)

    __table_args__ = (
        CheckConstraint("kind IN ('hospital', 'pharmacy')", name="kind"),
        CheckConstraint("level BETWEEN 1 AND 3", name="level"),
    )


class Payer(Base):
    """An organisation that pays: a basic-insurance fund, an insurer, a mutual-aid fund, a charity."""

    __tablename__ = "payers"

    id: Mapped[uuid.UUID] = _id()
    code: Mapped[str] = mapped_column(Code, unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    region: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (CheckConstraint("kind IN ('fund', 'insurer', 'mutual_aid', 'charity')", name="kind"),)


class Person(Base):
    """An insured person, known to cashiers by the insurance number (人员编号, `psn_no`).

    The national ID number and the name are personal data: stored encrypted (tenant
    `people:{region}`), the ID number also as a keyed blind index for lookup.
    """

    __tablename__ = "people"

    id: Mapped[uuid.UUID] = _id()
    psn_no: Mapped[str] = mapped_column(Code, unique=True)
    id_number_ct: Mapped[bytes] = mapped_column(LargeBinary)
    id_number_index: Mapped[str] = mapped_column(String(64), unique=True)
    name_ct: Mapped[bytes] = mapped_column(LargeBinary)
    insurance_type: Mapped[str] = mapped_column(String(16))
    region: Mapped[str] = mapped_column(String(16), index=True)
    memberships: Mapped[list[str]] = mapped_column(JSON, default=list)
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)

    __table_args__ = (CheckConstraint("insurance_type IN ('employee', 'resident')", name="insurance_type"),)


class FormularyVersion(Base):
    """The basic formulary and commercial catalogue of a region from `effective_from` on."""

    __tablename__ = "formulary_versions"

    id: Mapped[uuid.UUID] = _id()
    region: Mapped[str] = mapped_column(String(16))
    effective_from: Mapped[date] = mapped_column(Date)
    self_pay_first_ratio_ppm: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (UniqueConstraint("region", "effective_from"),)


class BasicEntry(Base):
    __tablename__ = "basic_entries"

    id: Mapped[uuid.UUID] = _id()
    formulary_version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("formulary_versions.id"))
    drug_code: Mapped[str] = mapped_column(Code)
    category: Mapped[str] = mapped_column(String(1))
    payment_standard_fen: Mapped[int | None] = mapped_column(Money)
    self_pay_first_ratio_ppm: Mapped[int | None] = mapped_column(Integer)
    negotiated: Mapped[bool] = mapped_column(Boolean)
    dual_channel: Mapped[bool] = mapped_column(Boolean)
    restricted_diagnoses: Mapped[list[str]] = mapped_column(JSON)
    restricted_visits: Mapped[list[str]] = mapped_column(JSON)

    __table_args__ = (
        UniqueConstraint("formulary_version_id", "drug_code"),
        CheckConstraint("category IN ('A', 'B')", name="category"),
    )


class CommercialEntry(Base):
    """A drug of the commercial innovative-drug catalogue under one insurer. Its settlement price
    is confidential: encrypted under the insurer's own keys (tenant `insurer:{code}`).
    """

    __tablename__ = "commercial_entries"

    id: Mapped[uuid.UUID] = _id()
    formulary_version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("formulary_versions.id"))
    drug_code: Mapped[str] = mapped_column(Code)
    insurer_code: Mapped[str] = mapped_column(Code)
    settlement_price_ct: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (UniqueConstraint("formulary_version_id", "drug_code", "insurer_code"),)


class PlanVersion(Base):
    """One payer's plan from `effective_from` on; `definition` is the plan object of SCENARIO.md."""

    __tablename__ = "plan_versions"

    id: Mapped[uuid.UUID] = _id()
    plan_code: Mapped[str] = mapped_column(Code)
    payer_code: Mapped[str] = mapped_column(Code, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    region: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer)
    effective_from: Mapped[date] = mapped_column(Date)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (UniqueConstraint("plan_code", "effective_from"), Index(None, "region", "effective_from"))


class Accumulator(Base):
    """One person's totals under one plan (by stable code) in one calendar year (Asia/Shanghai)."""

    __tablename__ = "accumulators"

    id: Mapped[uuid.UUID] = _id()
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"))
    plan_code: Mapped[str] = mapped_column(Code)
    year: Mapped[int] = mapped_column(Integer)
    deductible_met_fen: Mapped[int] = mapped_column(Money, default=0)
    base_spent_fen: Mapped[int] = mapped_column(Money, default=0)
    paid_fen: Mapped[int] = mapped_column(Money, default=0)
    claims: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (UniqueConstraint("person_id", "year", "plan_code"),)


class UnitsReceived(Base):
    """Units of one drug a person received in one year (donation programmes count them)."""

    __tablename__ = "units_received"

    id: Mapped[uuid.UUID] = _id()
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"))
    drug_code: Mapped[str] = mapped_column(Code)
    year: Mapped[int] = mapped_column(Integer)
    units: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (UniqueConstraint("person_id", "year", "drug_code"),)


class PrepaymentPool(Base):
    """Money a payer has advanced to an institution (预付金); settlements draw on it."""

    __tablename__ = "prepayment_pools"

    id: Mapped[uuid.UUID] = _id()
    payer_code: Mapped[str] = mapped_column(Code)
    institution_code: Mapped[str] = mapped_column(Code, index=True)
    granted_fen: Mapped[int] = mapped_column(Money, default=0)
    drawn_fen: Mapped[int] = mapped_column(Money, default=0)
    returned_fen: Mapped[int] = mapped_column(Money, default=0)
    balance_fen: Mapped[int] = mapped_column(Money, default=0)

    __table_args__ = (
        UniqueConstraint("payer_code", "institution_code"),
        CheckConstraint("balance_fen >= 0", name="not_overdrawn"),
        CheckConstraint("balance_fen = granted_fen - drawn_fen + returned_fen", name="balance"),
    )


class PrepaymentGrant(Base):
    """Money advanced into a pool. `reference` (the payer's transfer reference) makes it idempotent."""

    __tablename__ = "prepayment_grants"

    id: Mapped[uuid.UUID] = _id()
    reference: Mapped[str] = mapped_column(String(100), unique=True)
    pool_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("prepayment_pools.id"))
    amount_fen: Mapped[int] = mapped_column(Money)
    granted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    note: Mapped[str] = mapped_column(String(200), default="")

    __table_args__ = (CheckConstraint("amount_fen > 0", name="positive"),)


class Settlement(Base):
    """A committed adjudication of one claim. (institution_code, serial) is the idempotency key;
    `request_hash` is the SHA-256 of the request's canonical JSON. Supervisors of both its regions
    see it: the treating institution's and the patient's insuring region (异地就医).
    """

    __tablename__ = "settlements"

    id: Mapped[uuid.UUID] = _id()
    institution_code: Mapped[str] = mapped_column(Code)
    region: Mapped[str] = mapped_column(String(16), index=True)  # the institution's (就医地): its formulary priced it
    insured_region: Mapped[str] = mapped_column(String(16), index=True)  # the patient's (参保地): its plans paid
    serial: Mapped[str] = mapped_column(String(100))
    request_hash: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"))
    service_date: Mapped[date] = mapped_column(Date)
    year: Mapped[int] = mapped_column(Integer)
    visit: Mapped[str] = mapped_column(String(16))
    diagnoses: Mapped[list[str]] = mapped_column(JSON)
    drg_group: Mapped[str | None] = mapped_column(String(32))
    prescribing_hospital: Mapped[str | None] = mapped_column(Code)
    formulary_version_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("formulary_versions.id"))
    status: Mapped[str] = mapped_column(String(16))
    total_fen: Mapped[int] = mapped_column(Money)
    in_scope_fen: Mapped[int] = mapped_column(Money)
    self_pay_first_fen: Mapped[int] = mapped_column(Money)
    above_standard_fen: Mapped[int] = mapped_column(Money)
    out_of_scope_fen: Mapped[int] = mapped_column(Money)
    patient_fen: Mapped[int] = mapped_column(Money)
    settled_at: Mapped[datetime] = mapped_column(UtcDateTime())
    reversed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    reversal_reason: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        UniqueConstraint("institution_code", "serial"),
        Index(None, "person_id", "year"),
        Index(None, "service_date"),
        CheckConstraint("status IN ('settled', 'reversed')", name="status"),
    )


class VoidedSerial(Base):
    """A serial reversed (冲正) before any settlement of it arrived: a late copy must not settle."""

    __tablename__ = "voided_serials"

    id: Mapped[uuid.UUID] = _id()
    institution_code: Mapped[str] = mapped_column(Code)
    serial: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(500))
    voided_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (UniqueConstraint("institution_code", "serial"),)


class SettlementLine(Base):
    __tablename__ = "settlement_lines"

    id: Mapped[uuid.UUID] = _id()
    settlement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("settlements.id"))
    line_index: Mapped[int] = mapped_column(Integer)
    drug_code: Mapped[str] = mapped_column(Code, index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_fen: Mapped[int] = mapped_column(Money)
    total_fen: Mapped[int] = mapped_column(Money)
    donated_units: Mapped[int] = mapped_column(Integer)
    in_scope_fen: Mapped[int] = mapped_column(Money)
    self_pay_first_fen: Mapped[int] = mapped_column(Money)
    above_standard_fen: Mapped[int] = mapped_column(Money)
    out_of_scope_fen: Mapped[int] = mapped_column(Money)
    patient_fen: Mapped[int] = mapped_column(Money)
    reasons: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    trace_codes: Mapped[list[str]] = mapped_column(JSON)
    split: Mapped[bool] = mapped_column(Boolean, default=False)
    prescription_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (UniqueConstraint("settlement_id", "line_index"),)


class SettlementPayer(Base):
    """One plan's share of a settlement, and how it was funded: drawn from the pool or owed."""

    __tablename__ = "settlement_payers"

    id: Mapped[uuid.UUID] = _id()
    settlement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("settlements.id"))
    position: Mapped[int] = mapped_column(Integer)
    plan_code: Mapped[str] = mapped_column(Code)
    plan_version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("plan_versions.id"))
    payer_code: Mapped[str] = mapped_column(Code, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    amount_fen: Mapped[int] = mapped_column(Money)
    base_fen: Mapped[int] = mapped_column(Money)
    deductible_applied_fen: Mapped[int] = mapped_column(Money)
    drawn_fen: Mapped[int] = mapped_column(Money)
    receivable_fen: Mapped[int] = mapped_column(Money)
    reasons: Mapped[list[dict[str, str]]] = mapped_column(JSON)

    __table_args__ = (
        UniqueConstraint("settlement_id", "position"),
        CheckConstraint("amount_fen = drawn_fen + receivable_fen", name="funded"),
    )


class SettlementLinePayment(Base):
    """What one plan paid on one line (only non-zero amounts are stored)."""

    __tablename__ = "settlement_line_payments"

    id: Mapped[uuid.UUID] = _id()
    settlement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("settlements.id"))
    line_index: Mapped[int] = mapped_column(Integer)
    plan_code: Mapped[str] = mapped_column(Code)
    amount_fen: Mapped[int] = mapped_column(Money)

    __table_args__ = (UniqueConstraint("settlement_id", "line_index", "plan_code"),)


class SettlementAccumulatorChange(Base):
    """Exactly what a settlement added to one accumulator: what its reversal subtracts."""

    __tablename__ = "settlement_accumulator_changes"

    id: Mapped[uuid.UUID] = _id()
    settlement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("settlements.id"))
    plan_code: Mapped[str] = mapped_column(Code)
    deductible_met_fen: Mapped[int] = mapped_column(Money)
    base_spent_fen: Mapped[int] = mapped_column(Money)
    paid_fen: Mapped[int] = mapped_column(Money)
    claims: Mapped[int] = mapped_column(Integer)

    __table_args__ = (UniqueConstraint("settlement_id", "plan_code"),)


class SettlementRebate(Base):
    """A manufacturer's rebate owed to an insurer on one line. Derived from the confidential
    price, so encrypted like it (tenant `insurer:{code}`). `not_computable`: the insurer's price
    could not be read when the claim settled (its key was destroyed); no amount was derived, and
    the row stays so that the insurer sees which rebates it lost.
    """

    __tablename__ = "settlement_rebates"

    id: Mapped[uuid.UUID] = _id()
    settlement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("settlements.id"))
    line_index: Mapped[int] = mapped_column(Integer)
    drug_code: Mapped[str] = mapped_column(Code)
    insurer_code: Mapped[str] = mapped_column(Code, index=True)
    status: Mapped[str] = mapped_column(String(16), default="computed")
    amount_ct: Mapped[bytes | None] = mapped_column(LargeBinary)

    __table_args__ = (
        CheckConstraint(
            "(status = 'computed' AND amount_ct IS NOT NULL) OR (status = 'not_computable' AND amount_ct IS NULL)",
            name="status",
        ),
    )


class LedgerEntry(Base):
    """One posting of a balanced transaction: credit positive, debit negative; each transaction,
    and so the whole ledger, sums to zero. `code` says why the money moved.
    """

    __tablename__ = "ledger_entries"

    id: Mapped[uuid.UUID] = _id()
    transaction_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    settlement_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("settlements.id"), index=True)
    grant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("prepayment_grants.id"))
    account: Mapped[str] = mapped_column(String(160), index=True)
    amount_fen: Mapped[int] = mapped_column(Money)
    code: Mapped[str] = mapped_column(String(32))
    posted_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AuditEntry(Base):
    """Who did what, when, with which token: every write, and every denied attempt.

    `outcome` is `allowed` (a write that happened, recorded in its own transaction), `denied`
    (refused by authorization) or `unauthenticated` (no valid token; the token id it claimed, if
    any, is recorded as claimed, not as verified).

    `mac` authenticates the entry under the keyring's audit MAC key `mac_key_id`, which the
    database never holds: a row inserted behind the service's back cannot carry a valid one.
    `position` numbers entries as they are inserted and `txid` is the writing transaction
    (PostgreSQL's xid, stamped by a trigger; 0 on SQLite, whose single writer makes `position`
    the commit order): the sealer takes entries in (txid, position) order once every older
    transaction has ended, so an entry that commits late is never skipped.
    """

    __tablename__ = "audit_log"

    id: Mapped[uuid.UUID] = _id()
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    token_id: Mapped[str | None] = mapped_column(String(100))
    subject: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str | None] = mapped_column(String(16))
    org: Mapped[str | None] = mapped_column(Code)
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    mac_key_id: Mapped[str | None] = mapped_column(String(100))
    mac: Mapped[str | None] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    txid: Mapped[int] = mapped_column(BigInteger, server_default="0")

    __table_args__ = (
        CheckConstraint("outcome IN ('allowed', 'denied', 'unauthenticated')", name="outcome"),
        Index("ix_audit_log_txid_position", "txid", "position"),
    )


class DataKey(Base):
    """A data key, wrapped by its tenant's master key. Ciphertexts name it; `settle keys rewrap`
    re-wraps it under a newer master key without touching them.
    """

    __tablename__ = "data_keys"

    id: Mapped[uuid.UUID] = _id()
    tenant: Mapped[str] = mapped_column(String(100))
    master_key_id: Mapped[str] = mapped_column(String(100), index=True)
    suite: Mapped[int] = mapped_column(Integer)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    rewrapped_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class TracePackage(Base):
    """One package known by its traceability code: how many of its units are sold (net of
    returns). Its row is what concurrent sales of one code queue on.
    """

    __tablename__ = "trace_packages"

    id: Mapped[uuid.UUID] = _id()
    code: Mapped[str] = mapped_column(String(20), unique=True)
    drug_code: Mapped[str] = mapped_column(Code)
    package_units: Mapped[int] = mapped_column(Integer)
    units_sold: Mapped[int] = mapped_column(Integer, default=0)
    last_event_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (CheckConstraint("units_sold >= 0 AND units_sold <= package_units", name="units"),)


class TraceEvent(Base):
    """Every use of a code: sold or returned, where, on which line, how many units, for whom
    (the patient by the keyed blind index of their ID number), when. Append-only.
    """

    __tablename__ = "trace_events"

    id: Mapped[uuid.UUID] = _id()
    code: Mapped[str] = mapped_column(String(20), index=True)
    drug_code: Mapped[str] = mapped_column(Code)
    kind: Mapped[str] = mapped_column(String(16))
    institution_code: Mapped[str] = mapped_column(Code)
    region: Mapped[str] = mapped_column(String(16))
    settlement_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("settlements.id"), index=True)
    line_index: Mapped[int] = mapped_column(Integer)
    units: Mapped[int] = mapped_column(Integer)
    patient_index: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (CheckConstraint("kind IN ('sold', 'returned')", name="kind"),)


class TracePolicy(Base):
    """An institution's rules for one drug: refuse or accept-and-flag invalid codes; whether it
    may settle stock without codes (the regulators' temporary no-code list).
    """

    __tablename__ = "trace_policies"

    id: Mapped[uuid.UUID] = _id()
    institution_code: Mapped[str] = mapped_column(Code)
    drug_code: Mapped[str] = mapped_column(Code)
    invalid_codes: Mapped[str] = mapped_column(String(16))
    no_code_stock: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (
        UniqueConstraint("institution_code", "drug_code"),
        CheckConstraint("invalid_codes IN ('refuse', 'accept_and_flag')", name="invalid_codes"),
    )


class Prescription(Base):
    """An electronic prescription, recorded by the prescribing hospital; dual-channel pharmacy
    sales are matched to it by id, patient and drug.
    """

    __tablename__ = "prescriptions"

    id: Mapped[uuid.UUID] = _id()
    prescription_id: Mapped[str] = mapped_column(String(64), unique=True)
    hospital_code: Mapped[str] = mapped_column(Code)
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"))
    drugs: Mapped[list[str]] = mapped_column(JSON)
    issued_on: Mapped[date] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Anomaly(Base):
    """Something a fund supervisor should look at, detected when written or by a scan.

    `fingerprint` names what was detected (kind and the record it concerns), so that a scan run
    again finds nothing new. `status` is that of its latest step (`AnomalyStep`; open before the
    first): explained (by the institution), confirmed or dismissed (by a supervisor).

    `handled_by`, `handled_at` and `note` are read-only: what the service kept before handling
    was kept in steps (revision 0009 copied them into `anomaly_steps`); nothing writes them now.
    """

    __tablename__ = "anomalies"

    id: Mapped[uuid.UUID] = _id()
    kind: Mapped[str] = mapped_column(String(32), index=True)
    severity: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    fingerprint: Mapped[str] = mapped_column(String(200), unique=True)
    code: Mapped[str | None] = mapped_column(String(40), index=True)
    institution_code: Mapped[str] = mapped_column(Code, index=True)
    region: Mapped[str] = mapped_column(String(16), index=True)
    drug_code: Mapped[str | None] = mapped_column(Code)
    settlement_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    detected_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    detected_by: Mapped[str] = mapped_column(String(8))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    handled_by: Mapped[str | None] = mapped_column(String(200))
    handled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    note: Mapped[str | None] = mapped_column(String(1000))

    __table_args__ = (
        CheckConstraint("severity IN ('low', 'medium', 'high')", name="severity"),
        CheckConstraint("status IN ('open', 'explained', 'confirmed', 'dismissed')", name="status"),
        CheckConstraint("detected_by IN ('write', 'scan')", name="detected_by"),
    )


class AnomalyStep(Base):
    """One step in handling an anomaly: its institution's explanation, or a supervisor's decision
    (confirmed or dismissed) with the reason. Append-only: a later step never changes an earlier
    one. `sequence` numbers an anomaly's steps from 1, in the order they were taken.

    Who took it, each once: `role`, `org` (their institution or bureau) and `subject` (the
    person, as their token names them), as the audit log names a caller.
    """

    __tablename__ = "anomaly_steps"

    id: Mapped[uuid.UUID] = _id()
    anomaly_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("anomalies.id"))
    sequence: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(String(1000))
    role: Mapped[str] = mapped_column(String(16))
    org: Mapped[str] = mapped_column(Code)
    subject: Mapped[str] = mapped_column(String(200))
    taken_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        CheckConstraint("kind IN ('explained', 'confirmed', 'dismissed')", name="kind"),
        CheckConstraint("sequence >= 1", name="sequence_positive"),
        UniqueConstraint("anomaly_id", "sequence"),
    )


class AuditSeal(Base):
    """The audit log's hash chain: entry `sequence` seals one audit entry, holding the hash of
    the previous seal. Written by the sealer shortly after entries commit. Append-only.

    (`entry_txid`, `entry_position`) is where the sealed entry stands in the sealer's order: the
    last seal says where the next round starts, without reading the log before it.
    """

    __tablename__ = "audit_seals"

    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    entry_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    previous_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))
    sealed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    entry_txid: Mapped[int] = mapped_column(BigInteger, server_default="0")
    entry_position: Mapped[int | None] = mapped_column(BigInteger)


class AuditCheckpoint(Base):
    """A signature (Ed25519) over the chain's head at `sequence` and the time it was signed:
    altering the chain and recomputing every hash after it still breaks the signature. Each is
    also written outside the database, to the witnesses. Append-only.
    """

    __tablename__ = "audit_checkpoints"

    id: Mapped[uuid.UUID] = _id()
    sequence: Mapped[int] = mapped_column(BigInteger, unique=True)
    entry_hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(100))
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    signed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AuditRejection(Base):
    """An audit entry the sealer refused to chain (its MAC does not verify: the service did not
    write it), set aside so that the sealer moves past it once and never reads it again. The
    supervisors see it as an AUDIT_FORGERY anomaly. Append-only.
    """

    __tablename__ = "audit_rejections"

    entry_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    entry_txid: Mapped[int] = mapped_column(BigInteger)
    entry_position: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200))
    rejected_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_audit_rejections_entry_txid_entry_position", "entry_txid", "entry_position"),)
