"""Load the facts one claim is adjudicated on: institution, person, drugs, and the formulary
and plans in force on the service date (as engine values).

Formulary and plan versions never change once loaded, so their engine values are cached by
version id; everything else is read for each request.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Generic, TypeVar

from sqlalchemy import FromClause, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from adjudication import (
    BasicEntry,
    Category,
    CommercialEntry,
    ErrorCode,
    Formulary,
    InputError,
    Institution,
    InstitutionKind,
    InsuranceType,
    Patient,
    Plan,
    Visit,
)
from adjudication.scenario import read_plan
from api.crypto.envelope import FieldCipher, Place
from api.crypto.tenants import insurer_tenant
from api.db import models
from api.errors import ServiceError
from api.services import audit
from api.services.requests import ClaimRequest

ADJUDICATION = audit.Actor(token_id=None, subject="system:adjudication")
"""The service itself, when it decrypts prices to adjudicate a claim."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A small bounded cache (no locking needed: one event loop, no awaits inside)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


@dataclass(slots=True)
class VersionCache:
    """Engine values of immutable formulary and plan versions, by version id."""

    formularies: LRU[uuid.UUID, Formulary]
    plans: LRU[uuid.UUID, Plan]

    @classmethod
    def bounded(cls, size: int = 512) -> VersionCache:
        return cls(LRU(size), LRU(size * 8))


@dataclass(frozen=True, slots=True)
class PlanInForce:
    version_id: uuid.UUID
    plan: Plan


@dataclass(frozen=True, slots=True)
class Facts:
    institution: Institution
    person_id: uuid.UUID
    patient_index: str  # the keyed blind index of the person's ID number: how trace events name them
    patient: Patient  # without accumulators: those are read (and locked) by the caller
    formulary_version_id: uuid.UUID
    formulary: Formulary
    plans: tuple[PlanInForce, ...]
    disclosures: tuple[audit.AuditRecord, ...] = ()
    """Confidential values decrypted to load these facts: the caller audits them."""

    @property
    def engine_plans(self) -> tuple[Plan, ...]:
        return tuple(plan.plan for plan in self.plans)


async def load_facts(session: AsyncSession, request: ClaimRequest, cache: VersionCache, cipher: FieldCipher) -> Facts:
    institution = await _institution(session, request.institution)
    person_id, patient_index, patient = await _person(session, request.person)
    await _check_drugs(session, request)
    disclosures: list[audit.AuditRecord] = []
    version_id, formulary = await formulary_in_force(
        session, institution.region, request.service_date, cache, cipher, disclosures
    )
    plans = await plans_in_force(session, patient.region, request.service_date, cache)
    if not plans:
        await _refuse_before_rules(session, models.PlanVersion.__table__, patient.region, request.service_date, "plan")
    if request.visit is Visit.PHARMACY and institution.kind is not InstitutionKind.PHARMACY:
        raise ServiceError(ErrorCode.VISIT_MISMATCH, "only a pharmacy submits pharmacy claims", "claim.visit")
    return Facts(institution, person_id, patient_index, patient, version_id, formulary, plans, tuple(disclosures))


async def _institution(session: AsyncSession, code: str) -> Institution:
    table = models.Institution.__table__
    row = (
        await session.execute(
            select(table.c.code, table.c.kind, table.c.level, table.c.region).where(table.c.code == code)
        )
    ).first()
    if row is None:
        raise ServiceError(ErrorCode.NOT_FOUND, f"no institution {code}", "claim.institution")
    return Institution(row.code, InstitutionKind(row.kind), row.level, row.region)


async def _person(session: AsyncSession, psn_no: str) -> tuple[uuid.UUID, str, Patient]:
    table = models.Person.__table__
    columns = (table.c.id, table.c.id_number_index, table.c.insurance_type, table.c.region, table.c.memberships)
    row = (await session.execute(select(*columns, table.c.flags).where(table.c.psn_no == psn_no))).first()
    if row is None:
        raise ServiceError(ErrorCode.NOT_FOUND, f"no insured person {psn_no}", "claim.person")
    patient = Patient(
        insurance_type=InsuranceType(row.insurance_type),
        region=row.region,
        memberships=frozenset(row.memberships),
        flags=frozenset(row.flags),
    )
    return row.id, row.id_number_index, patient


async def _check_drugs(session: AsyncSession, request: ClaimRequest) -> None:
    codes = {line.drug for line in request.lines}
    table = models.Drug.__table__
    known = set((await session.execute(select(table.c.code).where(table.c.code.in_(codes)))).scalars())
    for index, line in enumerate(request.lines):
        if line.drug not in known:
            raise ServiceError(
                ErrorCode.UNKNOWN_DRUG, f"no drug {line.drug} is registered", f"claim.lines[{index}].drug"
            )


async def formulary_in_force(
    session: AsyncSession,
    region: str,
    on: date,
    cache: VersionCache,
    cipher: FieldCipher,
    disclosures: list[audit.AuditRecord],
) -> tuple[uuid.UUID, Formulary]:
    """The version in force, as engine values. Its confidential prices are decrypted once per
    version and process (the engine derives the insurers' rebates from them); the decryption is
    added to `disclosures`, for the caller to audit when its transaction allows.
    """
    versions = models.FormularyVersion.__table__
    row = (
        await session.execute(
            select(versions.c.id, versions.c.self_pay_first_ratio_ppm)
            .where(versions.c.region == region, versions.c.effective_from <= on)
            .order_by(versions.c.effective_from.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        await _refuse_before_rules(session, versions, region, on, "formulary")
        raise ServiceError(
            ErrorCode.NO_FORMULARY, f"no formulary of region {region} is in force on {on}", "claim.serviceDate"
        )
    cached = cache.formularies.get(row.id)
    if cached is not None:
        return row.id, cached
    basic = models.BasicEntry.__table__
    commercial = models.CommercialEntry.__table__
    basic_rows = (await session.execute(select(basic).where(basic.c.formulary_version_id == row.id))).all()
    commercial_rows = (
        await session.execute(select(commercial).where(commercial.c.formulary_version_id == row.id))
    ).all()
    # stored standards and settlement prices are per package; the drug registry's package size
    # converts them for split lines (拆零), which the engine refuses to settle without one
    drugs = models.Drug.__table__
    codes = {entry.drug_code for entry in basic_rows} | {entry.drug_code for entry in commercial_rows}
    package_units: dict[str, int] = {}
    if codes:
        found = await session.execute(select(drugs.c.code, drugs.c.package_units).where(drugs.c.code.in_(codes)))
        package_units = {code: units for code, units in found.all()}
    formulary = Formulary.of(
        basic=tuple(
            BasicEntry(
                drug=entry.drug_code,
                category=Category(entry.category),
                payment_standard=entry.payment_standard_fen,
                self_pay_first_ratio=entry.self_pay_first_ratio_ppm,
                negotiated=entry.negotiated,
                dual_channel=entry.dual_channel,
                restricted_diagnoses=tuple(entry.restricted_diagnoses),
                restricted_visits=frozenset(Visit(visit) for visit in entry.restricted_visits),
                package_units=package_units.get(entry.drug_code),
            )
            for entry in basic_rows
        ),
        self_pay_first_ratio=row.self_pay_first_ratio_ppm,
        commercial=tuple(
            [
                CommercialEntry(
                    entry.drug_code,
                    entry.insurer_code,
                    await cipher.decrypt_amount(
                        Place(
                            "commercial_entries", "settlement_price_ct", entry.id, insurer_tenant(entry.insurer_code)
                        ),
                        entry.settlement_price_ct,
                        session,
                    ),
                    package_units.get(entry.drug_code),
                )
                for entry in commercial_rows
            ]
        ),
    )
    if commercial_rows:
        disclosures.append(
            audit.AuditRecord(
                ADJUDICATION,
                "decrypt commercial_entries.settlement_price_ct",
                "allowed",
                datetime.now(UTC),
                f"formulary_version:{row.id}",
                {"values": len(commercial_rows), "purpose": "adjudication (rebates)"},
            ),
        )
    cache.formularies.put(row.id, formulary)
    return row.id, formulary


async def _refuse_before_rules(session: AsyncSession, versions: FromClause, region: str, on: date, what: str) -> None:
    """Called when no version of `versions` is in force on `on`: if the region has versions at
    all, they all begin after `on`, and the claim predates every rule it could be adjudicated on
    (SERVICE_DATE_BEFORE_RULES). The floor is the region's own (the formulary's of the
    institution's region, the plans' of the patient's region), because those are the only rules
    a claim is split by: another region's older data would not make it adjudicable. A region
    with no versions at all is not a question of date (NO_FORMULARY, NOT_ELIGIBLE).
    """
    earliest = (
        await session.execute(select(func.min(versions.c.effective_from)).where(versions.c.region == region))
    ).scalar_one()
    if earliest is not None:
        raise ServiceError(
            ErrorCode.SERVICE_DATE_BEFORE_RULES,
            f"the service date {on.isoformat()} is before the first {what} of region {region}, in force from "
            f"{earliest.isoformat()}: check the date; no rule held here applies to a claim that old",
            "claim.serviceDate",
        )


async def plans_in_force(session: AsyncSession, region: str, on: date, cache: VersionCache) -> tuple[PlanInForce, ...]:
    """The latest version of each plan of `region` that is in force on `on`, by priority."""
    versions = models.PlanVersion.__table__
    rows = (
        await session.execute(
            select(versions.c.id, versions.c.plan_code, versions.c.priority)
            .where(versions.c.region == region, versions.c.effective_from <= on)
            .order_by(versions.c.plan_code, versions.c.effective_from.desc())
        )
    ).all()
    latest: dict[str, tuple[int, str, uuid.UUID]] = {}
    for row in rows:
        latest.setdefault(row.plan_code, (row.priority, row.plan_code, row.id))
    chosen = [version_id for _, _, version_id in sorted(latest.values())]
    missing = [version_id for version_id in chosen if cache.plans.get(version_id) is None]
    if missing:
        definitions = await session.execute(
            select(versions.c.id, versions.c.definition).where(versions.c.id.in_(missing))
        )
        for version_id, definition in definitions:
            cache.plans.put(version_id, parse_plan(definition, f"plan version {version_id}"))
    result: list[PlanInForce] = []
    for version_id in chosen:
        plan = cache.plans.get(version_id)
        assert plan is not None
        result.append(PlanInForce(version_id, plan))
    return tuple(result)


def parse_plan(definition: object, where: str) -> Plan:
    try:
        return read_plan(definition, where)
    except InputError as error:  # stored definitions were checked on load; this is corruption
        raise RuntimeError(f"stored {where} no longer reads as a plan: {error}") from error
