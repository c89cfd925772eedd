"""Load the facts one claim is adjudicated on: institution, person, drugs, and the formulary
and plans in force on the service date (as engine values).

Formulary and plan versions never change once loaded, so their engine values are cached by
version id; everything else is read for each request. The cache never holds a confidential
price in clear: a formulary version is cached with its settlement prices still sealed, and each
claim decrypts only the prices it may need (its drugs, under the insurers whose plans are in
force for the patient), one by one. So destroying an insurer's master key (crypto-shredding)
stops new settlements from reading its prices as soon as the keyring shows it (the cipher
checks a data key's master key on every use), and it stops nothing else: a price that cannot be
read is unknown to the engine, which still splits the claim (on list prices) and marks that
insurer's rebate not computable.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Collection, Hashable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import MappingProxyType
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
from api.crypto.envelope import FieldCipher, Place, ValueUnreadable
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


@dataclass(frozen=True, slots=True)
class SealedPrice:
    """A commercial catalogue entry with its settlement price as stored: encrypted."""

    entry_id: uuid.UUID
    drug: str
    insurer: str
    ciphertext: bytes
    package_units: int | None
    """The drug's package size (its split lines' rebates need it)."""


@dataclass(frozen=True, slots=True)
class FormularyVersion:
    """A formulary version as engine values, its confidential prices still sealed: what may be
    cached. `formulary` holds the basic entries and no commercial entry; `sealed` the commercial
    entries by drug.
    """

    id: uuid.UUID
    formulary: Formulary
    sealed: Mapping[str, tuple[SealedPrice, ...]]


@dataclass(slots=True)
class VersionCache:
    """Engine values of immutable formulary and plan versions, by version id (no clear price)."""

    formularies: LRU[uuid.UUID, FormularyVersion]
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


async def load_facts(
    session: AsyncSession, request: ClaimRequest, cache: VersionCache, cipher: FieldCipher, *, prices: bool = True
) -> Facts:
    """The facts of `request`. With `prices` False (a pre-settlement, which shows no rebate) no
    confidential price is decrypted: the split is the same without them.
    """
    institution = await _institution(session, request.institution)
    person_id, patient_index, patient = await _person(session, request.person)
    await _check_drugs(session, request)
    version = await formulary_in_force(session, institution.region, request.service_date, cache)
    plans = await plans_in_force(session, patient.region, request.service_date, cache)
    if not plans:
        await _refuse_before_rules(session, models.PlanVersion.__table__, patient.region, request.service_date, "plan")
    if request.visit is Visit.PHARMACY and institution.kind is not InstitutionKind.PHARMACY:
        raise ServiceError(ErrorCode.VISIT_MISMATCH, "only a pharmacy submits pharmacy claims", "claim.visit")
    disclosures: list[audit.AuditRecord] = []
    formulary = await formulary_for_claim(
        session,
        version,
        {line.drug for line in request.lines},
        {plan.plan.payer for plan in plans},
        cipher if prices else None,
        disclosures,
    )
    return Facts(institution, person_id, patient_index, patient, version.id, formulary, plans, tuple(disclosures))


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


async def formulary_in_force(session: AsyncSession, region: str, on: date, cache: VersionCache) -> FormularyVersion:
    """The version in force, as engine values, its prices sealed (cached by version id)."""
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
        return cached
    basic = models.BasicEntry.__table__
    commercial = models.CommercialEntry.__table__
    basic_rows = (await session.execute(select(basic).where(basic.c.formulary_version_id == row.id))).all()
    commercial_rows = (
        await session.execute(
            select(commercial)
            .where(commercial.c.formulary_version_id == row.id)
            .order_by(commercial.c.drug_code, commercial.c.insurer_code)
        )
    ).all()
    # stored standards and settlement prices are per package; the drug registry's package size
    # converts them for split lines (拆零), which the engine refuses to settle without one
    drugs = models.Drug.__table__
    codes = {entry.drug_code for entry in basic_rows} | {entry.drug_code for entry in commercial_rows}
    package_units: dict[str, int] = {}
    if codes:
        found = await session.execute(select(drugs.c.code, drugs.c.package_units).where(drugs.c.code.in_(codes)))
        package_units = {code: units for code, units in found.all()}
    sealed: dict[str, list[SealedPrice]] = {}
    for entry in commercial_rows:
        sealed.setdefault(entry.drug_code, []).append(
            SealedPrice(
                entry.id,
                entry.drug_code,
                entry.insurer_code,
                entry.settlement_price_ct,
                package_units.get(entry.drug_code),
            )
        )
    version = FormularyVersion(
        id=row.id,
        formulary=Formulary.of(
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
        ),
        sealed=MappingProxyType({drug: tuple(entries) for drug, entries in sealed.items()}),
    )
    cache.formularies.put(row.id, version)
    return version


async def formulary_for_claim(
    session: AsyncSession,
    version: FormularyVersion,
    drugs: Collection[str],
    insurers: Collection[str],
    cipher: FieldCipher | None,
    disclosures: list[audit.AuditRecord],
) -> Formulary:
    """The formulary one claim is adjudicated on: the version's basic entries, and the commercial
    entries of the claim's drugs under `insurers` (the payers of the plans in force: no one else
    can be owed a rebate on this claim), each price decrypted on its own, for this claim only.

    A price whose insurer's master key was destroyed is unknown (None): the claim settles, and
    that insurer's rebate is not computable. Any other unreadable price (altered, moved) is an
    integrity failure and refuses the claim, loudly. Without a cipher no price is decrypted.
    The decryptions are added to `disclosures`, for the caller to audit with its transaction.
    """
    entries: list[CommercialEntry] = []
    decrypted: list[str] = []
    for drug in sorted(set(drugs)):
        for sealed in version.sealed.get(drug, ()):
            if sealed.insurer not in insurers:
                continue
            price: int | None = None
            if cipher is not None:
                place = Place(
                    "commercial_entries", "settlement_price_ct", sealed.entry_id, insurer_tenant(sealed.insurer)
                )
                try:
                    price = await cipher.decrypt_amount(place, sealed.ciphertext, session)
                    decrypted.append(str(sealed.entry_id))
                except ValueUnreadable:
                    price = None  # crypto-shredded: this insurer's rebate is not computable
            entries.append(CommercialEntry(sealed.drug, sealed.insurer, price, sealed.package_units))
    if decrypted:
        disclosures.append(
            audit.AuditRecord(
                ADJUDICATION,
                "decrypt commercial_entries.settlement_price_ct",
                "allowed",
                datetime.now(UTC),
                f"formulary_version:{version.id}",
                {"entries": decrypted, "purpose": "adjudication (rebates)"},
            ),
        )
    if not entries:
        return version.formulary
    return Formulary.of(
        basic=tuple(version.formulary.basic.values()),
        self_pay_first_ratio=version.formulary.self_pay_first_ratio,
        commercial=tuple(entries),
    )


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
