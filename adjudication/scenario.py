"""The JSON scenario format of SCENARIO.md: parsed into engine values, and the result rendered back.

Parsing is strict: every error names the field's path (`plans[2].ratio.bands[0].rate`), unknown
keys are errors (except `$comment`, allowed on any object), amounts are decimal strings in yuan
with at most two places, ratios decimal strings between 0 and 1, quantities positive integers.
The `formulary` and `plans` readers are shared with `settle load`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeVar

from adjudication.claims import (
    Accumulator,
    Claim,
    ClaimLine,
    Institution,
    InstitutionKind,
    InsuranceType,
    Patient,
    Visit,
)
from adjudication.engine import DEFAULT_PERSONAL_ACCOUNT_COVERS, adjudicate
from adjudication.errors import ErrorCode, InputError
from adjudication.formulary import BasicEntry, Category, CommercialEntry, Formulary, Part, StandardPer
from adjudication.money import Fen, Ratio, format_yuan, parse_ratio, parse_yuan
from adjudication.plans import (
    ANYONE,
    DEFAULT_WATERFALL,
    NO_CAPS,
    Band,
    Bands,
    BaseTerm,
    ByLevel,
    Caps,
    Catalogue,
    Criteria,
    Deductible,
    DeductiblePer,
    InKind,
    Plan,
    PlanKind,
    Rate,
    RatioRule,
    Variant,
    check_waterfall,
)
from adjudication.results import Adjudication, Reason

E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")

COMMENT = "$comment"
LEVELS = (1, 2, 3)


@dataclass(frozen=True, slots=True)
class Scenario:
    """Everything `adjudicate` needs for one claim, with the insuring region's policies."""

    claim: Claim
    patient: Patient
    institution: Institution
    formulary: Formulary
    plans: tuple[Plan, ...]
    waterfall: tuple[PlanKind, ...] = DEFAULT_WATERFALL
    personal_account_covers: tuple[Part, ...] = DEFAULT_PERSONAL_ACCOUNT_COVERS

    def adjudicate(self) -> Adjudication:
        return adjudicate(
            self.claim,
            patient=self.patient,
            institution=self.institution,
            formulary=self.formulary,
            plans=self.plans,
            waterfall=self.waterfall,
            personal_account_covers=self.personal_account_covers,
        )


# --- reading -------------------------------------------------------------------------------


def loads(text: str) -> object:
    """Parse JSON text, refusing duplicate keys (a silent last-one-wins would hide a mistake)."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise InputError(key, "key appears twice", ErrorCode.DUPLICATE)
            result[key] = value
        return result

    try:
        return json.loads(text, object_pairs_hook=unique)
    except json.JSONDecodeError as error:
        raise InputError("", f"not valid JSON: {error}") from None


class Reader:
    """A JSON object being read: tracks which keys were used so that the rest can be refused."""

    def __init__(self, value: object, path: str) -> None:
        if not isinstance(value, dict):
            raise InputError(path, "must be an object")
        self.value: dict[str, object] = value
        self.path = path
        self.used = {COMMENT}

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def required(self, key: str) -> object:
        self.used.add(key)
        if key not in self.value:
            raise InputError(self.at(key), "is required", ErrorCode.MISSING_FIELD)
        return self.value[key]

    def optional(self, key: str) -> object | None:
        self.used.add(key)
        return self.value.get(key)

    def has(self, key: str) -> bool:
        return key in self.value

    def done(self) -> None:
        for key in self.value:
            if key not in self.used:
                raise InputError(self.at(key), "unknown key", ErrorCode.UNKNOWN_FIELD)

    def text(self, key: str) -> str:
        return read_text(self.required(key), self.at(key))

    def optional_text(self, key: str) -> str | None:
        value = self.optional(key)
        return None if value is None else read_text(value, self.at(key))

    def yuan(self, key: str) -> Fen:
        return read_yuan(self.required(key), self.at(key))

    def optional_yuan(self, key: str) -> Fen | None:
        value = self.optional(key)
        return None if value is None else read_yuan(value, self.at(key))

    def enum(self, key: str, kind: type[E]) -> E:
        return read_enum(self.required(key), self.at(key), kind)

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.optional(key)
        return () if value is None else tuple(read_text(v, p) for v, p in read_items(value, self.at(key)))

    def boolean(self, key: str) -> bool:
        value = self.optional(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise InputError(self.at(key), "must be true or false")
        return value

    def count(self, key: str, *, minimum: int, default: int | None = None) -> int:
        value = self.required(key) if default is None else self.optional(key)
        return default if value is None and default is not None else read_integer(value, self.at(key), minimum)


def read_items(value: object, path: str) -> Iterator[tuple[object, str]]:
    if not isinstance(value, list):
        raise InputError(path, "must be a list")
    for index, item in enumerate(value):
        yield item, f"{path}[{index}]"


def read_text(value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(path, "must be a non-empty string")
    return value


def read_integer(value: object, path: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(path, "must be an integer", ErrorCode.INVALID_QUANTITY)
    if value < minimum:
        raise InputError(path, f"must be at least {minimum}, not {value}", ErrorCode.INVALID_QUANTITY)
    return value


def read_yuan(value: object, path: str) -> Fen:
    if not isinstance(value, str):
        raise InputError(path, 'must be a decimal string in yuan, such as "1234.50"', ErrorCode.INVALID_AMOUNT)
    try:
        return parse_yuan(value)
    except ValueError as error:
        raise InputError(path, str(error), ErrorCode.INVALID_AMOUNT) from None


def read_ratio(value: object, path: str) -> Ratio:
    if not isinstance(value, str):
        raise InputError(path, 'must be a decimal string between 0 and 1, such as "0.85"', ErrorCode.INVALID_RATIO)
    try:
        return parse_ratio(value)
    except ValueError as error:
        raise InputError(path, str(error), ErrorCode.INVALID_RATIO) from None


def read_enum(value: object, path: str, kind: type[E]) -> E:
    for member in kind:
        if member.value == value:
            return member
    allowed = ", ".join(member.value for member in kind)
    raise InputError(path, f"{value!r} is not one of: {allowed}")


def _by_level(value: object, path: str, read: Callable[[object, str], T]) -> ByLevel[T]:
    reader = Reader(value, path)
    result: dict[int, T] = {}
    for key in reader.value:
        if key == COMMENT:
            continue
        if key not in {str(level) for level in LEVELS}:
            raise InputError(reader.at(key), "an institution level is 1, 2 or 3", ErrorCode.UNKNOWN_FIELD)
        result[int(key)] = read(reader.value[key], reader.at(key))
    if not result:
        raise InputError(path, "names no level", ErrorCode.MISSING_FIELD)
    return ByLevel(MappingProxyType(result))


def read_institution(value: object, path: str = "institution") -> Institution:
    reader = Reader(value, path)
    kind = reader.enum("kind", InstitutionKind)
    level_default = 1 if kind is InstitutionKind.PHARMACY else None
    level = reader.count("level", minimum=1, default=level_default)
    if level not in LEVELS:
        raise InputError(reader.at("level"), "an institution level is 1, 2 or 3")
    institution = Institution(code=reader.text("code"), kind=kind, level=level, region=reader.text("region"))
    reader.done()
    return institution


def _accumulator(value: object, path: str) -> Accumulator:
    reader = Reader(value, path)
    accumulator = Accumulator(
        deductible_met=reader.optional_yuan("deductible_met") or 0,
        base_spent=reader.optional_yuan("base_spent") or 0,
        paid=reader.optional_yuan("paid") or 0,
        claims=reader.count("claims", minimum=0, default=0),
    )
    reader.done()
    return accumulator


def read_patient(value: object, path: str = "patient") -> Patient:
    reader = Reader(value, path)
    accumulators: dict[str, Accumulator] = {}
    raw = reader.optional("accumulators")
    if raw is not None:
        plans = Reader(raw, reader.at("accumulators"))
        for plan_id in plans.value:
            if plan_id != COMMENT:
                accumulators[plan_id] = _accumulator(plans.required(plan_id), plans.at(plan_id))
    units: dict[str, int] = {}
    raw = reader.optional("units_received")
    if raw is not None:
        drugs = Reader(raw, reader.at("units_received"))
        for drug in drugs.value:
            if drug != COMMENT:
                units[drug] = read_integer(drugs.required(drug), drugs.at(drug), 0)
    patient = Patient(
        insurance_type=reader.enum("insurance_type", InsuranceType),
        region=reader.text("region"),
        memberships=frozenset(reader.texts("memberships")),
        flags=frozenset(reader.texts("flags")),
        accumulators=MappingProxyType(accumulators),
        units_received=MappingProxyType(units),
        consents=frozenset(reader.texts("consents")),
        personal_account=reader.optional_yuan("personal_account"),
    )
    reader.done()
    return patient


def _basic_entry(value: object, path: str) -> BasicEntry:
    reader = Reader(value, path)
    visits = reader.optional("restricted_visits")
    share = reader.optional("self_pay_first_ratio")
    entry = BasicEntry(
        drug=reader.text("drug"),
        category=reader.enum("category", Category),
        payment_standard=reader.optional_yuan("payment_standard"),
        self_pay_first_ratio=None if share is None else read_ratio(share, reader.at("self_pay_first_ratio")),
        negotiated=reader.boolean("negotiated"),
        dual_channel=reader.boolean("dual_channel"),
        restricted_diagnoses=reader.texts("restricted_diagnoses"),
        restricted_visits=frozenset(
            ()
            if visits is None
            else (read_enum(v, p, Visit) for v, p in read_items(visits, reader.at("restricted_visits")))
        ),
        standard_per=read_enum(reader.optional("standard_per") or "package", reader.at("standard_per"), StandardPer),
        package_units=_package_units(reader),
    )
    reader.done()
    if entry.standard_per is StandardPer.SMALLEST and entry.package_units is None:
        raise InputError(
            reader.at("package_units"),
            "is required with a payment standard per smallest unit",
            ErrorCode.MISSING_FIELD,
        )
    return entry


def _package_units(reader: Reader) -> int | None:
    value = reader.optional("package_units")
    return None if value is None else read_integer(value, reader.at("package_units"), 1)


def _commercial_entry(value: object, path: str) -> CommercialEntry:
    reader = Reader(value, path)
    entry = CommercialEntry(
        drug=reader.text("drug"),
        insurer=reader.text("insurer"),
        settlement_price=reader.yuan("settlement_price"),
        package_units=_package_units(reader),
    )
    reader.done()
    return entry


def read_formulary(value: object, path: str = "formulary") -> Formulary:
    """The basic formulary and the commercial catalogue; a drug (or drug and insurer) at most once."""
    reader = Reader(value, path)
    basic: dict[str, BasicEntry] = {}
    raw = reader.optional("basic")
    for item, item_path in read_items([] if raw is None else raw, reader.at("basic")):
        entry = _basic_entry(item, item_path)
        if entry.drug in basic:
            raise InputError(f"{item_path}.drug", f"{entry.drug} is listed twice", ErrorCode.DUPLICATE)
        basic[entry.drug] = entry
    commercial: dict[tuple[str, str], CommercialEntry] = {}
    raw = reader.optional("commercial")
    for item, item_path in read_items([] if raw is None else raw, reader.at("commercial")):
        listed = _commercial_entry(item, item_path)
        key = (listed.drug, listed.insurer)
        if key in commercial:
            raise InputError(
                f"{item_path}.drug", f"{listed.drug} is listed twice for {listed.insurer}", ErrorCode.DUPLICATE
            )
        commercial[key] = listed
    share = reader.optional("self_pay_first_ratio")
    formulary = Formulary(
        basic=MappingProxyType(basic),
        self_pay_first_ratio=0 if share is None else read_ratio(share, reader.at("self_pay_first_ratio")),
        commercial=MappingProxyType(commercial),
    )
    reader.done()
    return formulary


def _criteria(value: object, path: str, *, conditions: bool) -> Criteria:
    """An `eligible` object, or with `conditions` a variant's `when` (adds levels, outside_region)."""
    reader = Reader(value, path)
    levels: frozenset[int] = frozenset()
    outside_region: bool | None = None
    if conditions:
        raw_levels = reader.optional("levels")
        if raw_levels is not None:
            levels = frozenset(read_integer(v, p, 1) for v, p in read_items(raw_levels, reader.at("levels")))
        raw_outside = reader.optional("outside_region")
        if raw_outside is not None:
            if not isinstance(raw_outside, bool):
                raise InputError(reader.at("outside_region"), "must be true or false")
            outside_region = raw_outside
    raw_types = reader.optional("insurance_types")
    criteria = Criteria(
        insurance_types=frozenset(
            ()
            if raw_types is None
            else (read_enum(v, p, InsuranceType) for v, p in read_items(raw_types, reader.at("insurance_types")))
        ),
        regions=frozenset(reader.texts("regions")),
        memberships=frozenset(reader.texts("memberships")),
        flags=frozenset(reader.texts("flags")),
        diagnoses=reader.texts("diagnoses"),
        drugs=frozenset(reader.texts("drugs")),
        visits=frozenset(_visits(reader.optional("visits"), reader.at("visits"))),
        levels=levels,
        outside_region=outside_region,
    )
    reader.done()
    return criteria


def _visits(value: object | None, path: str) -> tuple[Visit, ...]:
    return () if value is None else tuple(read_enum(v, p, Visit) for v, p in read_items(value, path))


def _requires_authorization(value: object | None, path: str) -> bool | frozenset[str]:
    """A list of drugs, or true for every drug the plan covers (false, or an empty list: none)."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    return frozenset(read_text(v, p) for v, p in read_items(value, path))


def _base_term(value: object, path: str) -> BaseTerm:
    if isinstance(value, str):
        return BaseTerm(_part(value, path))
    reader = Reader(value, path)
    term = BaseTerm(
        _part(reader.required("part"), reader.at("part")), read_ratio(reader.required("weight"), reader.at("weight"))
    )
    reader.done()
    return term


def _part(value: object, path: str, code: ErrorCode = ErrorCode.INVALID_FIELD) -> Part:
    names = {part.key: part for part in Part}
    if not isinstance(value, str) or value not in names:
        raise InputError(path, f"{value!r} is not one of: {', '.join(names)}", code)
    return names[value]


def _level_amount(value: object, path: str) -> Fen | ByLevel[Fen]:
    if isinstance(value, dict):
        reader = Reader(value, path)
        amounts = _by_level(reader.required("by_level"), reader.at("by_level"), read_yuan)
        reader.done()
        return amounts
    return read_yuan(value, path)


def _deductible(value: object, path: str) -> Deductible:
    reader = Reader(value, path)
    per = read_enum(reader.optional("per") or "year", reader.at("per"), DeductiblePer)
    subsequent = reader.optional("subsequent")
    if subsequent is not None and per is not DeductiblePer.CLAIM:
        raise InputError(reader.at("subsequent"), "only a per-claim deductible has a subsequent amount")
    deductible = Deductible(
        amount=_level_amount(reader.required("amount"), reader.at("amount")),
        per=per,
        subsequent=None if subsequent is None else _level_amount(subsequent, reader.at("subsequent")),
    )
    reader.done()
    return deductible


def _bands(value: object, path: str) -> Bands:
    bands: list[Band] = []
    for item, item_path in read_items(value, path):
        reader = Reader(item, item_path)
        upto = reader.required("upto")
        band = Band(
            upto=None if upto is None else read_yuan(upto, reader.at("upto")),
            rate=read_ratio(reader.required("rate"), reader.at("rate")),
        )
        reader.done()
        if bands and (bands[-1].upto is None or (band.upto is not None and band.upto <= bands[-1].upto)):
            raise InputError(f"{item_path}.upto", "bands must rise, and only the last may be open (null)")
        bands.append(band)
    if not bands:
        raise InputError(path, "names no band", ErrorCode.MISSING_FIELD)
    return Bands(tuple(bands))


def _rate_or_bands(value: object, path: str) -> Rate | Bands:
    """A level's value: a rate ("0.85"), a list of bands, or {"rate": ...} / {"bands": [...]}."""
    if isinstance(value, str):
        return Rate(read_ratio(value, path))
    if isinstance(value, list):
        return _bands(value, path)
    rule = _ratio_rule(value, path, levels=False)
    assert not isinstance(rule, ByLevel)
    return rule


def _ratio_rule(value: object, path: str, *, levels: bool = True) -> RatioRule:
    reader = Reader(value, path)
    forms = [key for key in ("rate", "bands", "by_level") if reader.has(key)]
    if len(forms) != 1 or (forms[0] == "by_level" and not levels):
        allowed = "rate, bands or by_level" if levels else "rate or bands"
        raise InputError(path, f"must state exactly one of {allowed}")
    form = forms[0]
    rule: RatioRule
    if form == "rate":
        rule = Rate(read_ratio(reader.required("rate"), reader.at("rate")))
    elif form == "bands":
        rule = _bands(reader.required("bands"), reader.at("bands"))
    else:
        rule = _by_level(reader.required("by_level"), reader.at("by_level"), _rate_or_bands)
    reader.done()
    return rule


def _caps(value: object, path: str) -> Caps:
    reader = Reader(value, path)
    caps = Caps(claim=reader.optional_yuan("claim"), annual=reader.optional_yuan("annual"))
    reader.done()
    return caps


def _variant(value: object, path: str) -> Variant:
    reader = Reader(value, path)
    deductible, ratio, caps = (reader.optional(key) for key in ("deductible", "ratio", "caps"))
    variant = Variant(
        when=_criteria(reader.required("when"), reader.at("when"), conditions=True),
        deductible=None if deductible is None else _deductible(deductible, reader.at("deductible")),
        ratio=None if ratio is None else _ratio_rule(ratio, reader.at("ratio")),
        caps=None if caps is None else _caps(caps, reader.at("caps")),
    )
    reader.done()
    return variant


def _in_kind(value: object, path: str) -> InKind:
    reader = Reader(value, path)
    programme = InKind(
        drug=reader.text("drug"),
        after_units=reader.count("after_units", minimum=0),
        free_units=reader.count("free_units", minimum=1),
    )
    reader.done()
    return programme


def read_plan(value: object, path: str) -> Plan:
    """One plan. A donation programme (`in_kind`) states no base, deductible, ratio or caps."""
    reader = Reader(value, path)
    plan_id, payer, kind = reader.text("id"), reader.text("payer"), reader.enum("kind", PlanKind)
    raw_eligible = reader.optional("eligible")
    eligible = ANYONE if raw_eligible is None else _criteria(raw_eligible, reader.at("eligible"), conditions=False)
    requires_authorization = _requires_authorization(
        reader.optional("requires_authorization"), reader.at("requires_authorization")
    )
    requires_consent = reader.boolean("requires_consent")
    raw_in_kind = reader.optional("in_kind")
    if raw_in_kind is not None:
        for key in ("base", "only_catalogue", "deductible", "ratio", "caps", "variants"):
            if reader.has(key):
                raise InputError(reader.at(key), "a donation programme (in_kind) pays in units, not on a base")
        plan = Plan(
            plan_id,
            payer,
            kind,
            eligible=eligible,
            in_kind=_in_kind(raw_in_kind, reader.at("in_kind")),
            requires_authorization=requires_authorization,
            requires_consent=requires_consent,
        )
        reader.done()
        return plan
    base = tuple(_base_term(v, p) for v, p in read_items(reader.required("base"), reader.at("base")))
    if not base:
        raise InputError(reader.at("base"), "names no part", ErrorCode.MISSING_FIELD)
    if len({term.part for term in base}) != len(base):
        raise InputError(reader.at("base"), "names a part twice", ErrorCode.DUPLICATE)
    only = reader.optional("only_catalogue")
    deductible, caps, variants = (reader.optional(key) for key in ("deductible", "caps", "variants"))
    plan = Plan(
        plan_id,
        payer,
        kind,
        eligible=eligible,
        base=base,
        only_catalogue=None if only is None else read_enum(only, reader.at("only_catalogue"), Catalogue),
        deductible=None if deductible is None else _deductible(deductible, reader.at("deductible")),
        ratio=_ratio_rule(reader.required("ratio"), reader.at("ratio")),
        caps=NO_CAPS if caps is None else _caps(caps, reader.at("caps")),
        variants=()
        if variants is None
        else tuple(_variant(v, p) for v, p in read_items(variants, reader.at("variants"))),
        requires_authorization=requires_authorization,
        requires_consent=requires_consent,
    )
    reader.done()
    return plan


def read_plans(value: object, path: str = "plans") -> tuple[Plan, ...]:
    plans: list[Plan] = []
    for item, item_path in read_items(value, path):
        plan = read_plan(item, item_path)
        if any(other.id == plan.id for other in plans):
            raise InputError(f"{item_path}.id", f"plan {plan.id} is listed twice", ErrorCode.DUPLICATE)
        plans.append(plan)
    return tuple(plans)


def _paid_before(value: object | None, path: str) -> tuple[Fen, Fen, Fen, Fen]:
    """Amounts by part already paid on a line; parts not named were not paid."""
    amounts = [0, 0, 0, 0]
    if value is None:
        return (0, 0, 0, 0)
    reader = Reader(value, path)
    for key in reader.value:
        if key != COMMENT:
            amounts[_part(key, reader.at(key), ErrorCode.UNKNOWN_FIELD)] = read_yuan(reader.value[key], reader.at(key))
    return (amounts[0], amounts[1], amounts[2], amounts[3])


def _line(value: object, path: str) -> ClaimLine:
    reader = Reader(value, path)
    line = ClaimLine(
        drug=reader.text("drug"),
        quantity=reader.count("quantity", minimum=1),
        unit_price=reader.yuan("unit_price"),
        trace_codes=reader.texts("trace_codes"),
        prescription_id=reader.optional_text("prescription_id"),
        split=reader.boolean("split"),
        authorizations=frozenset(reader.texts("authorizations")),
        paid_before=_paid_before(reader.optional("paid_before"), reader.at("paid_before")),
    )
    reader.done()
    return line


def read_claim(value: object, service_date: date, path: str = "claim") -> Claim:
    reader = Reader(value, path)
    lines = tuple(_line(v, p) for v, p in read_items(reader.required("lines"), reader.at("lines")))
    if not lines:
        raise InputError(reader.at("lines"), "a claim has at least one line", ErrorCode.MISSING_FIELD)
    claim = Claim(
        serial=reader.text("serial"),
        service_date=service_date,
        visit=reader.enum("visit", Visit),
        diagnoses=reader.texts("diagnoses"),
        lines=lines,
        drg_group=reader.optional_text("drg_group"),
    )
    reader.done()
    return claim


def read_date(value: object, path: str) -> date:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise InputError(path, "must be a date such as 2026-03-15")


def read_waterfall(value: object | None, path: str = "waterfall") -> tuple[PlanKind, ...]:
    """A region's order of plan kinds: all six, each once (absent: the default order)."""
    if value is None:
        return DEFAULT_WATERFALL
    order = tuple(read_enum(v, p, PlanKind) for v, p in read_items(value, path))
    check_waterfall(order, path)
    return order


def read_personal_account_covers(value: object | None, path: str = "personal_account_covers") -> tuple[Part, ...]:
    """The parts a personal account pays (absent: in_scope and self_pay_first; empty: none)."""
    if value is None:
        return DEFAULT_PERSONAL_ACCOUNT_COVERS
    parts: list[Part] = []
    for item, item_path in read_items(value, path):
        part = _part(item, item_path)
        if part in parts:
            raise InputError(item_path, f"{part.key} is named twice", ErrorCode.DUPLICATE)
        parts.append(part)
    return tuple(parts)


def read_scenario(value: object) -> Scenario:
    """A whole scenario (SCENARIO.md's Input), checked field by field."""
    reader = Reader(value, "")
    service_date = read_date(reader.required("service_date"), "service_date")
    institution = read_institution(reader.required("institution"))
    scenario = Scenario(
        institution=institution,
        patient=read_patient(reader.required("patient")),
        formulary=read_formulary(reader.required("formulary")),
        plans=read_plans(reader.required("plans")),
        claim=read_claim(reader.required("claim"), service_date),
        waterfall=read_waterfall(reader.optional("waterfall")),
        personal_account_covers=read_personal_account_covers(reader.optional("personal_account_covers")),
    )
    reader.done()
    if (scenario.claim.visit is Visit.PHARMACY) != (institution.kind is InstitutionKind.PHARMACY):
        raise InputError(
            "claim.visit", "a pharmacy's claims, and only a pharmacy's, have visit pharmacy", ErrorCode.VISIT_MISMATCH
        )
    return scenario


# --- writing -------------------------------------------------------------------------------


def _reasons(reasons: tuple[Reason, ...]) -> list[dict[str, str]]:
    return [{"code": reason.code.value, "message": reason.message} for reason in reasons]


def _parts(parts: tuple[Fen, Fen, Fen, Fen]) -> dict[str, str]:
    return {part.key: format_yuan(parts[part]) for part in Part}


def _amounts(amounts: Mapping[str, Fen]) -> dict[str, str]:
    return {key: format_yuan(amount) for key, amount in amounts.items()}


def render(result: Adjudication) -> dict[str, object]:
    """The output object of SCENARIO.md."""
    return {
        "total": format_yuan(result.total),
        "paid_before": format_yuan(result.paid_before),
        "parts": _parts(result.parts),
        "payers": [
            {
                "plan": payer.plan,
                "payer": payer.payer,
                "kind": payer.kind.value,
                "amount": format_yuan(payer.amount),
                "base": format_yuan(payer.base),
                "deductible_applied": format_yuan(payer.deductible_applied),
                "reasons": _reasons(payer.reasons),
            }
            for payer in result.payers
        ],
        "patient": format_yuan(result.patient),
        "personal_account": {
            "paid": format_yuan(result.personal_account_paid),
            "balance": format_yuan(result.personal_account_balance),
        },
        "cash": format_yuan(result.cash),
        "lines": [
            {
                "index": line.index,
                "drug": line.drug,
                "quantity": line.quantity,
                "donated_units": line.donated_units,
                "total": format_yuan(line.total),
                "parts": _parts(line.parts),
                "paid": _amounts(line.paid),
                "patient": format_yuan(line.patient),
                "personal_account": format_yuan(line.personal_account),
                "reasons": _reasons(line.reasons),
            }
            for line in result.lines
        ],
        "rebates": [
            {
                "line": rebate.line,
                "drug": rebate.drug,
                "insurer": rebate.insurer,
                "amount": None if rebate.amount is None else format_yuan(rebate.amount),
            }
            for rebate in result.rebates
        ],
        "accumulators": {
            plan_id: {
                "deductible_met": format_yuan(accumulator.deductible_met),
                "base_spent": format_yuan(accumulator.base_spent),
                "paid": format_yuan(accumulator.paid),
                "claims": accumulator.claims,
            }
            for plan_id, accumulator in result.accumulators.items()
        },
        "units_received": dict(result.units_received),
    }
