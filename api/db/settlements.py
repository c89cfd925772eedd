"""Where settlements are kept: a new one staged with its lines, payments, accumulator changes,
rebates (encrypted), funded shares and ledger transaction; one reversed or a serial voided; and
stored ones read back, for a reader, as the same `api.settlement.Settlement` that was written.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.engine import Result

from adjudication import Accumulator, PlanKind, Reason, ReasonCode, Visit
from adjudication.ledger import Posting, Why
from api.crypto.envelope import DecryptionError, Place
from api.crypto.tenants import insurer_tenant
from api.db import models
from api.db.base import Base, table_of
from api.db.ledger import entry_rows
from api.db.writes import Mode, Write
from api.ids import uuid7
from api.services import audit
from api.settlement import FundShare, LinePayment, Rebate, Settlement, SettlementLine, SettlementStatus

if TYPE_CHECKING:
    from api.db.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class Reader:
    """Who reads stored settlements: which rows they may see (`visible`, a filter on the
    settlements table), whose prices they may read, and who they are, for the audit of what
    is decrypted for them. Decided by the service (api/services/access.py).
    """

    visible: ColumnElement[bool]
    may_read_rebate: Callable[[str, str], bool]
    """Whether the reader sees in clear a rebate owed to an insurer (first) on a settlement
    treated in a region (second): a rebate derives from that region's confidential price."""
    actor: audit.Actor


_SAME_NAMES = (
    "region", "insured_region", "serial", "request_hash", "person_id", "service_date", "year", "drg_group",
    "prescribing_hospital", "formulary_version_id", "settled_at", "reversed_at", "reversal_reason", "total_fen",
    "in_scope_fen", "self_pay_first_fen", "above_standard_fen", "out_of_scope_fen", "patient_fen",
)  # fmt: skip
"""A settlement's fields stored under their own names in `settlements`."""


class Settlements:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    async def record(self, settlement: Settlement) -> None:
        """Stage a new settlement with its lines, the plans' payments on them, what it adds to
        the accumulators, and its rebates (each encrypted under its insurer's keys). Its funding
        follows with `fund`, once the pools are locked.
        """
        s = settlement
        row = {name: getattr(s, name) for name in _SAME_NAMES} | {
            "id": s.id,
            "institution_code": s.institution,
            "visit": s.visit.value,
            "diagnoses": list(s.diagnoses),
            "status": s.status.value,
        }
        payments = [
            {
                "id": uuid7(),
                "settlement_id": s.id,
                "line_index": line.index,
                "plan_code": p.plan,
                "amount_fen": p.amount_fen,
            }
            for line in s.lines
            for p in line.payments
        ]
        changes = [
            {
                "id": uuid7(),
                "settlement_id": s.id,
                "plan_code": plan,
                "deductible_met_fen": change.deductible_met,
                "base_spent_fen": change.base_spent,
                "paid_fen": change.paid,
                "claims": change.claims,
            }
            for plan, change in s.changes.items()
        ]
        self.uow.stage(
            Write.of(table_of(models.Settlement), [row]),
            Write.of(table_of(models.SettlementLine), [_line_row(s.id, line) for line in s.lines]),
            Write.of(table_of(models.SettlementLinePayment), payments),
            Write.of(table_of(models.SettlementAccumulatorChange), changes),
            Write.of(table_of(models.SettlementRebate), [await self._rebate_row(s.id, r) for r in s.rebates]),
        )

    def fund(self, settlement: Settlement, postings: Sequence[Posting]) -> None:
        """Stage a settlement's funded shares and its ledger transaction."""
        payers = [
            {
                "id": uuid7(),
                "settlement_id": settlement.id,
                "position": position,
                "plan_code": fund.plan,
                "plan_version_id": fund.plan_version_id,
                "payer_code": fund.payer,
                "kind": fund.kind.value,
                "amount_fen": fund.amount_fen,
                "base_fen": fund.base_fen,
                "deductible_applied_fen": fund.deductible_applied_fen,
                "drawn_fen": fund.drawn_fen,
                "receivable_fen": fund.receivable_fen,
                "reasons": _reason_rows(fund.reasons),
            }
            for position, fund in enumerate(settlement.funds)
        ]
        assert settlement.settled_at is not None
        entries = entry_rows(postings, settlement.settled_at, settlement_id=settlement.id)
        self.uow.stage(
            Write.of(table_of(models.SettlementPayer), payers), Write.of(table_of(models.LedgerEntry), entries)
        )

    def reverse(self, settlement: Settlement, at: datetime, reason: str, postings: Sequence[Posting]) -> None:
        """Stage a reversal: the settlement's status, and the ledger transaction that undoes it."""
        self.uow.stage(
            Write.updates(
                table_of(models.Settlement),
                ("status", "reversed_at", "reversal_reason"),
                [(settlement.id, SettlementStatus.REVERSED.value, at, reason)],
            ),
            Write.of(table_of(models.LedgerEntry), entry_rows(postings, at, settlement_id=settlement.id)),
        )

    def void(self, institution: str, serial: str, reason: str, at: datetime) -> None:
        """Stage the voiding of a serial that never settled, so that a late copy cannot settle."""
        row = {"id": uuid7(), "institution_code": institution, "serial": serial, "reason": reason, "voided_at": at}
        self.uow.stage(
            Write.of(table_of(models.VoidedSerial), [row], Mode.INSERT_MISSING, ("institution_code", "serial"))
        )

    async def lock(
        self, reader: Reader, *, id: uuid.UUID | None = None, serial: tuple[str, str] | None = None
    ) -> Settlement | None:
        """The settlement named by id, or by (institution, serial), that `reader` may see,
        locked for its reversal (it stands for lock 1, the idempotency key, when named by id).
        """
        table = table_of(models.Settlement)
        if id is not None:
            where = table.c.id == id
        else:
            assert serial is not None
            where = (table.c.institution_code == serial[0]) & (table.c.serial == serial[1])
        statement = select(table.c.id).where(where, reader.visible).with_for_update()
        found = (await self.uow.execute(statement)).scalar_one_or_none()
        if found is None:
            return None
        return (await self.read([found], reader))[found]

    async def postings(self, settlement_id: uuid.UUID) -> list[Posting]:
        entries = table_of(models.LedgerEntry)
        statement = select(entries.c.account, entries.c.amount_fen, entries.c.code).where(
            entries.c.settlement_id == settlement_id
        )
        return [Posting(account, amount, Why(code)) for account, amount, code in await self.uow.rows(statement)]

    async def later(self, settlement: Settlement, reader: Reader) -> tuple[list[uuid.UUID], int]:
        """The live settlements of the same person and year settled after this one: the ids of
        those `reader` may see, and how many others there are.
        """
        table = table_of(models.Settlement)
        statement = (
            select(table.c.id, reader.visible.label("visible"))
            .where(
                table.c.person_id == settlement.person_id,
                table.c.year == settlement.year,
                table.c.status == SettlementStatus.SETTLED.value,
                (table.c.settled_at > settlement.settled_at)
                | ((table.c.settled_at == settlement.settled_at) & (table.c.id > settlement.id)),
            )
            .order_by(table.c.settled_at, table.c.id)
        )
        rows = (await self.uow.execute(statement)).all()
        return [row.id for row in rows if row.visible], sum(1 for row in rows if not row.visible)

    async def read(self, ids: Sequence[uuid.UUID], reader: Reader) -> dict[uuid.UUID, Settlement]:
        """Stored settlements by id that `reader` may see (after what is staged); the
        decryptions of rebates for the reader are audited with the unit of work.
        """
        await self.uow.flush()
        found, disclosure = await read(self.uow.execute, self.uow.open_amount, reader, ids)
        if disclosure is not None:
            self.uow.audit(disclosure)
        return found

    async def _rebate_row(self, settlement_id: uuid.UUID, rebate: Rebate) -> dict[str, Any]:
        """Rebates derive from the confidential price: each is encrypted under its insurer's
        keys. One whose price was unreadable has no amount: it is kept as not computable.
        """
        row_id = uuid7()
        row = {
            "id": row_id,
            "settlement_id": settlement_id,
            "line_index": rebate.line,
            "drug_code": rebate.drug,
            "insurer_code": rebate.insurer,
            "status": "not_computable",
            "amount_ct": None,
        }
        if rebate.amount_fen is None:
            return row
        place = Place("settlement_rebates", "amount_ct", row_id, insurer_tenant(rebate.insurer))
        return row | {"status": "computed", "amount_ct": await self.uow.seal_amount(place, rebate.amount_fen)}


Execute = Callable[[Any], Awaitable[Result[Any]]]
Decrypt = Callable[[Place, bytes], Awaitable[int]]


async def read(
    execute: Execute, decrypt: Decrypt, reader: Reader, ids: Sequence[uuid.UUID]
) -> tuple[dict[uuid.UUID, Settlement], audit.AuditRecord | None]:
    """Stored settlements by id that `reader` may see, one query per table (SQLAlchemy Core:
    a cold path, the same on both databases), and the audit record of the rebates decrypted for
    the reader, if any. A rebate that cannot be decrypted (its insurer's key destroyed) is kept
    with its error, for its own field to report: the rest of the settlement reads.
    """
    if not ids:
        return {}, None
    settlements, people = table_of(models.Settlement), table_of(models.Person)
    heads = (
        (
            await execute(
                select(settlements, people.c.psn_no)
                .join(people, people.c.id == settlements.c.person_id)
                .where(settlements.c.id.in_(ids), reader.visible)
            )
        )
        .mappings()
        .all()
    )
    if not heads:
        return {}, None
    found = [head["id"] for head in heads]

    async def children(model: type[Base], order: str) -> dict[uuid.UUID, list[Any]]:
        table = table_of(model)
        grouped: dict[uuid.UUID, list[Any]] = {settlement_id: [] for settlement_id in found}
        rows = await execute(select(table).where(table.c.settlement_id.in_(found)).order_by(table.c[order]))
        for row in rows.mappings():
            grouped[row["settlement_id"]].append(row)
        return grouped

    lines = await children(models.SettlementLine, "line_index")
    payers = await children(models.SettlementPayer, "position")
    payments = await children(models.SettlementLinePayment, "line_index")
    changes = await children(models.SettlementAccumulatorChange, "plan_code")
    rebates = await children(models.SettlementRebate, "line_index")
    decrypted: list[str] = []
    shown: dict[uuid.UUID, Settlement] = {}
    for head in heads:
        settlement_id = head["id"]
        position = {payer["plan_code"]: payer["position"] for payer in payers[settlement_id]}
        paid: dict[int, list[LinePayment]] = {}
        for payment in sorted(payments[settlement_id], key=lambda p: (p["line_index"], position[p["plan_code"]])):
            paid.setdefault(payment["line_index"], []).append(LinePayment(payment["plan_code"], payment["amount_fen"]))
        kept: list[Rebate] = []
        for rebate in rebates[settlement_id]:
            kept.append(await _stored_rebate(rebate, head["region"], decrypt, reader, decrypted))
        shown[settlement_id] = Settlement(
            **{name: head[name] for name in _SAME_NAMES},
            id=settlement_id,
            institution=head["institution_code"],
            person=head["psn_no"],
            visit=Visit(head["visit"]),
            diagnoses=tuple(head["diagnoses"]),
            status=SettlementStatus(head["status"]),
            funds=tuple(
                FundShare(
                    payer["plan_code"],
                    payer["plan_version_id"],
                    payer["payer_code"],
                    PlanKind(payer["kind"]),
                    payer["amount_fen"],
                    payer["base_fen"],
                    payer["deductible_applied_fen"],
                    payer["drawn_fen"],
                    payer["receivable_fen"],
                    _reasons(payer["reasons"]),
                )
                for payer in payers[settlement_id]
            ),
            lines=tuple(_stored_line(line, paid.get(line["line_index"], [])) for line in lines[settlement_id]),
            changes=MappingProxyType(
                {
                    change["plan_code"]: Accumulator(
                        change["deductible_met_fen"], change["base_spent_fen"], change["paid_fen"], change["claims"]
                    )
                    for change in changes[settlement_id]
                }
            ),
            rebates=tuple(kept),
        )
    disclosure = None
    if decrypted:
        disclosure = audit.AuditRecord(
            reader.actor,
            "decrypt settlement_rebates.amount_ct",
            "allowed",
            datetime.now(UTC),
            f"settlements:{','.join(sorted(str(i) for i in found))}"[:200],
            {"rebates": decrypted},
        )
    return shown, disclosure


async def _stored_rebate(
    row: Mapping[str, Any], region: str, decrypt: Decrypt, reader: Reader, decrypted: list[str]
) -> Rebate:
    computable = row["status"] == "computed"
    rebate = Rebate(row["line_index"], row["drug_code"], row["insurer_code"], computable, None)
    if not computable or not reader.may_read_rebate(row["insurer_code"], region):
        return rebate
    place = Place("settlement_rebates", "amount_ct", row["id"], insurer_tenant(row["insurer_code"]))
    try:
        amount = await decrypt(place, row["amount_ct"])
    except DecryptionError as error:
        return replace(rebate, unreadable=error)
    decrypted.append(str(row["id"]))
    return replace(rebate, amount_fen=amount)


def _stored_line(row: Mapping[str, Any], payments: Iterable[LinePayment]) -> SettlementLine:
    return SettlementLine(
        index=row["line_index"],
        drug=row["drug_code"],
        quantity=row["quantity"],
        unit_price_fen=row["unit_price_fen"],
        donated_units=row["donated_units"],
        total_fen=row["total_fen"],
        in_scope_fen=row["in_scope_fen"],
        self_pay_first_fen=row["self_pay_first_fen"],
        above_standard_fen=row["above_standard_fen"],
        out_of_scope_fen=row["out_of_scope_fen"],
        patient_fen=row["patient_fen"],
        payments=tuple(payments),
        reasons=_reasons(row["reasons"]),
        trace_codes=tuple(row["trace_codes"]),
        split=row["split"],
        prescription_id=row["prescription_id"],
    )


def _line_row(settlement_id: uuid.UUID, line: SettlementLine) -> dict[str, Any]:
    return {
        "id": uuid7(),
        "settlement_id": settlement_id,
        "line_index": line.index,
        "drug_code": line.drug,
        "quantity": line.quantity,
        "unit_price_fen": line.unit_price_fen,
        "total_fen": line.total_fen,
        "donated_units": line.donated_units,
        "in_scope_fen": line.in_scope_fen,
        "self_pay_first_fen": line.self_pay_first_fen,
        "above_standard_fen": line.above_standard_fen,
        "out_of_scope_fen": line.out_of_scope_fen,
        "patient_fen": line.patient_fen,
        "reasons": _reason_rows(line.reasons),
        "trace_codes": list(line.trace_codes),
        "split": line.split,
        "prescription_id": line.prescription_id,
    }


def _reason_rows(reasons: Iterable[Reason]) -> list[dict[str, str]]:
    return [{"code": reason.code.value, "message": reason.message} for reason in reasons]


def _reasons(rows: Iterable[Mapping[str, str]]) -> tuple[Reason, ...]:
    return tuple(Reason(ReasonCode(row["code"]), row["message"]) for row in rows)
