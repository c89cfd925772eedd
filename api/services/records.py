"""A settlement as rows (what is written and read back) and as a view (what callers are shown).

The rows of a new settlement are built once from the engine's result; they are inserted as they
are, and the same function that renders stored rows renders them, so that a pre-settlement, a
fresh settlement and a settlement read back a year later show the same figures the same way.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from adjudication import Adjudication, Part
from api.auth import Principal
from api.crypto.envelope import DecryptionError, FieldCipher, Place
from api.crypto.tenants import insurer_tenant
from api.db import models
from api.ids import uuid7
from api.services import access, audit

Row = dict[str, Any]


@dataclass(slots=True)
class SettlementRows:
    settlement: Row
    lines: list[Row] = field(default_factory=list)
    payers: list[Row] = field(default_factory=list)
    payments: list[Row] = field(default_factory=list)
    changes: list[Row] = field(default_factory=list)
    rebates: list[Row] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ReasonView:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class FundShareView:
    """One plan's share: what it paid, on what base, after which deductible, funded how."""

    plan: str
    payer: str
    kind: str
    amount_fen: int
    base_fen: int
    deductible_applied_fen: int
    drawn_fen: int
    receivable_fen: int
    reasons: tuple[ReasonView, ...]


@dataclass(frozen=True, slots=True)
class LinePaymentView:
    plan: str
    amount_fen: int


@dataclass(frozen=True, slots=True)
class LineView:
    index: int
    drug: str
    quantity: int
    donated_units: int
    unit_price_fen: int
    total_fen: int
    in_scope_fen: int
    self_pay_first_fen: int
    above_standard_fen: int
    out_of_scope_fen: int
    payments: tuple[LinePaymentView, ...]
    patient_fen: int
    reasons: tuple[ReasonView, ...]
    trace_codes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RebateView:
    """A rebate. `computable` is False when the insurer's price could not be read when the claim
    settled: there is no amount. Otherwise `amount_fen` is None (masked) unless the caller may
    read the insurer's prices, and `unreadable` says why a rebate the caller may read could not
    be decrypted (its key destroyed): an error of that field alone, not of the settlement.
    """

    line: int
    drug: str
    insurer: str
    amount_fen: int | None
    computable: bool = True
    unreadable: DecryptionError | None = None


@dataclass(frozen=True, slots=True)
class SettlementView:
    """A settlement slip: the claim's identity, its status and its explanation of benefits."""

    id: uuid.UUID
    institution: str
    serial: str
    person: str
    service_date: date
    year: int
    visit: str
    diagnoses: tuple[str, ...]
    status: str
    settled_at: datetime
    reversed_at: datetime | None
    reversal_reason: str | None
    total_fen: int
    in_scope_fen: int
    self_pay_first_fen: int
    above_standard_fen: int
    out_of_scope_fen: int
    patient_fen: int
    funds: tuple[FundShareView, ...]
    lines: tuple[LineView, ...]
    rebates: tuple[RebateView, ...] = ()
    """Read back from storage (a fresh settlement, shown to the institution, lists none)."""


def _reasons(stored: Iterable[Mapping[str, str]]) -> tuple[ReasonView, ...]:
    return tuple(ReasonView(reason["code"], reason["message"]) for reason in stored)


def view(rows: SettlementRows, person: str) -> SettlementView:
    settlement = rows.settlement
    positions = {payer["plan_code"]: payer["position"] for payer in rows.payers}
    payments: dict[int, list[LinePaymentView]] = defaultdict(list)
    for payment in sorted(rows.payments, key=lambda p: (p["line_index"], positions[p["plan_code"]])):
        payments[payment["line_index"]].append(LinePaymentView(payment["plan_code"], payment["amount_fen"]))
    return SettlementView(
        id=settlement["id"],
        institution=settlement["institution_code"],
        serial=settlement["serial"],
        person=person,
        service_date=settlement["service_date"],
        year=settlement["year"],
        visit=settlement["visit"],
        diagnoses=tuple(settlement["diagnoses"]),
        status=settlement["status"],
        settled_at=settlement["settled_at"],
        reversed_at=settlement["reversed_at"],
        reversal_reason=settlement["reversal_reason"],
        total_fen=settlement["total_fen"],
        in_scope_fen=settlement["in_scope_fen"],
        self_pay_first_fen=settlement["self_pay_first_fen"],
        above_standard_fen=settlement["above_standard_fen"],
        out_of_scope_fen=settlement["out_of_scope_fen"],
        patient_fen=settlement["patient_fen"],
        funds=tuple(
            FundShareView(
                plan=payer["plan_code"],
                payer=payer["payer_code"],
                kind=payer["kind"],
                amount_fen=payer["amount_fen"],
                base_fen=payer["base_fen"],
                deductible_applied_fen=payer["deductible_applied_fen"],
                drawn_fen=payer["drawn_fen"],
                receivable_fen=payer["receivable_fen"],
                reasons=_reasons(payer["reasons"]),
            )
            for payer in sorted(rows.payers, key=lambda p: p["position"])
        ),
        lines=tuple(
            LineView(
                index=line["line_index"],
                drug=line["drug_code"],
                quantity=line["quantity"],
                donated_units=line["donated_units"],
                unit_price_fen=line["unit_price_fen"],
                total_fen=line["total_fen"],
                in_scope_fen=line["in_scope_fen"],
                self_pay_first_fen=line["self_pay_first_fen"],
                above_standard_fen=line["above_standard_fen"],
                out_of_scope_fen=line["out_of_scope_fen"],
                payments=tuple(payments[line["line_index"]]),
                patient_fen=line["patient_fen"],
                reasons=_reasons(line["reasons"]),
                trace_codes=tuple(line["trace_codes"]),
            )
            for line in sorted(rows.lines, key=lambda line: line["line_index"])
        ),
    )


def reasons_of(result_reasons: Iterable[Any]) -> list[dict[str, str]]:
    return [{"code": reason.code.value, "message": reason.message} for reason in result_reasons]


def rows_for(
    *,
    settlement: Row,
    result: Adjudication,
    plan_versions: Mapping[str, uuid.UUID],
    request_lines: Sequence[Any],
) -> SettlementRows:
    """The rows of a new settlement. `settlement` carries its identity columns; the split's
    columns, and all children, come from `result`. The payers are unfunded (all receivable)
    until the pools are drawn on, last.
    """
    settlement_id = settlement["id"]
    settlement.update(
        total_fen=result.total,
        in_scope_fen=result.parts[Part.IN_SCOPE],
        self_pay_first_fen=result.parts[Part.SELF_PAY_FIRST],
        above_standard_fen=result.parts[Part.ABOVE_STANDARD],
        out_of_scope_fen=result.parts[Part.OUT_OF_SCOPE],
        patient_fen=result.patient,
    )
    rows = SettlementRows(settlement)
    for line, request_line in zip(result.lines, request_lines, strict=True):
        rows.lines.append(
            {
                "id": uuid7(),
                "settlement_id": settlement_id,
                "line_index": line.index,
                "drug_code": line.drug,
                "quantity": line.quantity,
                "unit_price_fen": request_line.unit_price,
                "total_fen": line.total,
                "donated_units": line.donated_units,
                "in_scope_fen": line.parts[Part.IN_SCOPE],
                "self_pay_first_fen": line.parts[Part.SELF_PAY_FIRST],
                "above_standard_fen": line.parts[Part.ABOVE_STANDARD],
                "out_of_scope_fen": line.parts[Part.OUT_OF_SCOPE],
                "patient_fen": line.patient,
                "reasons": reasons_of(line.reasons),
                "trace_codes": list(request_line.trace_codes),
                "split": request_line.split,
                "prescription_id": request_line.prescription_id,
            }
        )
        for plan_code, amount in line.paid.items():
            if amount:
                rows.payments.append(
                    {
                        "id": uuid7(),
                        "settlement_id": settlement_id,
                        "line_index": line.index,
                        "plan_code": plan_code,
                        "amount_fen": amount,
                    }
                )
    for position, payer in enumerate(result.payers):
        rows.payers.append(
            {
                "id": uuid7(),
                "settlement_id": settlement_id,
                "position": position,
                "plan_code": payer.plan,
                "plan_version_id": plan_versions[payer.plan],
                "payer_code": payer.payer,
                "kind": payer.kind.value,
                "amount_fen": payer.amount,
                "base_fen": payer.base,
                "deductible_applied_fen": payer.deductible_applied,
                "drawn_fen": 0,
                "receivable_fen": payer.amount,
                "reasons": reasons_of(payer.reasons),
            }
        )
    for plan_code, change in result.accumulator_changes.items():
        rows.changes.append(
            {
                "id": uuid7(),
                "settlement_id": settlement_id,
                "plan_code": plan_code,
                "deductible_met_fen": change.deductible_met,
                "base_spent_fen": change.base_spent,
                "paid_fen": change.paid,
                "claims": change.claims,
            }
        )
    for rebate in result.rebates:
        rows.rebates.append(
            {
                "id": uuid7(),
                "settlement_id": settlement_id,
                "line_index": rebate.line,
                "drug_code": rebate.drug,
                "insurer_code": rebate.insurer,
                "amount_fen": rebate.amount,
            }
        )
    return rows


async def read_settlements(
    session: AsyncSession,
    cipher: FieldCipher,
    principal: Principal,
    ids: Sequence[uuid.UUID],
    disclosures: list[audit.AuditRecord],
) -> dict[uuid.UUID, SettlementView]:
    """Stored settlements by id that `principal` may see, children loaded one query per table.

    Rebates are decrypted only for the callers who may read their insurer's prices (each such
    decryption is added to `disclosures`, for the caller to audit); for everyone else their
    amounts are masked. A rebate that cannot be decrypted (its insurer's key destroyed) is kept
    with its error, for its own field to report: the rest of the settlement reads.
    """
    if not ids:
        return {}
    settlements = models.Settlement.__table__
    people = models.Person.__table__
    found = (
        (
            await session.execute(
                select(settlements, people.c.psn_no)
                .join(people, people.c.id == settlements.c.person_id)
                .where(settlements.c.id.in_(ids), access.settlements(principal))
            )
        )
        .mappings()
        .all()
    )
    rows = {row["id"]: SettlementRows({k: v for k, v in row.items() if k != "psn_no"}) for row in found}
    person = {row["id"]: row["psn_no"] for row in found}
    children: list[tuple[Any, str]] = [
        (models.SettlementLine.__table__, "lines"),
        (models.SettlementPayer.__table__, "payers"),
        (models.SettlementLinePayment.__table__, "payments"),
    ]
    for table, attribute in children:
        for child in (await session.execute(select(table).where(table.c.settlement_id.in_(rows)))).mappings():
            getattr(rows[child["settlement_id"]], attribute).append(dict(child))
    rebates = models.SettlementRebate.__table__
    shown: dict[uuid.UUID, list[RebateView]] = defaultdict(list)
    decrypted: list[str] = []
    for rebate in (
        await session.execute(select(rebates).where(rebates.c.settlement_id.in_(rows)).order_by(rebates.c.line_index))
    ).mappings():
        amount: int | None = None
        unreadable: DecryptionError | None = None
        computable = rebate["status"] == "computed"
        region = rows[rebate["settlement_id"]].settlement["region"]
        if computable and access.may_read_rebate(principal, rebate["insurer_code"], region):
            place = Place("settlement_rebates", "amount_ct", rebate["id"], insurer_tenant(rebate["insurer_code"]))
            try:
                amount = await cipher.decrypt_amount(place, rebate["amount_ct"], session)
                decrypted.append(str(rebate["id"]))
            except DecryptionError as error:
                unreadable = error
        shown[rebate["settlement_id"]].append(
            RebateView(
                rebate["line_index"], rebate["drug_code"], rebate["insurer_code"], amount, computable, unreadable
            )
        )
    if decrypted:
        disclosures.append(
            audit.AuditRecord(
                audit.Actor.of(principal),
                "decrypt settlement_rebates.amount_ct",
                "allowed",
                datetime.now(UTC),
                f"settlements:{','.join(sorted({str(i) for i in rows}))}"[:200],
                {"rebates": decrypted},
            ),
        )
    return {
        settlement_id: replace(view(record, person[settlement_id]), rebates=tuple(shown[settlement_id]))
        for settlement_id, record in rows.items()
    }
