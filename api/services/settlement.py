"""Pre-settlement, settlement and reversal: read the facts, call the engine once, write it all
in one transaction.

Concurrency: a settlement takes, in this fixed order, (1) a lock on its idempotency key
(institution, serial), (2) the person's accumulator rows of the year, plan by plan, then the
units-received rows, drug by drug, (3) the packages of its traceability codes, code by code, and
(4) last, once everything else is written, the prepayment pools it draws on, payer by payer: a
pool is shared by every claim at its institution, so it is held only for the draw, the payers'
shares, the ledger entries and the commit. A reversal takes the same locks in the same order (its
settlement row standing for the key). On PostgreSQL these are row locks (SELECT ... FOR UPDATE) under READ COMMITTED; on
SQLite every write transaction holds the database lock from its first statement.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adjudication import (
    Accumulator,
    Adjudication,
    ErrorCode,
    Funding,
    InputError,
    adjudicate,
    check_service_date,
    covered,
    fund,
    shares_by_payer,
)
from adjudication.ledger import Posting, Why, reversal_postings, settlement_postings
from api.auth import INSTITUTION_ROLES, Principal
from api.crypto.envelope import FieldCipher, Place
from api.crypto.tenants import insurer_tenant
from api.db import models
from api.db.statements import LockTimeout, advisory_key, insert_missing, lock_key
from api.errors import ServiceError
from api.ids import uuid7
from api.services import access, audit, ledger, tracing
from api.services.facts import Facts, load_facts
from api.services.records import Row, SettlementRows, SettlementView, read_settlements, rows_for, view
from api.services.requests import ClaimRequest, fits, text
from api.services.runtime import Runtime, local_date


@dataclass(frozen=True, slots=True)
class Decision:
    """Everything a settlement will write, decided before anything is written."""

    facts: Facts
    result: Adjudication
    accumulators: Mapping[str, Row]
    units: Mapping[str, Row]
    rows: SettlementRows  # its payers are unfunded (all receivable) until `_fund` returns them funded, last
    trace: tracing.TracePlan


@dataclass(frozen=True, slots=True)
class Reversal:
    """The outcome of a reversal: the settlement as reversed (None when the serial had not
    settled and was voided instead) and the later settlements of the person's year that relied
    on its accumulators, for review (they are not re-adjudicated).
    """

    settlement: SettlementView | None
    voided_serial: bool
    later_settlements: tuple[SettlementView, ...]
    later_elsewhere: int
    """Later settlements at institutions the caller may not see: counted, not shown."""


async def authorize_claims(
    sessions: async_sessionmaker[AsyncSession],
    principal: Principal,
    action: str,
    institution: str | None,
    now: datetime,
    field: str,
) -> None:
    """Only a hospital or pharmacy writes claims, and only its own: another institution's
    reads as not found. Denials are audited.
    """
    if principal.role not in INSTITUTION_ROLES:
        error = ServiceError(ErrorCode.FORBIDDEN, f"a {principal.role} does not settle or reverse claims", field)
        await audit.refuse(sessions, principal, action, error, now, institution)
    if institution is not None and institution != principal.org:
        error = ServiceError(ErrorCode.NOT_FOUND, f"no institution {institution}", field)
        await audit.refuse(sessions, principal, action, error, now, institution)


async def pre_settle(runtime: Runtime, principal: Principal, request: ClaimRequest) -> SettlementView:
    """The full split as it would settle now, pool draws included; nothing is written."""
    now = runtime.clock()
    await authorize_claims(runtime.sessions, principal, "preSettle", request.institution, now, "claim.institution")
    _check_service_date(runtime, request, now)
    async with runtime.sessions() as session:  # never committed: closing the session rolls back
        decision = await _decide(session, runtime, request, now, lock=False, prices=False)
        decision, _, _ = await _fund(session, request.institution, decision, lock=False)
    await audit.append_alone(runtime.sessions, *decision.facts.disclosures)
    return view(decision.rows, request.person)


async def settle(runtime: Runtime, principal: Principal, request: ClaimRequest) -> SettlementView:
    """Settle a claim once. The same serial with the same body returns the first settlement and
    writes nothing; with another body it is refused (IDEMPOTENCY_CONFLICT). A copy that arrives
    while the first is in flight waits up to `key_wait_ms` for it, then answers IN_PROGRESS.
    """
    now = runtime.clock()
    await authorize_claims(runtime.sessions, principal, "settle", request.institution, now, "claim.institution")
    _check_service_date(runtime, request, now)
    try:
        return await _settle(runtime, principal, request, now)
    except tracing.TraceRefusal as refusal:  # the refusal of a second sale is an anomaly: kept on its own
        async with runtime.sessions() as session:
            await tracing.record_anomalies(session, refusal.anomalies)
            await session.commit()
        raise


def _check_service_date(runtime: Runtime, request: ClaimRequest, now: datetime) -> None:
    """A claim dated after today (Asia/Shanghai, with the runtime's tolerance) is refused before
    anything is read or locked. (One dated before every rule is refused by `load_facts`.)
    """
    try:
        check_service_date(
            request.service_date, today=local_date(now), tolerance_days=runtime.service_date_tolerance_days
        )
    except InputError as error:
        raise ServiceError.from_input(error, "claim") from None


async def _settle(runtime: Runtime, principal: Principal, request: ClaimRequest, now: datetime) -> SettlementView:
    digest = request.digest()
    async with runtime.sessions() as session:  # any refusal leaves by an exception: nothing is committed
        await _lock_serial(session, request.institution, request.serial, runtime.key_wait_ms)
        existing = await _existing(session, runtime, principal, request, digest)
        if existing is not None:
            return existing
        decision = await _decide(session, runtime, request, now, lock=True)
        await _write_claim(session, runtime, request, decision)
        await tracing.write_sale(session, decision.trace)
        # the pool locks: last, briefly
        decision, funding, pools = await _fund(session, request.institution, decision, lock=True)
        await _write_money(session, request, decision, funding, pools, now)
        await audit.append(  # one INSERT: the prices decrypted for this claim, and the write
            session,
            *decision.facts.disclosures,
            audit.AuditRecord(
                audit.Actor.of(principal),
                "settle",
                "allowed",
                now,
                f"settlement:{decision.rows.settlement['id']}",
                {"institution": request.institution, "serial": request.serial},
            ),
        )
        await session.commit()
    return view(decision.rows, request.person)


async def _lock_serial(session: AsyncSession, institution: str, serial: str, wait_ms: int) -> None:
    try:
        await lock_key(session, advisory_key("settlement", institution, serial), wait_ms)
    except LockTimeout:
        raise ServiceError(
            ErrorCode.IN_PROGRESS,
            f"serial {serial} is being settled by another request; ask again (settlementBySerial) shortly",
            "claim.serial",
        ) from None


async def _existing(
    session: AsyncSession, runtime: Runtime, principal: Principal, request: ClaimRequest, digest: str
) -> SettlementView | None:
    settlements = models.Settlement.__table__
    row = (
        await session.execute(
            select(settlements.c.id, settlements.c.request_hash).where(
                settlements.c.institution_code == request.institution, settlements.c.serial == request.serial
            )
        )
    ).first()
    if row is None:
        voided = models.VoidedSerial.__table__
        was_voided = (
            await session.execute(
                select(voided.c.voided_at).where(
                    voided.c.institution_code == request.institution, voided.c.serial == request.serial
                )
            )
        ).first()
        if was_voided is not None:
            raise ServiceError(
                ErrorCode.ALREADY_REVERSED,
                f"serial {request.serial} was reversed before it settled; submit under a new serial",
                "claim.serial",
            )
        return None
    if row.request_hash != digest:
        raise ServiceError(
            ErrorCode.IDEMPOTENCY_CONFLICT,
            f"serial {request.serial} was already settled with a different request",
            "claim.serial",
            {"settlementId": str(row.id)},
        )
    disclosures: list[audit.AuditRecord] = []
    found = await read_settlements(session, runtime.cipher, principal, [row.id], disclosures)
    await audit.append(session, *disclosures)
    await session.commit()  # only the audit of what was read back: the replay itself writes nothing
    return found[row.id]


async def _decide(
    session: AsyncSession, runtime: Runtime, request: ClaimRequest, now: datetime, *, lock: bool, prices: bool = True
) -> Decision:
    """Load, lock (when `lock`), adjudicate. Without `prices` (a pre-settlement shows no rebate)
    no confidential price is decrypted; the split is the same.
    """
    facts = await load_facts(session, request, runtime.cache, runtime.cipher, prices=prices)
    plan_codes = sorted(plan.plan.id for plan in facts.plans if plan.plan.in_kind is None)
    drugs = {line.drug for line in request.lines}
    drugs |= {plan.plan.in_kind.drug for plan in facts.plans if plan.plan.in_kind is not None}
    accumulators = await _accumulators(session, facts.person_id, request.year, plan_codes, lock=lock)
    units = await _units(session, facts.person_id, request.year, sorted(drugs), lock=lock)
    patient = replace(
        facts.patient,
        accumulators=MappingProxyType(
            {
                code: Accumulator(row["deductible_met_fen"], row["base_spent_fen"], row["paid_fen"], row["claims"])
                for code, row in accumulators.items()
            }
        ),
        units_received=MappingProxyType({drug: row["units"] for drug, row in units.items()}),
    )
    try:
        result = adjudicate(
            request.claim(),
            patient=patient,
            institution=facts.institution,
            formulary=facts.formulary,
            plans=facts.engine_plans,
        )
    except InputError as error:
        raise ServiceError.from_input(error) from None
    if not covered(result):
        raise ServiceError(
            ErrorCode.NOT_ELIGIBLE,
            f"person {request.person} is covered by no plan in force on {request.service_date}",
            "claim.person",
        )
    settlement_id = uuid7()
    where = tracing.Where(
        institution=request.institution,
        region=facts.institution.region,
        settlement_id=settlement_id,
        patient_index=facts.patient_index,
        person_id=facts.person_id,
        at=now,
        service_date=request.service_date,
    )
    trace = await tracing.plan_sale(session, request, where, runtime.reversal_window, lock=lock)
    settlement: Row = {
        "id": settlement_id,
        "institution_code": request.institution,
        "region": facts.institution.region,
        "insured_region": facts.patient.region,
        "serial": request.serial,
        "request_hash": request.digest(),
        "person_id": facts.person_id,
        "service_date": request.service_date,
        "year": request.year,
        "visit": request.visit.value,
        "diagnoses": list(request.diagnoses),
        "drg_group": request.drg_group,
        "prescribing_hospital": request.prescribing_hospital,
        "formulary_version_id": facts.formulary_version_id,
        "status": "settled",
        "settled_at": now,
        "reversed_at": None,
        "reversal_reason": None,
    }
    rows = rows_for(
        settlement=settlement,
        result=result,
        plan_versions={plan.plan.id: plan.version_id for plan in facts.plans},
        request_lines=request.lines,
    )
    return Decision(facts, result, accumulators, units, rows, trace)


async def _accumulators(
    session: AsyncSession, person_id: uuid.UUID, year: int, plan_codes: Sequence[str], *, lock: bool
) -> dict[str, Row]:
    return await _year_rows(session, models.Accumulator.__table__, "plan_code", person_id, year, plan_codes, lock=lock)


async def _units(
    session: AsyncSession, person_id: uuid.UUID, year: int, drugs: Sequence[str], *, lock: bool
) -> dict[str, Row]:
    return await _year_rows(session, models.UnitsReceived.__table__, "drug_code", person_id, year, drugs, lock=lock)


async def _year_rows(
    session: AsyncSession, table: Any, key: str, person_id: uuid.UUID, year: int, keys: Sequence[str], *, lock: bool
) -> dict[str, Row]:
    """A person's running totals of the year by `key` (plan or drug). Locking, they are created
    when missing and locked in `key` order, the one order every writer follows.
    """
    if lock:
        missing = [{"id": uuid7(), "person_id": person_id, "year": year, key: value} for value in keys]
        await insert_missing(session, table, missing, ["person_id", "year", key])
    statement = (
        select(table)
        .where(table.c.person_id == person_id, table.c.year == year, table.c[key].in_(keys))
        .order_by(table.c[key])
    )
    if lock:
        statement = statement.with_for_update()
    return {row[key]: dict(row) for row in (await session.execute(statement)).mappings()}


async def _pools(session: AsyncSession, institution: str, payers: Sequence[str], *, lock: bool) -> dict[str, Row]:
    if not payers:
        return {}
    table = models.PrepaymentPool.__table__
    statement = (
        select(table)
        .where(table.c.institution_code == institution, table.c.payer_code.in_(payers))
        .order_by(table.c.payer_code)
    )
    if lock:
        statement = statement.with_for_update()
    return {row["payer_code"]: dict(row) for row in (await session.execute(statement)).mappings()}


async def _write_claim(session: AsyncSession, runtime: Runtime, request: ClaimRequest, decision: Decision) -> None:
    """Everything but the money: accumulators, units, the settlement and its lines."""
    result, rows = decision.result, decision.rows
    changed = [
        {
            "row_id": decision.accumulators[code]["id"],
            "deductible_met_fen": after.deductible_met,
            "base_spent_fen": after.base_spent,
            "paid_fen": after.paid,
            "claims": after.claims,
        }
        for code, after in result.accumulators.items()
        if code in result.accumulator_changes
    ]
    await _update_by_id(session, models.Accumulator.__table__, changed)
    received: dict[str, int] = {}
    for line in request.lines:
        received[line.drug] = received.get(line.drug, 0) + line.quantity
    await _update_by_id(
        session,
        models.UnitsReceived.__table__,
        [
            {"row_id": decision.units[drug]["id"], "units": decision.units[drug]["units"] + n}
            for drug, n in received.items()
        ],
    )
    await _insert(session, models.Settlement.__table__, [rows.settlement])
    for table, records in (
        (models.SettlementLine.__table__, rows.lines),
        (models.SettlementLinePayment.__table__, rows.payments),
        (models.SettlementAccumulatorChange.__table__, rows.changes),
        (models.SettlementRebate.__table__, await _sealed_rebates(session, runtime.cipher, rows.rebates)),
    ):
        await _insert(session, table, records)


async def _fund(
    session: AsyncSession, institution: str, decision: Decision, *, lock: bool
) -> tuple[Decision, Funding, dict[str, Row]]:
    """Draw each payer's share from its prepayment pool here, as far as the pool goes; the rest
    is owed (`adjudication.funding`: plans of one payer draw on its one pool in waterfall order).
    Returns the decision with its payer rows funded, the funding, and the pools read (locked,
    when `lock`: only those of payers that owe something).
    """
    shares = shares_by_payer(decision.result.payers)
    pools = await _pools(session, institution, sorted(payer for payer, share in shares.items() if share), lock=lock)
    funding = fund(shares, {payer: row["balance_fen"] for payer, row in pools.items()})
    payers = [
        row | {"drawn_fen": plan.drawn_fen, "receivable_fen": plan.receivable_fen}
        for row, plan in zip(decision.rows.payers, funding.over_plans(decision.result.payers), strict=True)
    ]
    return replace(decision, rows=replace(decision.rows, payers=payers)), funding, pools


async def _write_money(
    session: AsyncSession,
    request: ClaimRequest,
    decision: Decision,
    funding: Funding,
    pools: Mapping[str, Row],
    now: datetime,
) -> None:
    """The pool draws, the payers' shares and the balanced ledger transaction."""
    await _update_by_id(
        session,
        models.PrepaymentPool.__table__,
        [
            {
                "row_id": pools[draw.payer]["id"],
                "drawn_fen": pools[draw.payer]["drawn_fen"] + draw.drawn_fen,
                "balance_fen": draw.balance_after_fen,
            }
            for draw in funding.draws
            if draw.drawn_fen
        ],
    )
    postings = settlement_postings(request.institution, request.person, decision.result.patient, funding)
    await _insert(session, models.SettlementPayer.__table__, decision.rows.payers)
    await _insert(
        session,
        models.LedgerEntry.__table__,
        ledger.entry_rows(postings, now, settlement_id=decision.rows.settlement["id"]),
    )


async def _sealed_rebates(session: AsyncSession, cipher: FieldCipher, rebates: Sequence[Row]) -> list[Row]:
    """Rebates derive from the confidential price: each is encrypted under its insurer's keys.
    One whose price was unreadable has no amount: it is stored as not computable.
    """
    sealed = []
    for rebate in rebates:
        clear = {key: value for key, value in rebate.items() if key != "amount_fen"}
        if rebate["amount_fen"] is None:
            sealed.append(clear | {"status": "not_computable", "amount_ct": None})
            continue
        place = Place("settlement_rebates", "amount_ct", rebate["id"], insurer_tenant(rebate["insurer_code"]))
        amount_ct = await cipher.encrypt_amount(session, place, rebate["amount_fen"])
        sealed.append(clear | {"status": "computed", "amount_ct": amount_ct})
    return sealed


async def _insert(session: AsyncSession, table: Any, records: Sequence[Row]) -> None:
    """All rows of a table in one round trip. Executed as "executemany", which SQLAlchemy sends
    as batched multi-row INSERTs from one cached statement (a `.values([...])` statement would
    be compiled anew for every row count).
    """
    if records:
        await session.execute(table.insert(), list(records))


async def _update_by_id(session: AsyncSession, table: Any, records: Sequence[Row]) -> None:
    """Set columns by row id, all rows in one executemany; each record holds `row_id` and values."""
    if not records:
        return
    columns = [key for key in records[0] if key != "row_id"]
    statement = update(table).where(table.c.id == bindparam("row_id")).values({c: bindparam(c) for c in columns})
    await session.execute(statement.execution_options(synchronize_session=False), list(records))


@dataclass(frozen=True, slots=True)
class ReversalTarget:
    """A settlement named by id, or by the institution's serial (冲正 without the response)."""

    settlement_id: uuid.UUID | None = None
    institution: str | None = None
    serial: str | None = None


async def reverse(runtime: Runtime, principal: Principal, target: ReversalTarget, reason: str) -> Reversal:
    """Reverse a settlement in full: opposite ledger entries, pool draws returned, exactly what it
    added to the accumulators and units subtracted. Later settlements are listed, not re-adjudicated.
    """
    now, sessions = runtime.clock(), runtime.sessions
    await authorize_claims(sessions, principal, "reverseSettlement", target.institution, now, "input.institution")
    reason = text(reason, "input.reason", models.Settlement.reversal_reason)
    if target.institution is not None:
        fits(target.institution, "input.institution", models.Settlement.institution_code)
    if target.serial is not None:
        fits(target.serial, "input.serial", models.Settlement.serial)
    settlements = models.Settlement.__table__
    actor = audit.Actor.of(principal)
    async with sessions() as session:
        if target.settlement_id is not None:
            where = (settlements.c.id == target.settlement_id) & access.settlements(principal)
        elif target.institution and target.serial:
            await _lock_serial(session, target.institution, target.serial, runtime.key_wait_ms)
            where = (
                (settlements.c.institution_code == target.institution)
                & (settlements.c.serial == target.serial)
                & access.settlements(principal)
            )
        else:
            raise ServiceError(
                ErrorCode.MISSING_FIELD, "name the settlement by id, or by institution and serial", "input"
            )
        found = (await session.execute(select(settlements).where(where).with_for_update())).mappings().first()
        if found is None:
            if target.settlement_id is not None:
                raise ServiceError(ErrorCode.NOT_FOUND, f"no settlement {target.settlement_id}", "input.id")
            assert target.institution is not None and target.serial is not None
            await _void_serial(session, target.institution, target.serial, reason, now)
            await audit.append(
                session,
                audit.AuditRecord(
                    actor,
                    "reverseSettlement",
                    "allowed",
                    now,
                    f"serial:{target.institution}/{target.serial}",
                    {"voided": True, "reason": reason.strip()},
                ),
            )
            await session.commit()
            return Reversal(None, True, (), 0)
        settlement = dict(found)
        if settlement["status"] == "reversed":
            raise ServiceError(
                ErrorCode.ALREADY_REVERSED,
                f"settlement {settlement['id']} was reversed at {settlement['reversed_at']}",
                "input",
                {"settlementId": str(settlement["id"])},
            )
        await _undo(session, settlement, now)
        await session.execute(
            update(settlements)
            .where(settlements.c.id == settlement["id"])
            .values(status="reversed", reversed_at=now, reversal_reason=reason.strip())
        )
        await audit.append(
            session,
            audit.AuditRecord(
                actor, "reverseSettlement", "allowed", now, f"settlement:{settlement['id']}", {"reason": reason.strip()}
            ),
        )
        later = (
            await session.execute(
                select(settlements.c.id, access.settlements(principal).label("visible"))
                .where(
                    settlements.c.person_id == settlement["person_id"],
                    settlements.c.year == settlement["year"],
                    settlements.c.status == "settled",
                    (settlements.c.settled_at > settlement["settled_at"])
                    | ((settlements.c.settled_at == settlement["settled_at"]) & (settlements.c.id > settlement["id"])),
                )
                .order_by(settlements.c.settled_at, settlements.c.id)
            )
        ).all()
        later_ids = [row.id for row in later if row.visible]
        disclosures: list[audit.AuditRecord] = []
        shown = await read_settlements(session, runtime.cipher, principal, [settlement["id"], *later_ids], disclosures)
        await audit.append(session, *disclosures)
        await session.commit()
    return Reversal(shown[settlement["id"]], False, tuple(shown[i] for i in later_ids), len(later) - len(later_ids))


async def _void_serial(session: AsyncSession, institution: str, serial: str, reason: str, now: datetime) -> None:
    voided = models.VoidedSerial.__table__
    await insert_missing(
        session,
        voided,
        [
            {
                "id": uuid7(),
                "institution_code": institution,
                "serial": serial,
                "reason": reason.strip(),
                "voided_at": now,
            }
        ],
        ["institution_code", "serial"],
    )


async def _undo(session: AsyncSession, settlement: Row, now: datetime) -> None:
    """Subtract what the settlement added, free its codes' units, return its pool draws, post the
    opposite entries (locks in the settlement's order: accumulators, units, codes, pools).
    """
    settlement_id = settlement["id"]
    changes_table = models.SettlementAccumulatorChange.__table__
    changes = {
        row["plan_code"]: row
        for row in (
            await session.execute(select(changes_table).where(changes_table.c.settlement_id == settlement_id))
        ).mappings()
    }
    lines = models.SettlementLine.__table__
    received: dict[str, int] = {}
    for drug, quantity in await session.execute(
        select(lines.c.drug_code, lines.c.quantity).where(lines.c.settlement_id == settlement_id)
    ):
        received[drug] = received.get(drug, 0) + quantity
    person_id, year = settlement["person_id"], settlement["year"]
    accumulators = await _accumulators(session, person_id, year, sorted(changes), lock=True)
    fields = ("deductible_met_fen", "base_spent_fen", "paid_fen", "claims")
    await _update_by_id(
        session,
        models.Accumulator.__table__,
        [
            {"row_id": accumulators[code]["id"], **{f: accumulators[code][f] - change[f] for f in fields}}
            for code, change in changes.items()
        ],
    )
    units = await _units(session, person_id, year, sorted(received), lock=True)
    await _update_by_id(
        session,
        models.UnitsReceived.__table__,
        [{"row_id": units[drug]["id"], "units": units[drug]["units"] - n} for drug, n in received.items()],
    )
    await tracing.return_units(session, settlement_id, now)
    payers = models.SettlementPayer.__table__
    drawn: dict[str, int] = {}
    for payer_code, amount in await session.execute(
        select(payers.c.payer_code, payers.c.drawn_fen).where(payers.c.settlement_id == settlement_id)
    ):
        if amount:
            drawn[payer_code] = drawn.get(payer_code, 0) + amount
    pools = await _pools(session, settlement["institution_code"], sorted(drawn), lock=True)
    await _update_by_id(
        session,
        models.PrepaymentPool.__table__,
        [
            {
                "row_id": pools[code]["id"],
                "returned_fen": pools[code]["returned_fen"] + amount,
                "balance_fen": pools[code]["balance_fen"] + amount,
            }
            for code, amount in sorted(drawn.items())
        ],
    )
    entries = models.LedgerEntry.__table__
    settled = [
        Posting(account, amount, Why(code))
        for account, amount, code in await session.execute(
            select(entries.c.account, entries.c.amount_fen, entries.c.code).where(
                entries.c.settlement_id == settlement_id
            )
        )
    ]
    await _insert(session, entries, ledger.entry_rows(reversal_postings(settled), now, settlement_id=settlement_id))
