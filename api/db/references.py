"""Reference versions, and everything else one claim is checked and adjudicated against: the
institution, the insured person, the drugs, the formulary and plans in force on the service
date, the institution's traceability policies, the e-prescriptions named, and what became of
the claim's serial before. On PostgreSQL all of it is one statement (`for_claim`).

Formulary and plan versions never change once loaded, so their engine values are cached by
version id (`VersionCache`); everything else is read for each claim. The cache never holds a
confidential price in clear: a formulary version is cached with its commercial settlement prices
still sealed, and each claim decrypts only the prices it may need (`formulary_for_claim`). So
destroying an insurer's master key stops new settlements from reading its prices as soon as the
keyring shows it, and stops nothing else: a price that cannot be read is unknown to the engine,
which still splits the claim (on list prices) and marks that insurer's rebate not computable.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import func, select

from adjudication import (
    BasicEntry,
    Category,
    Claim,
    CommercialEntry,
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
from adjudication.tracecodes import DrugFacts
from api.crypto.envelope import Place, ValueUnreadable
from api.crypto.tenants import insurer_tenant
from api.db import models
from api.db.base import Base, table_of
from api.db.pools import Pool
from api.services import audit

if TYPE_CHECKING:
    from api.db.unit_of_work import UnitOfWork

ADJUDICATION = audit.Actor(token_id=None, subject="system:adjudication")
"""The service itself, when it decrypts prices to adjudicate a claim."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_FOR_CLAIM = """SELECT
  (SELECT ROW(code, kind, level, region) FROM institutions WHERE code = $1),
  (SELECT ROW(id, id_number_index, insurance_type, region, memberships, flags) FROM people WHERE psn_no = $2),
  ARRAY(SELECT ROW(code, package_units, trace_prefixes, listed_on) FROM drugs WHERE code = ANY($3::text[])),
  (SELECT ROW(id, self_pay_first_ratio_ppm) FROM formulary_versions
    WHERE region = (SELECT region FROM institutions WHERE code = $1) AND effective_from <= $4
    ORDER BY effective_from DESC LIMIT 1),
  (SELECT min(effective_from) FROM formulary_versions WHERE region = (SELECT region FROM institutions WHERE code = $1)),
  ARRAY(SELECT ROW(id, plan_code, priority) FROM (
    SELECT DISTINCT ON (plan_code) id, plan_code, priority FROM plan_versions
    WHERE region = (SELECT region FROM people WHERE psn_no = $2) AND effective_from <= $4
    ORDER BY plan_code, effective_from DESC) AS latest ORDER BY priority, plan_code),
  (SELECT min(effective_from) FROM plan_versions WHERE region = (SELECT region FROM people WHERE psn_no = $2)),
  ARRAY(SELECT ROW(drug_code, invalid_codes, no_code_stock) FROM trace_policies
    WHERE institution_code = $1 AND drug_code = ANY($3::text[])),
  ARRAY(SELECT ROW(prescription_id, person_id, drugs) FROM prescriptions WHERE prescription_id = ANY($5::text[])),
  (SELECT ROW(id, request_hash) FROM settlements WHERE institution_code = $1 AND serial = $6),
  EXISTS (SELECT FROM voided_serials WHERE institution_code = $1 AND serial = $6),
  ARRAY(SELECT ROW(id, payer_code, granted_fen, drawn_fen, returned_fen, balance_fen) FROM prepayment_pools
    WHERE institution_code = $1)"""


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
    cached. `formulary` holds the basic entries; `sealed` the commercial entries by drug.
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
class InsuredPerson:
    id: uuid.UUID
    psn_no: str
    index: str
    """The keyed blind index of their ID number: how trace events name them."""
    patient: Patient
    """As the plans see them, without this year's totals (those are locked by the caller)."""


@dataclass(frozen=True, slots=True)
class TracePolicy:
    """An institution's rule for one drug's codes: refuse or accept-and-flag invalid codes, and
    whether it may settle stock without codes (the no-code list).
    """

    invalid_codes: str = "refuse"
    no_code_stock: bool = False


@dataclass(frozen=True, slots=True)
class Prescription:
    person_id: uuid.UUID
    drugs: frozenset[str]

    def covers(self, person_id: uuid.UUID, drug: str) -> bool:
        return self.person_id == person_id and drug in self.drugs


@dataclass(frozen=True, slots=True)
class SerialHistory:
    """What became of a serial before: settled (its id and request digest), voided, or neither."""

    settlement_id: uuid.UUID | None = None
    request_hash: str | None = None
    voided: bool = False


@dataclass(frozen=True, slots=True)
class ClaimReferences:
    """What one claim names, as found; None (or absent) where it names nothing on record."""

    institution: Institution | None
    person: InsuredPerson | None
    drugs: Mapping[str, DrugFacts]
    formulary: FormularyVersion | None
    formulary_from: date | None
    """When the first formulary of the institution's region took effect (None: it has none)."""
    plans: tuple[PlanInForce, ...]
    plans_from: date | None
    """When the first plan of the person's region took effect (None: it has none)."""
    policies: Mapping[str, TracePolicy]
    prescriptions: Mapping[str, Prescription]
    serial: SerialHistory
    pools: Mapping[str, Pool]
    """The institution's prepayment pools by payer, as read: not locked (api/db/pools.py says when
    that is enough)."""


class References:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    async def for_claim(self, claim: Claim, institution: str, person: str) -> ClaimReferences:
        """Everything `claim` names, at `institution`, for the person `person` (psn_no)."""
        drugs = sorted({line.drug for line in claim.lines})
        prescriptions = sorted({line.prescription_id for line in claim.lines if line.prescription_id})
        arguments = (institution, person, drugs, claim.service_date, prescriptions, claim.serial)
        if self.uow.postgresql:
            ((*found,),) = await self.uow.fetch(_FOR_CLAIM, *arguments)
        else:
            found = await self._for_claim_core(*arguments)
        (
            place,
            someone,
            drug_rows,
            version,
            formulary_from,
            plan_rows,
            plans_from,
            policy_rows,
            issued,
            settled,
            voided,
            pool_rows,
        ) = found
        return ClaimReferences(
            institution=None if place is None else Institution(place[0], InstitutionKind(place[1]), place[2], place[3]),
            person=None if someone is None else _insured(person, someone),
            drugs={code: DrugFacts(units, tuple(prefixes), listed) for code, units, prefixes, listed in drug_rows},
            formulary=None if version is None else await self._formulary(version[0], version[1]),
            formulary_from=formulary_from,
            plans=await self._plans([row[0] for row in plan_rows]),
            plans_from=plans_from,
            policies={drug: TracePolicy(invalid, no_code) for drug, invalid, no_code in policy_rows},
            prescriptions={rx: Prescription(pid, frozenset(rx_drugs)) for rx, pid, rx_drugs in issued},
            serial=SerialHistory(settled[0], settled[1], voided) if settled else SerialHistory(voided=voided),
            pools={row[1]: Pool(*row) for row in pool_rows},
        )

    async def formulary_for_claim(
        self, version: FormularyVersion, drugs: Collection[str], insurers: Collection[str], *, prices: bool
    ) -> Formulary:
        """The formulary one claim is adjudicated on: the version's basic entries, and the
        commercial entries of the claim's drugs under `insurers` (the payers of the plans in
        force: no one else can be owed a rebate on this claim), each price decrypted for this
        claim only, and the decryptions audited with the unit of work. Without `prices` (a
        pre-settlement shows no rebate) nothing is decrypted: the split is the same.

        A price whose insurer's master key was destroyed is unknown (None): the claim settles,
        and that insurer's rebate is not computable. Any other unreadable price (altered, moved)
        is an integrity failure and refuses the claim, loudly.
        """
        entries: list[CommercialEntry] = []
        decrypted: list[str] = []
        for drug in sorted(set(drugs)):
            for sealed in version.sealed.get(drug, ()):
                if sealed.insurer not in insurers:
                    continue
                price: int | None = None
                if prices:
                    place = Place(
                        "commercial_entries", "settlement_price_ct", sealed.entry_id, insurer_tenant(sealed.insurer)
                    )
                    try:
                        price = await self.uow.open_amount(place, sealed.ciphertext)
                        decrypted.append(str(sealed.entry_id))
                    except ValueUnreadable:
                        price = None  # crypto-shredded: this insurer's rebate is not computable
                entries.append(CommercialEntry(sealed.drug, sealed.insurer, price, sealed.package_units))
        if decrypted:
            self.uow.audit(
                audit.AuditRecord(
                    ADJUDICATION,
                    "decrypt commercial_entries.settlement_price_ct",
                    "allowed",
                    datetime.now(UTC),
                    f"formulary_version:{version.id}",
                    {"entries": decrypted, "purpose": "adjudication (rebates)"},
                )
            )
        if not entries:
            return version.formulary
        return Formulary.of(
            basic=tuple(version.formulary.basic.values()),
            self_pay_first_ratio=version.formulary.self_pay_first_ratio,
            commercial=tuple(entries),
        )

    async def _for_claim_core(
        self, institution: str, person: str, drugs: Sequence[str], on: date, prescriptions: Sequence[str], serial: str
    ) -> list[Any]:
        """SQLite: what `_FOR_CLAIM` reads, a table at a time."""
        tables = {name: table_of(model) for name, model in _TABLES.items()}
        i, p, d = tables["institutions"], tables["people"], tables["drugs"]
        fv, pv, tp, rx = tables["formularies"], tables["plans"], tables["policies"], tables["prescriptions"]
        s, v, pp = tables["settlements"], tables["voided"], tables["pools"]

        async def one(statement: Any) -> Any:
            row = (await self.uow.execute(statement)).first()
            return None if row is None else tuple(row)

        async def many(statement: Any) -> list[tuple[Any, ...]]:
            return [tuple(row) for row in await self.uow.execute(statement)]

        place = await one(select(i.c.code, i.c.kind, i.c.level, i.c.region).where(i.c.code == institution))
        someone = await one(
            select(p.c.id, p.c.id_number_index, p.c.insurance_type, p.c.region, p.c.memberships, p.c.flags).where(
                p.c.psn_no == person
            )
        )
        region = None if place is None else place[3]
        person_region = None if someone is None else someone[3]
        plan_rows = await many(
            select(pv.c.id, pv.c.plan_code, pv.c.priority)
            .where(pv.c.region == person_region, pv.c.effective_from <= on)
            .order_by(pv.c.plan_code, pv.c.effective_from.desc())
        )
        latest: dict[str, tuple[int, str, uuid.UUID]] = {}
        for version_id, plan_code, priority in plan_rows:
            latest.setdefault(plan_code, (priority, plan_code, version_id))
        return [
            place,
            someone,
            await many(
                select(d.c.code, d.c.package_units, d.c.trace_prefixes, d.c.listed_on).where(d.c.code.in_(drugs))
            ),
            await one(
                select(fv.c.id, fv.c.self_pay_first_ratio_ppm)
                .where(fv.c.region == region, fv.c.effective_from <= on)
                .order_by(fv.c.effective_from.desc())
                .limit(1)
            ),
            (await one(select(func.min(fv.c.effective_from)).where(fv.c.region == region)))[0],
            [(version_id, code, priority) for priority, code, version_id in sorted(latest.values())],
            (await one(select(func.min(pv.c.effective_from)).where(pv.c.region == person_region)))[0],
            await many(
                select(tp.c.drug_code, tp.c.invalid_codes, tp.c.no_code_stock).where(
                    tp.c.institution_code == institution, tp.c.drug_code.in_(drugs)
                )
            ),
            await many(
                select(rx.c.prescription_id, rx.c.person_id, rx.c.drugs).where(rx.c.prescription_id.in_(prescriptions))
            ),
            await one(
                select(s.c.id, s.c.request_hash).where(s.c.institution_code == institution, s.c.serial == serial)
            ),
            await one(select(v.c.id).where(v.c.institution_code == institution, v.c.serial == serial)) is not None,
            await many(
                select(
                    pp.c.id, pp.c.payer_code, pp.c.granted_fen, pp.c.drawn_fen, pp.c.returned_fen, pp.c.balance_fen
                ).where(pp.c.institution_code == institution)
            ),
        ]

    async def _formulary(self, version_id: uuid.UUID, self_pay_first_ratio: int) -> FormularyVersion:
        """The version's engine values, from the cache or read once (its prices sealed)."""
        cache = self.uow.runtime.cache.formularies
        cached = cache.get(version_id)
        if cached is not None:
            return cached
        basic, commercial = table_of(models.BasicEntry), table_of(models.CommercialEntry)
        basic_rows = (await self.uow.execute(select(basic).where(basic.c.formulary_version_id == version_id))).all()
        commercial_rows = (
            await self.uow.execute(
                select(commercial)
                .where(commercial.c.formulary_version_id == version_id)
                .order_by(commercial.c.drug_code, commercial.c.insurer_code)
            )
        ).all()
        # stored standards and settlement prices are per package; the drug registry's package size
        # converts them for split lines (拆零), which the engine refuses to settle without one
        drugs = table_of(models.Drug)
        codes = {entry.drug_code for entry in basic_rows} | {entry.drug_code for entry in commercial_rows}
        package_units: dict[str, int] = {}
        if codes:
            found = await self.uow.rows(select(drugs.c.code, drugs.c.package_units).where(drugs.c.code.in_(codes)))
            package_units = {code: units for code, units in found}
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
            id=version_id,
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
                self_pay_first_ratio=self_pay_first_ratio,
            ),
            sealed=MappingProxyType({drug: tuple(entries) for drug, entries in sealed.items()}),
        )
        cache.put(version_id, version)
        return version

    async def _plans(self, version_ids: Sequence[uuid.UUID]) -> tuple[PlanInForce, ...]:
        """The plans of these versions, in the order given, from the cache or read once."""
        cache = self.uow.runtime.cache.plans
        missing = [version_id for version_id in version_ids if cache.get(version_id) is None]
        if missing:
            versions = table_of(models.PlanVersion)
            statement = select(versions.c.id, versions.c.definition).where(versions.c.id.in_(missing))
            for version_id, definition in await self.uow.rows(statement):
                cache.put(version_id, parse_plan(definition, f"plan version {version_id}"))
        plans = []
        for version_id in version_ids:
            plan = cache.get(version_id)
            assert plan is not None
            plans.append(PlanInForce(version_id, plan))
        return tuple(plans)


_TABLES: Mapping[str, type[Base]] = {
    "institutions": models.Institution,
    "people": models.Person,
    "drugs": models.Drug,
    "formularies": models.FormularyVersion,
    "plans": models.PlanVersion,
    "policies": models.TracePolicy,
    "prescriptions": models.Prescription,
    "settlements": models.Settlement,
    "voided": models.VoidedSerial,
    "pools": models.PrepaymentPool,
}


def _insured(psn_no: str, row: Sequence[Any]) -> InsuredPerson:
    person_id, index, insurance_type, region, memberships, flags = row
    patient = Patient(InsuranceType(insurance_type), region, frozenset(memberships), frozenset(flags))
    return InsuredPerson(person_id, psn_no, index, patient)


def parse_plan(definition: object, where: str) -> Plan:
    try:
        return read_plan(definition, where)
    except InputError as error:  # stored definitions were checked on load; this is corruption
        raise RuntimeError(f"stored {where} no longer reads as a plan: {error}") from error
