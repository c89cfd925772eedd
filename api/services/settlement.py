"""Pre-settlement, settlement and reversal: read, decide (the engine and the money rules beside
it), and hand the unit of work what to write. The unit of work (api/db/unit_of_work.py) owns
the transaction, the lock order, the audit entries and the retries; this module decides only.

    settle      lock the serial; read everything the claim names (one statement); a serial
                settled before is replayed or refused; lock the person's year totals and
                adjudicate; check the codes, lock their packages and take the units; lock the
                pools, last, and fund the payers' shares; stage the settlement, its funding and
                postings, and its audit entry
    pre_settle  the same split, pool draws included, read without locks; nothing is written
    reverse     the settlement locked; what it added to the year totals subtracted, its codes'
                units freed, its pool draws returned, the opposite postings; the later
                settlements of the person's year listed for review (not re-adjudicated)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from adjudication import (
    Adjudication,
    Claim,
    ErrorCode,
    InputError,
    Institution,
    Visit,
    adjudicate,
    check_service_date,
    covered,
    fund,
    shares_by_payer,
)
from adjudication.ledger import reversal_postings, settlement_postings
from api.auth import INSTITUTION_ROLES, Principal
from api.db import models
from api.db.references import ClaimReferences, FormularyVersion, InsuredPerson, SerialHistory
from api.db.settlements import Reader
from api.db.unit_of_work import LockTimeout, UnitOfWork, run
from api.db.year_totals import PersonYear
from api.errors import ServiceError
from api.ids import uuid7
from api.services import access, audit
from api.services.requests import ClaimRequest, fits, named_in, text
from api.services.runtime import Runtime, local_date
from api.services.tracing import Dispensing, Oversold, Sale, check_codes, refused_sale, take_units
from api.settlement import Settlement, SettlementStatus


@dataclass(frozen=True, slots=True)
class ReversalTarget:
    """A settlement named by id, or by the institution's serial (冲正 without the response)."""

    settlement_id: uuid.UUID | None = None
    institution: str | None = None
    serial: str | None = None


@dataclass(frozen=True, slots=True)
class Reversal:
    """The settlement as reversed (None when its serial had not settled and was voided
    instead), and the later settlements of the person's year that relied on its accumulators.
    """

    settlement: Settlement | None
    voided_serial: bool
    later_settlements: tuple[Settlement, ...]
    later_elsewhere: int
    """Later settlements at institutions the caller may not see: counted, not shown."""


async def pre_settle(runtime: Runtime, principal: Principal, request: ClaimRequest) -> Settlement:
    """The full split as it would settle now, pool draws included; nothing is written, and no
    confidential price is decrypted (a pre-settlement shows no rebate: the split is the same).
    """
    now = runtime.clock()

    async def work(uow: UnitOfWork) -> Settlement:
        _authorize(uow, principal, "preSettle", request.institution, now, "claim.institution")
        _check_service_date(runtime, request, now)
        claim = request.claim()
        references = await uow.references.for_claim(claim, request.institution, request.person)
        institution, person, version = named_in(request, references)
        year = await uow.year_totals.read(person.id, request.year, *_year_keys(references, claim))
        result = await _split(uow, claim, references, institution, person, version, year, prices=False)
        settlement = _decided(request, references, result, None, institution, person, version)
        dispensing = _dispensing(request, institution, person, settlement.id, now)
        prescriptions = references.prescriptions if request.visit is Visit.PHARMACY else None
        checked = check_codes(claim.lines, references.drugs, references.policies, prescriptions, dispensing)
        packages = await uow.packages.read(checked.packages(claim.lines, references.drugs))
        sale = take_units(claim.lines, checked, packages, (), references.drugs, dispensing, runtime.reversal_window)
        if isinstance(sale, Oversold):
            error, _ = refused_sale(sale, await uow.packages.last_sale(sale.code), _drug(claim, sale), dispensing)
            raise error
        funding = fund(
            shares_by_payer(settlement.shares), {payer: pool.balance_fen for payer, pool in references.pools.items()}
        )
        return replace(settlement.funded(funding), rebates=())

    return await run(runtime, work, read_only=True)


async def settle(runtime: Runtime, principal: Principal, request: ClaimRequest) -> Settlement:
    """Settle a claim once. The same serial with the same body returns the first settlement and
    writes nothing; with another body it is refused (IDEMPOTENCY_CONFLICT). A copy that arrives
    while the first is in flight waits up to `key_wait_ms` for it, then answers IN_PROGRESS.
    """
    now = runtime.clock()

    async def work(uow: UnitOfWork) -> Settlement:
        _authorize(uow, principal, "settle", request.institution, now, "claim.institution")
        _check_service_date(runtime, request, now)
        await _lock_serial(uow, request.institution, request.serial, "claim.serial")
        claim = request.claim()
        references = await uow.references.for_claim(claim, request.institution, request.person)
        replayed = await _replay(uow, principal, request, references.serial)
        if replayed is not None:
            return replayed
        institution, person, version = named_in(request, references)
        year = await uow.year_totals.lock(person.id, request.year, *_year_keys(references, claim))
        result = await _split(uow, claim, references, institution, person, version, year, prices=True)
        settlement = _decided(request, references, result, now, institution, person, version)
        dispensing = _dispensing(request, institution, person, settlement.id, now)
        prescriptions = references.prescriptions if request.visit is Visit.PHARMACY else None
        checked = check_codes(claim.lines, references.drugs, references.policies, prescriptions, dispensing)
        uow.year_totals.add(
            year, {plan: result.accumulators[plan] for plan in result.accumulator_changes}, settlement.units_by_drug()
        )
        await uow.settlements.record(settlement)  # rides with the packages' lock
        packages = await uow.packages.lock(checked.packages(claim.lines, references.drugs))
        history = await uow.packages.history([code for code, p in packages.items() if p.last_event_at is not None])
        sale = take_units(
            claim.lines, checked, packages, history, references.drugs, dispensing, runtime.reversal_window
        )
        if isinstance(sale, Oversold):
            error, anomaly = refused_sale(sale, await uow.packages.last_sale(sale.code), _drug(claim, sale), dispensing)
            raise uow.refuse(error, anomalies=[anomaly])
        _sell(uow, sale, now)
        shares = shares_by_payer(settlement.shares)
        if uow.postgresql and uow.attempt == 1 and uow.pools.cover(references.pools, shares):
            funding = fund(shares, {payer: pool.balance_fen for payer, pool in references.pools.items()})
            uow.pools.draw_at_commit(references.pools, funding)  # pools locked by the commit's statement
        else:
            pools = await uow.pools.lock(request.institution, [payer for payer, share in shares.items() if share])
            funding = fund(shares, {payer: pool.balance_fen for payer, pool in pools.items()})
            uow.pools.draw(pools, funding)
        settlement = settlement.funded(funding)
        uow.settlements.fund(
            settlement, settlement_postings(request.institution, person.psn_no, result.patient, funding)
        )
        target = f"settlement:{settlement.id}"
        detail = {"institution": request.institution, "serial": request.serial}
        uow.audit(audit.AuditRecord(audit.Actor.of(principal), "settle", "allowed", now, target, detail))
        return settlement.masked()  # a cashier reads no insurer's price

    return await run(runtime, work)


async def reverse(runtime: Runtime, principal: Principal, target: ReversalTarget, reason: str) -> Reversal:
    """Reverse a settlement in full: opposite ledger entries, pool draws returned, exactly what it
    added to the accumulators and units subtracted. Later settlements are listed, not
    re-adjudicated. Reversing a serial that never settled voids it.
    """
    now = runtime.clock()

    async def work(uow: UnitOfWork) -> Reversal:
        _authorize(uow, principal, "reverseSettlement", target.institution, now, "input.institution")
        why = text(reason, "input.reason", models.Settlement.reversal_reason)
        if target.institution is not None:
            fits(target.institution, "input.institution", models.Settlement.institution_code)
        if target.serial is not None:
            fits(target.serial, "input.serial", models.Settlement.serial)
        readable = reader(principal)
        actor = audit.Actor.of(principal)
        if target.settlement_id is not None:
            settlement = await uow.settlements.lock(readable, id=target.settlement_id)
            if settlement is None:
                raise ServiceError(ErrorCode.NOT_FOUND, f"no settlement {target.settlement_id}", "input.id")
        elif target.institution and target.serial:
            institution, serial = target.institution, target.serial
            await _lock_serial(uow, institution, serial, "input.serial")
            settlement = await uow.settlements.lock(readable, serial=(institution, serial))
            if settlement is None:
                uow.settlements.void(institution, serial, why, now)
                detail = {"voided": True, "reason": why}
                uow.audit(
                    audit.AuditRecord(
                        actor, "reverseSettlement", "allowed", now, f"serial:{institution}/{serial}", detail
                    )
                )
                return Reversal(None, True, (), 0)
        else:
            raise ServiceError(
                ErrorCode.MISSING_FIELD, "name the settlement by id, or by institution and serial", "input"
            )
        if settlement.status is SettlementStatus.REVERSED:
            raise ServiceError(
                ErrorCode.ALREADY_REVERSED,
                f"settlement {settlement.id} was reversed at {settlement.reversed_at}",
                "input",
                {"settlementId": str(settlement.id)},
            )
        units = settlement.units_by_drug()
        year = await uow.year_totals.lock(
            settlement.person_id, settlement.year, sorted(settlement.changes), sorted(units)
        )
        uow.year_totals.subtract(year, settlement.changes, units)
        await uow.packages.give_back(settlement.id, now)
        drawn = settlement.drawn_by_payer()
        pools = await uow.pools.lock(settlement.institution, sorted(drawn))
        uow.pools.give_back(pools, drawn)
        uow.settlements.reverse(settlement, now, why, reversal_postings(await uow.settlements.postings(settlement.id)))
        uow.audit(
            audit.AuditRecord(
                actor, "reverseSettlement", "allowed", now, f"settlement:{settlement.id}", {"reason": why}
            )
        )
        later, elsewhere = await uow.settlements.later(settlement, readable)
        shown = await uow.settlements.read([settlement.id, *later], readable)
        return Reversal(shown[settlement.id], False, tuple(shown[i] for i in later), elsewhere)

    return await run(runtime, work)


# --- the steps ----------------------------------------------------------------------------------


def _authorize(
    uow: UnitOfWork, principal: Principal, action: str, institution: str | None, now: datetime, field: str
) -> None:
    """Only a hospital or pharmacy writes claims, and only its own: another institution's
    reads as not found. A denial is audited, on its own.
    """
    if principal.role not in INSTITUTION_ROLES:
        error = ServiceError(ErrorCode.FORBIDDEN, f"a {principal.role} does not settle or reverse claims", field)
    elif institution is not None and institution != principal.org:
        error = ServiceError(ErrorCode.NOT_FOUND, f"no institution {institution}", field)
    else:
        return
    detail = {"code": error.code.value, "field": error.field}
    raise uow.refuse(error, audit.AuditRecord(audit.Actor.of(principal), action, "denied", now, institution, detail))


def _check_service_date(runtime: Runtime, request: ClaimRequest, now: datetime) -> None:
    """A claim dated after today (Asia/Shanghai, with the runtime's tolerance) is refused before
    anything is read or locked.
    """
    try:
        check_service_date(
            request.service_date, today=local_date(now), tolerance_days=runtime.service_date_tolerance_days
        )
    except InputError as error:
        raise ServiceError.from_input(error, "claim") from None


async def _lock_serial(uow: UnitOfWork, institution: str, serial: str, field: str) -> None:
    try:
        await uow.lock_serial(institution, serial)
    except LockTimeout:
        raise ServiceError(
            ErrorCode.IN_PROGRESS,
            f"serial {serial} is being settled by another request; ask again (settlementBySerial) shortly",
            field,
        ) from None


async def _replay(
    uow: UnitOfWork, principal: Principal, request: ClaimRequest, serial: SerialHistory
) -> Settlement | None:
    """The settlement of a serial settled before with the same request (its read audited, and
    nothing else written); a refusal when it settled with another, or was voided.
    """
    if serial.settlement_id is None:
        if serial.voided:
            raise ServiceError(
                ErrorCode.ALREADY_REVERSED,
                f"serial {request.serial} was reversed before it settled; submit under a new serial",
                "claim.serial",
            )
        return None
    if serial.request_hash != request.digest():
        raise ServiceError(
            ErrorCode.IDEMPOTENCY_CONFLICT,
            f"serial {request.serial} was already settled with a different request",
            "claim.serial",
            {"settlementId": str(serial.settlement_id)},
        )
    return (await uow.settlements.read([serial.settlement_id], reader(principal)))[serial.settlement_id]


def _year_keys(references: ClaimReferences, claim: Claim) -> tuple[list[str], list[str]]:
    """The year totals a claim reads: its plans' accumulators (donation programmes keep none)
    and units received of its drugs and of those the plans donate.
    """
    plans = [plan.plan for plan in references.plans]
    drugs = {line.drug for line in claim.lines} | {plan.in_kind.drug for plan in plans if plan.in_kind is not None}
    return sorted(plan.id for plan in plans if plan.in_kind is None), sorted(drugs)


async def _split(
    uow: UnitOfWork,
    claim: Claim,
    references: ClaimReferences,
    institution: Institution,
    person: InsuredPerson,
    version: FormularyVersion,
    year: PersonYear,
    *,
    prices: bool,
) -> Adjudication:
    """The engine's split of the claim on this year's totals; refused when no plan covers the person."""
    plans = tuple(plan.plan for plan in references.plans)
    drugs = {line.drug for line in claim.lines}
    formulary = await uow.references.formulary_for_claim(version, drugs, {p.payer for p in plans}, prices=prices)
    patient = replace(person.patient, accumulators=year.accumulators, units_received=year.units)
    try:
        result = adjudicate(claim, patient=patient, institution=institution, formulary=formulary, plans=plans)
    except InputError as error:
        raise ServiceError.from_input(error) from None
    if not covered(result):
        raise ServiceError(
            ErrorCode.NOT_ELIGIBLE,
            f"person {person.psn_no} is covered by no plan in force on {claim.service_date}",
            "claim.person",
        )
    return result


def _decided(
    request: ClaimRequest,
    references: ClaimReferences,
    result: Adjudication,
    settled_at: datetime | None,
    institution: Institution,
    person: InsuredPerson,
    version: FormularyVersion,
) -> Settlement:
    return Settlement.decided(
        id=uuid7(),
        institution=request.institution,
        region=institution.region,
        insured_region=person.patient.region,
        person=person.psn_no,
        person_id=person.id,
        request_hash=request.digest(),
        claim=request.claim(),
        result=result,
        plan_versions={plan.plan.id: plan.version_id for plan in references.plans},
        formulary_version_id=version.id,
        prescribing_hospital=request.prescribing_hospital,
        settled_at=settled_at,
    )


def _dispensing(
    request: ClaimRequest, institution: Institution, person: InsuredPerson, settlement_id: uuid.UUID, now: datetime
) -> Dispensing:
    return Dispensing(
        request.institution,
        institution.region,
        request.serial,
        settlement_id,
        person.id,
        person.index,
        now,
        request.service_date,
    )


def _sell(uow: UnitOfWork, sale: Sale, now: datetime) -> None:
    uow.packages.sell(sale.packages, sale.events, now)
    uow.anomalies.add(sale.anomalies)


def _drug(claim: Claim, oversold: Oversold) -> str:
    return claim.lines[oversold.index].drug


def reader(principal: Principal) -> Reader:
    """What `principal` may see of stored settlements (api/services/access.py)."""
    return Reader(
        access.settlements(principal),
        lambda insurer, region: access.may_read_rebate(principal, insurer, region),
        audit.Actor.of(principal),
    )
