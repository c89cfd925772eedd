"""Loading reference data: `settle load FILE` and the `loadDocument` mutation read one document.

    {
      "region": "310100", "effective_from": "2026-01-01",      required with formulary or plans
      "payers":       [{"code", "name", "kind", "region"}],
      "institutions": [{"code", "name", "kind", "level", "region"}],
      "drugs":        [{"code", "generic_name", "specification", "package_units", "manufacturer",
                        "trace_prefixes", "listed_on"}],
      "people":       [{"psn_no", "id_number", "name", "insurance_type", "region", "memberships", "flags"}],
      "formulary":    SCENARIO.md's formulary object (standards per package: package sizes are the
                      drugs' own, so no entry states standard_per "smallest" or package_units),
      "plans":        SCENARIO.md's plans (their order is their priority within a kind),
      "grants":       [{"reference", "payer", "institution", "amount", "note"}],
      "trace_policies": [{"institution", "drug", "invalid_codes": "refuse" | "accept_and_flag",
                          "no_code_stock": false}]
    }

Payers, institutions, drugs and people are upserted by code. Formularies and plans are versioned:
a version (region and date, or plan and date) is written once; loading the same one again is a
no-op, loading a different one under the same date is refused (VERSION_CONFLICT). Grants are
idempotent by their reference. Everything is checked before anything is written, and the whole
document is written in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, FromClause, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from adjudication import ErrorCode, Formulary, InputError, InstitutionKind, InsuranceType, Plan, StandardPer
from adjudication.ledger import grant_postings
from adjudication.scenario import (
    COMMENT,
    Reader,
    read_date,
    read_formulary,
    read_items,
    read_plans,
    read_yuan,
)
from api.auth import Principal
from api.crypto.envelope import FieldCipher, Place
from api.crypto.tenants import insurer_tenant, people_tenant
from api.db import ledger, models
from api.db.statements import chunks, insert_missing, upsert
from api.errors import ServiceError
from api.ids import uuid7
from api.services import access, audit
from api.services.runtime import Runtime
from api.tables import table_of

PAYER_KINDS = ("fund", "insurer", "mutual_aid", "charity")


@dataclass(frozen=True, slots=True)
class LoadSummary:
    payers: int = 0
    institutions: int = 0
    drugs: int = 0
    people: int = 0
    formulary_versions: int = 0
    plan_versions: int = 0
    grants: int = 0
    unchanged_versions: int = 0
    trace_policies: int = 0


def digest(cipher: FieldCipher, value: object) -> str:
    """A keyed digest of a version's content: equal contents compare equal, yet nobody holding
    the database can test guesses of a confidential price against it.
    """
    return cipher.digest(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())


def _strip_comments(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _strip_comments(item) for key, item in value.items() if key != COMMENT}
    if isinstance(value, list):
        return [_strip_comments(item) for item in value]
    return value


def _choice(reader: Reader, key: str, allowed: Sequence[str]) -> str:
    value = reader.text(key)
    if value not in allowed:
        raise InputError(reader.at(key), f"{value!r} is not one of: {', '.join(allowed)}")
    return value


def _payers(value: object) -> list[dict[str, Any]]:
    rows = []
    for item, path in read_items(value, "payers"):
        reader = Reader(item, path)
        rows.append(
            {
                "id": uuid7(),
                "code": reader.text("code"),
                "name": reader.text("name"),
                "kind": _choice(reader, "kind", PAYER_KINDS),
                "region": reader.optional_text("region"),
            }
        )
        reader.done()
    return rows


def _institutions(value: object) -> list[dict[str, Any]]:
    rows = []
    for item, path in read_items(value, "institutions"):
        reader = Reader(item, path)
        kind = _choice(reader, "kind", [kind.value for kind in InstitutionKind])
        level = reader.count("level", minimum=1, default=1 if kind == InstitutionKind.PHARMACY else None)
        if level > 3:
            raise InputError(reader.at("level"), "an institution level is 1, 2 or 3")
        rows.append(
            {
                "id": uuid7(),
                "code": reader.text("code"),
                "name": reader.text("name"),
                "kind": kind,
                "level": level,
                "region": reader.text("region"),
            }
        )
        reader.done()
    return rows


def _drugs(value: object) -> list[dict[str, Any]]:
    rows = []
    for item, path in read_items(value, "drugs"):
        reader = Reader(item, path)
        listed_on = reader.optional("listed_on")
        rows.append(
            {
                "id": uuid7(),
                "code": reader.text("code"),
                "generic_name": reader.text("generic_name"),
                "specification": reader.optional_text("specification") or "",
                "package_units": reader.count("package_units", minimum=1),
                "manufacturer": reader.optional_text("manufacturer") or "",
                "trace_prefixes": list(reader.texts("trace_prefixes")),
                "listed_on": None if listed_on is None else read_date(listed_on, reader.at("listed_on")),
            }
        )
        reader.done()
    return rows


def _people(value: object) -> list[dict[str, Any]]:
    rows = []
    for item, path in read_items(value, "people"):
        reader = Reader(item, path)
        rows.append(
            {
                "id": uuid7(),
                "psn_no": reader.text("psn_no"),
                "id_number": reader.text("id_number"),
                "name": reader.text("name"),
                "insurance_type": _choice(reader, "insurance_type", [t.value for t in InsuranceType]),
                "region": reader.text("region"),
                "memberships": list(reader.texts("memberships")),
                "flags": list(reader.texts("flags")),
                "path": path,
            }
        )
        reader.done()
    return rows


def _trace_policies(value: object) -> list[dict[str, Any]]:
    rows = []
    for item, path in read_items(value, "trace_policies"):
        reader = Reader(item, path)
        rows.append(
            {
                "id": uuid7(),
                "institution_code": reader.text("institution"),
                "drug_code": reader.text("drug"),
                "invalid_codes": reader.optional_text("invalid_codes") or "refuse",
                "no_code_stock": reader.boolean("no_code_stock"),
            }
        )
        if rows[-1]["invalid_codes"] not in ("refuse", "accept_and_flag"):
            raise InputError(reader.at("invalid_codes"), "is refuse or accept_and_flag")
        reader.done()
    return rows


def _grants(value: object) -> list[dict[str, Any]]:
    rows = []
    for item, path in read_items(value, "grants"):
        reader = Reader(item, path)
        amount = read_yuan(reader.required("amount"), reader.at("amount"))
        if amount <= 0:
            raise InputError(reader.at("amount"), "a grant is above zero", ErrorCode.INVALID_AMOUNT)
        rows.append(
            {
                "reference": reader.text("reference"),
                "payer": reader.text("payer"),
                "institution": reader.text("institution"),
                "amount_fen": amount,
                "note": reader.optional_text("note") or "",
                "path": path,
            }
        )
        reader.done()
    return rows


def _width(column: ColumnElement[Any]) -> int | None:
    """How many characters a column holds (None: as many as given)."""
    length = getattr(column.type, "length", None)  # String's and its kinds'
    return length if isinstance(length, int) else None


def _fit_columns(section: str, rows: Sequence[dict[str, Any]], table: FromClause) -> None:
    """Every text of a section's rows fits the column it is written to (named alike)."""
    widths = {c.name: width for c in table.columns if (width := _width(c)) is not None}
    for index, row in enumerate(rows):
        for key, value in row.items():
            width = widths.get(key)
            if width is not None and isinstance(value, str) and len(value) > width:
                raise InputError(f"{section}[{index}].{key}", f"at most {width} characters, not {len(value)}")


def _declared_width(column: ColumnElement[Any]) -> int:
    width = _width(column)
    if width is None:
        raise TypeError(f"the column {column} declares no width")
    return width


CODE_CHARS = _declared_width(models.Payer.__table__.c.code)
REGION_CHARS = _declared_width(models.FormularyVersion.__table__.c.region)
KIND_CHARS = _declared_width(models.PlanVersion.__table__.c.kind)


def _fit_codes(region: str | None, formulary: Formulary | None, plans: Sequence[Plan]) -> None:
    """The codes a formulary and plans bring (region, plans, payers, drugs, insurers) fit their columns."""
    if region is not None and len(region) > REGION_CHARS:
        raise InputError("region", f"at most {REGION_CHARS} characters")
    for index, plan in enumerate(plans):
        for key, value in (("id", plan.id), ("payer", plan.payer)):
            if len(value) > CODE_CHARS:
                raise InputError(f"plans[{index}].{key}", f"at most {CODE_CHARS} characters")
        if len(plan.kind.value) > KIND_CHARS:  # medical_assistance, until the kind columns are widened
            raise InputError(f"plans[{index}].kind", f"the service cannot store {plan.kind.value} plans yet")
    if formulary is not None:
        codes = list(formulary.basic)
        codes += [code for pair in formulary.commercial for code in pair]
        for code in codes:
            if len(code) > CODE_CHARS:
                raise InputError("formulary", f"the code {code[:20]}... is longer than {CODE_CHARS} characters")


def _storable(formulary: Formulary) -> None:
    """The service stores payment standards and settlement prices per package and takes package
    sizes from the drug registry; an entry stating otherwise cannot be stored as written.
    """
    for index, entry in enumerate(formulary.basic.values()):
        if entry.standard_per is StandardPer.SMALLEST:
            raise InputError(
                f"formulary.basic[{index}].standard_per",
                "the service stores payment standards per package: state this one per package",
            )
        if entry.package_units is not None:
            raise InputError(
                f"formulary.basic[{index}].package_units",
                "the service takes package sizes from the drug registry (drugs[].package_units): leave it out here",
            )
    for index, listed in enumerate(formulary.commercial.values()):
        if listed.package_units is not None:
            raise InputError(
                f"formulary.commercial[{index}].package_units",
                "the service takes package sizes from the drug registry (drugs[].package_units): leave it out here",
            )


async def load_document(runtime: Runtime, principal: Principal, document: object) -> LoadSummary:
    """Check the whole document, then write it in one transaction (the administrator's only)."""
    sessions, cipher, now = runtime.sessions, runtime.cipher, runtime.clock()
    if not access.may_administer(principal):
        error = ServiceError(ErrorCode.FORBIDDEN, "only an administrator loads reference data", "document")
        await audit.refuse(sessions, principal, "loadDocument", error, now)
    try:
        reader = Reader(document, "")
        payers = _payers(reader.optional("payers") or [])
        institutions = _institutions(reader.optional("institutions") or [])
        drugs = _drugs(reader.optional("drugs") or [])
        people = _people(reader.optional("people") or [])
        grants = _grants(reader.optional("grants") or [])
        policies = _trace_policies(reader.optional("trace_policies") or [])
        raw_formulary, raw_plans = reader.optional("formulary"), reader.optional("plans")
        formulary = None if raw_formulary is None else read_formulary(raw_formulary)
        plans = () if raw_plans is None else read_plans(raw_plans)
        region = effective_from = None
        if formulary is not None or plans:
            region = reader.text("region")
            effective_from = read_date(reader.required("effective_from"), "effective_from")
        reader.done()
        for section, rows, table in (
            ("payers", payers, models.Payer.__table__),
            ("institutions", institutions, models.Institution.__table__),
            ("drugs", drugs, models.Drug.__table__),
            ("people", people, models.Person.__table__),
            ("grants", grants, models.PrepaymentGrant.__table__),
            ("trace_policies", policies, models.TracePolicy.__table__),
        ):
            _fit_columns(section, rows, table)
        _fit_codes(region, formulary, plans)
        if formulary is not None:
            _storable(formulary)
    except InputError as error:
        raise ServiceError.from_input(error, "document") from None

    async with sessions() as session:
        await upsert(session, table_of(models.Payer), payers, ["code"])
        await upsert(session, table_of(models.Institution), institutions, ["code"])
        await upsert(session, table_of(models.Drug), drugs, ["code"])
        await upsert(session, table_of(models.Person), await _seal_people(session, cipher, people), ["psn_no"])
        known_payers = set((await session.execute(select(models.Payer.code))).scalars())
        written = {"formulary": 0, "plans": 0, "unchanged": 0}
        if formulary is not None:
            assert region is not None and effective_from is not None
            known_drugs = set((await session.execute(select(models.Drug.code))).scalars())
            _check_references(formulary, known_payers, known_drugs)
            new = await _formulary_version(session, cipher, region, effective_from, raw_formulary, formulary, now)
            written["formulary" if new else "unchanged"] += 1
        for index, plan in enumerate(plans):
            assert region is not None and effective_from is not None and isinstance(raw_plans, list)
            if plan.payer not in known_payers:
                raise ServiceError(ErrorCode.NOT_FOUND, f"no payer {plan.payer}", f"document.plans[{index}].payer")
            definition = raw_plans[index]
            new = await _plan_version(session, cipher, region, effective_from, index, definition, plan, now)
            written["plans" if new else "unchanged"] += 1
        granted = await _grant(session, grants, now)
        await upsert(session, table_of(models.TracePolicy), policies, ["institution_code", "drug_code"])
        summary = LoadSummary(
            payers=len(payers),
            institutions=len(institutions),
            drugs=len(drugs),
            people=len(people),
            formulary_versions=written["formulary"],
            plan_versions=written["plans"],
            grants=granted,
            unchanged_versions=written["unchanged"],
            trace_policies=len(policies),
        )
        target = f"region:{region}@{effective_from}" if region else None
        await audit.append(
            session,
            audit.AuditRecord(audit.Actor.of(principal), "loadDocument", "allowed", now, target, asdict(summary)),
        )
        await session.commit()
    return summary


def _check_references(formulary: Formulary, payers: set[str], drugs: set[str]) -> None:
    """Every drug of a formulary is registered, and every catalogue insurer is a payer."""
    for index, drug in enumerate(formulary.basic):
        if drug not in drugs:
            raise ServiceError(
                ErrorCode.UNKNOWN_DRUG, f"no drug {drug} is registered", f"document.formulary.basic[{index}].drug"
            )
    for index, (drug, insurer) in enumerate(formulary.commercial):
        path = f"document.formulary.commercial[{index}]"
        if drug not in drugs:
            raise ServiceError(ErrorCode.UNKNOWN_DRUG, f"no drug {drug} is registered", f"{path}.drug")
        if insurer not in payers:
            raise ServiceError(ErrorCode.NOT_FOUND, f"no payer {insurer}", f"{path}.insurer")


async def _formulary_version(
    session: AsyncSession,
    cipher: FieldCipher,
    region: str,
    effective_from: date,
    raw: object,
    formulary: Formulary,
    now: datetime,
) -> bool:
    versions = table_of(models.FormularyVersion)
    content = digest(cipher, _strip_comments(raw))
    existing = (
        await session.execute(
            select(versions.c.digest).where(versions.c.region == region, versions.c.effective_from == effective_from)
        )
    ).scalar_one_or_none()
    if existing is not None:
        if existing != content:
            raise ServiceError(
                ErrorCode.VERSION_CONFLICT,
                f"a different formulary of region {region} from {effective_from} is already loaded; versions never "
                "change: load the new one under a new effective date",
                "document.formulary",
            )
        return False
    version_id = uuid7()
    await session.execute(
        versions.insert().values(
            id=version_id,
            region=region,
            effective_from=effective_from,
            self_pay_first_ratio_ppm=formulary.self_pay_first_ratio,
            digest=content,
            loaded_at=now,
        )
    )
    basic = [
        {
            "id": uuid7(),
            "formulary_version_id": version_id,
            "drug_code": entry.drug,
            "category": entry.category.value,
            "payment_standard_fen": entry.payment_standard,
            "self_pay_first_ratio_ppm": entry.self_pay_first_ratio,
            "negotiated": entry.negotiated,
            "dual_channel": entry.dual_channel,
            "restricted_diagnoses": list(entry.restricted_diagnoses),
            "restricted_visits": sorted(visit.value for visit in entry.restricted_visits),
        }
        for entry in formulary.basic.values()
    ]
    commercial = []
    for entry in formulary.commercial.values():
        assert entry.settlement_price is not None  # a loaded document states every price (read_formulary)
        row_id = uuid7()
        place = Place("commercial_entries", "settlement_price_ct", row_id, insurer_tenant(entry.insurer))
        commercial.append(
            {
                "id": row_id,
                "formulary_version_id": version_id,
                "drug_code": entry.drug,
                "insurer_code": entry.insurer,
                "settlement_price_ct": await cipher.encrypt_amount(session, place, entry.settlement_price),
            }
        )
    if basic:
        await session.execute(table_of(models.BasicEntry).insert().values(basic))
    if commercial:
        await session.execute(table_of(models.CommercialEntry).insert().values(commercial))
    return True


async def _plan_version(
    session: AsyncSession,
    cipher: FieldCipher,
    region: str,
    effective_from: date,
    priority: int,
    raw: object,
    plan: Plan,
    now: datetime,
) -> bool:
    versions = table_of(models.PlanVersion)
    definition = _strip_comments(raw)
    content = digest(cipher, definition)
    existing = (
        await session.execute(
            select(versions.c.digest).where(
                versions.c.plan_code == plan.id, versions.c.effective_from == effective_from
            )
        )
    ).scalar_one_or_none()
    if existing is not None:
        if existing != content:
            raise ServiceError(
                ErrorCode.VERSION_CONFLICT,
                f"a different version of plan {plan.id} from {effective_from} is already loaded",
                f"document.plans[{priority}]",
            )
        return False
    await session.execute(
        versions.insert().values(
            id=uuid7(),
            plan_code=plan.id,
            payer_code=plan.payer,
            kind=plan.kind.value,
            region=region,
            priority=priority,
            effective_from=effective_from,
            definition=definition,
            digest=content,
            loaded_at=now,
        )
    )
    return True


async def _seal_people(
    session: AsyncSession, cipher: FieldCipher, people: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Encrypt each person's ID number and name, bound to the person's row id (kept from the
    existing row when the person is already known), and add the ID number's blind index.
    """
    if not people:
        return []
    table = models.Person.__table__
    codes = [person["psn_no"] for person in people]
    known: dict[str, Any] = {}
    for group in chunks(codes):
        found = await session.execute(select(table.c.psn_no, table.c.id).where(table.c.psn_no.in_(group)))
        known.update((row[0], row[1]) for row in found)
    sealed: list[dict[str, Any]] = []
    indexes: dict[str, str] = {}
    for person in people:
        row_id = known.get(person["psn_no"], person["id"])
        tenant = people_tenant(person["region"])
        index = cipher.blind_index("id_number", person["id_number"].upper())
        if indexes.setdefault(index, person["psn_no"]) != person["psn_no"]:
            raise ServiceError(ErrorCode.DUPLICATE, "two people share one ID number", f"document.{person['path']}")
        clear = {key: value for key, value in person.items() if key not in ("id_number", "name", "path")}
        sealed.append(
            clear
            | {
                "id": row_id,
                "id_number_ct": await cipher.encrypt_text(
                    session, Place("people", "id_number_ct", row_id, tenant), person["id_number"]
                ),
                "id_number_index": index,
                "name_ct": await cipher.encrypt_text(
                    session, Place("people", "name_ct", row_id, tenant), person["name"]
                ),
            }
        )
    taken: list[tuple[str, str]] = []
    for group in chunks(list(indexes)):
        statement = select(table.c.id_number_index, table.c.psn_no).where(table.c.id_number_index.in_(group))
        taken.extend((row[0], row[1]) for row in await session.execute(statement))
    for index, psn_no in taken:
        if indexes[index] != psn_no:
            raise ServiceError(ErrorCode.DUPLICATE, f"another person ({psn_no}) has this ID number", "document.people")
    return sealed


async def _grant(session: AsyncSession, grants: Sequence[dict[str, Any]], now: datetime) -> int:
    """Advance money into pools; a grant whose reference is already recorded is not repeated."""
    if not grants:
        return 0
    recorded = models.PrepaymentGrant.__table__
    seen = set(
        (
            await session.execute(
                select(recorded.c.reference).where(recorded.c.reference.in_([g["reference"] for g in grants]))
            )
        ).scalars()
    )
    fresh = [grant for grant in grants if grant["reference"] not in seen]
    if not fresh:
        return 0
    known_payers = set((await session.execute(select(models.Payer.code))).scalars())
    known_institutions = set((await session.execute(select(models.Institution.code))).scalars())
    for grant in fresh:
        if grant["payer"] not in known_payers:
            raise ServiceError(ErrorCode.NOT_FOUND, f"no payer {grant['payer']}", f"document.{grant['path']}.payer")
        if grant["institution"] not in known_institutions:
            raise ServiceError(
                ErrorCode.NOT_FOUND, f"no institution {grant['institution']}", f"document.{grant['path']}.institution"
            )
    await grant_prepayments(session, fresh, now)
    return len(fresh)


async def grant_prepayments(session: AsyncSession, grants: Sequence[dict[str, Any]], now: datetime) -> None:
    """Record grants (reference, payer, institution, amount_fen, note): each pool is locked once,
    in payer order, its totals raised, and treasury -> pool posted to the ledger.
    """
    pools = table_of(models.PrepaymentPool)
    keys = sorted({(grant["payer"], grant["institution"]) for grant in grants})
    await insert_missing(
        session,
        pools,
        [{"id": uuid7(), "payer_code": p, "institution_code": i} for p, i in keys],
        ["payer_code", "institution_code"],
    )
    for payer, institution in keys:
        pool = (
            (
                await session.execute(
                    select(pools)
                    .where(pools.c.payer_code == payer, pools.c.institution_code == institution)
                    .with_for_update()
                )
            )
            .mappings()
            .one()
        )
        mine = [grant for grant in grants if (grant["payer"], grant["institution"]) == (payer, institution)]
        total = sum(grant["amount_fen"] for grant in mine)
        await session.execute(
            update(pools)
            .where(pools.c.id == pool["id"])
            .values(granted_fen=pool["granted_fen"] + total, balance_fen=pool["balance_fen"] + total)
        )
        for grant in mine:
            grant_id = uuid7()
            await session.execute(
                table_of(models.PrepaymentGrant)
                .insert()
                .values(
                    id=grant_id,
                    reference=grant["reference"],
                    pool_id=pool["id"],
                    amount_fen=grant["amount_fen"],
                    granted_at=now,
                    note=grant["note"],
                )
            )
            postings = grant_postings(payer, institution, grant["amount_fen"])
            await session.execute(
                table_of(models.LedgerEntry).insert().values(ledger.entry_rows(postings, now, grant_id=grant_id))
            )
