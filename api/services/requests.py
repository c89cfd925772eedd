"""What a cashier submits, checked field by field, its canonical form, and what it names.

"The same request" means the same canonical JSON: keys sorted, no whitespace, amounts in fen,
so that "1600.0" and "1600.00" are one request and any change of substance is another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import InstrumentedAttribute

from adjudication import Claim, ClaimLine, ErrorCode, Institution, InstitutionKind, Visit
from adjudication.money import parse_yuan
from api.db import models
from api.db.references import ClaimReferences, FormularyVersion, InsuredPerson
from api.errors import ServiceError

DIAGNOSIS_CHARS = 16
"""An ICD-10 code with its extensions is at most 8 characters; twice that is a generous bound."""
TRACE_CODE_CHARS = 40
"""Traceability codes are 20 digits; a longer string is refused as malformed without being echoed whole."""
MAX_QUANTITY = 100_000
"""Units on one line: far beyond any dispensing, far below the columns' range."""
MAX_UNIT_PRICE_FEN = 100_000_000_00
"""100 million yuan per unit: no drug costs more, and totals stay far inside 64-bit fen."""


@dataclass(frozen=True, slots=True)
class ClaimLimits:
    """How much one claim may carry (settings: SETTLE_MAX_CLAIM_LINES, SETTLE_MAX_CLAIM_DIAGNOSES)."""

    lines: int = 200
    diagnoses: int = 20


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    institution: str
    serial: str
    person: str
    service_date: date
    visit: Visit
    diagnoses: tuple[str, ...]
    lines: tuple[ClaimLine, ...]
    drg_group: str | None = None
    prescribing_hospital: str | None = None

    @property
    def year(self) -> int:
        """The plan year: the calendar year of the service date (a date in Asia/Shanghai)."""
        return self.service_date.year

    def canonical_json(self) -> str:
        body = {
            "institution": self.institution,
            "serial": self.serial,
            "person": self.person,
            "service_date": self.service_date.isoformat(),
            "visit": self.visit.value,
            "diagnoses": list(self.diagnoses),
            "drg_group": self.drg_group,
            "prescribing_hospital": self.prescribing_hospital,
            "lines": [
                {
                    "drug": line.drug,
                    "quantity": line.quantity,
                    "unit_price_fen": line.unit_price,
                    "trace_codes": list(line.trace_codes),
                    "prescription_id": line.prescription_id,
                    "split": line.split,
                }
                for line in self.lines
            ],
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def digest(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def claim(self) -> Claim:
        return Claim(
            serial=self.serial,
            service_date=self.service_date,
            visit=self.visit,
            diagnoses=self.diagnoses,
            lines=self.lines,
            drg_group=self.drg_group,
        )


@dataclass(frozen=True, slots=True)
class LineInput:
    drug: str
    quantity: int
    unit_price: str
    trace_codes: Sequence[str] = ()
    prescription_id: str | None = None
    split: bool = False


def text(value: str, field: str, width: int | InstrumentedAttribute[str] | InstrumentedAttribute[str | None]) -> str:
    """A required text, trimmed, that fits its column (`width` is the column, or its width)."""
    value = value.strip()
    if not value:
        raise ServiceError(ErrorCode.MISSING_FIELD, "must not be empty", field)
    return fits(value, field, width)


def fits(value: str, field: str, width: int | InstrumentedAttribute[str] | InstrumentedAttribute[str | None]) -> str:
    """`value` unchanged, or refused when it is longer than its column holds."""
    limit = width if isinstance(width, int) else width.property.columns[0].type.length
    if limit is not None and len(value) > limit:
        raise ServiceError(ErrorCode.INVALID_FIELD, f"at most {limit} characters, not {len(value)}", field)
    return value


def claim_request(
    *,
    institution: str,
    serial: str,
    person: str,
    service_date: date,
    visit: Visit,
    diagnoses: Sequence[str],
    lines: Sequence[LineInput],
    drg_group: str | None = None,
    prescribing_hospital: str | None = None,
    limits: ClaimLimits = ClaimLimits(),
    field: str = "claim",
) -> ClaimRequest:
    """Check a submitted claim: every refusal names its field (`claim.lines[1].quantity`), and
    every text fits the column it is kept in.
    """
    if not lines:
        raise ServiceError(ErrorCode.MISSING_FIELD, "a claim has at least one line", f"{field}.lines")
    if len(lines) > limits.lines:
        raise ServiceError(
            ErrorCode.INVALID_FIELD, f"a claim has at most {limits.lines} lines, not {len(lines)}", f"{field}.lines"
        )
    if len(diagnoses) > limits.diagnoses:
        raise ServiceError(
            ErrorCode.INVALID_FIELD,
            f"a claim has at most {limits.diagnoses} diagnoses, not {len(diagnoses)}",
            f"{field}.diagnoses",
        )
    checked = tuple(_line(line, f"{field}.lines[{index}]") for index, line in enumerate(lines))
    return ClaimRequest(
        institution=text(institution, f"{field}.institution", models.Settlement.institution_code),
        serial=text(serial, f"{field}.serial", models.Settlement.serial),
        person=text(person, f"{field}.person", models.Person.psn_no),
        service_date=service_date,
        visit=_storable_visit(visit, f"{field}.visit"),
        diagnoses=tuple(
            fits(d.strip().upper(), f"{field}.diagnoses[{i}]", DIAGNOSIS_CHARS)
            for i, d in enumerate(diagnoses)
            if d.strip()
        ),
        lines=checked,
        drg_group=None if drg_group is None else fits(drg_group, f"{field}.drgGroup", models.Settlement.drg_group),
        prescribing_hospital=(
            None
            if prescribing_hospital is None
            else fits(prescribing_hospital, f"{field}.prescribingHospital", models.Settlement.prescribing_hospital)
        ),
    )


def _storable_visit(visit: Visit, field: str) -> Visit:
    """A visit type the settlements table can hold (outpatient_chronic needs a wider column)."""
    limit = models.Settlement.visit.property.columns[0].type.length
    if limit is not None and len(visit.value) > limit:
        raise ServiceError(ErrorCode.INVALID_FIELD, f"the service cannot record {visit.value} visits yet", field)
    return visit


def _line(line: LineInput, at: str) -> ClaimLine:
    if not 0 < line.quantity <= MAX_QUANTITY:
        raise ServiceError(
            ErrorCode.INVALID_QUANTITY,
            f"quantity must be a positive integer of at most {MAX_QUANTITY}, not {line.quantity}",
            f"{at}.quantity",
        )
    try:
        unit_price = parse_yuan(line.unit_price)
    except ValueError as error:
        raise ServiceError(ErrorCode.INVALID_AMOUNT, str(error), f"{at}.unitPrice") from None
    if unit_price > MAX_UNIT_PRICE_FEN:
        raise ServiceError(ErrorCode.INVALID_AMOUNT, "a unit price above 100,000,000.00 yuan", f"{at}.unitPrice")
    if len(line.trace_codes) > MAX_QUANTITY:
        raise ServiceError(ErrorCode.INVALID_FIELD, f"at most {MAX_QUANTITY} traceability codes", f"{at}.traceCodes")
    return ClaimLine(
        drug=text(line.drug, f"{at}.drug", models.SettlementLine.drug_code),
        quantity=line.quantity,
        unit_price=unit_price,
        trace_codes=tuple(fits(c, f"{at}.traceCodes[{i}]", TRACE_CODE_CHARS) for i, c in enumerate(line.trace_codes)),
        prescription_id=(
            None
            if line.prescription_id is None
            else fits(line.prescription_id, f"{at}.prescriptionId", models.SettlementLine.prescription_id)
        ),
        split=line.split,
    )


def named_in(request: ClaimRequest, found: ClaimReferences) -> tuple[Institution, InsuredPerson, FormularyVersion]:
    """What a claim names, found: its institution, person and formulary in force; each missing
    one refused in the order a cashier would fix them (then the plans' dates, the visit's kind).
    """
    if found.institution is None:
        raise ServiceError(ErrorCode.NOT_FOUND, f"no institution {request.institution}", "claim.institution")
    if found.person is None:
        raise ServiceError(ErrorCode.NOT_FOUND, f"no insured person {request.person}", "claim.person")
    for index, line in enumerate(request.lines):
        if line.drug not in found.drugs:
            raise ServiceError(
                ErrorCode.UNKNOWN_DRUG, f"no drug {line.drug} is registered", f"claim.lines[{index}].drug"
            )
    region, on = found.institution.region, request.service_date
    if found.formulary is None:
        _refuse_before_rules(found.formulary_from, "formulary", region, request)
        raise ServiceError(
            ErrorCode.NO_FORMULARY, f"no formulary of region {region} is in force on {on}", "claim.serviceDate"
        )
    if not found.plans:
        _refuse_before_rules(found.plans_from, "plan", found.person.patient.region, request)
    if request.visit is Visit.PHARMACY and found.institution.kind is not InstitutionKind.PHARMACY:
        raise ServiceError(ErrorCode.VISIT_MISMATCH, "only a pharmacy submits pharmacy claims", "claim.visit")
    return found.institution, found.person, found.formulary


def _refuse_before_rules(earliest: object, what: str, region: str, request: ClaimRequest) -> None:
    """No version is in force on the service date: if the region has versions at all, they all
    begin after it, and the claim predates every rule it could be adjudicated on. (The floor is
    the region's own: the formulary's of the institution's region, the plans' of the person's.)
    A region with no versions at all is not a question of date (NO_FORMULARY, NOT_ELIGIBLE).
    """
    if earliest is not None:
        raise ServiceError(
            ErrorCode.SERVICE_DATE_BEFORE_RULES,
            f"the service date {request.service_date.isoformat()} is before the first {what} of region {region}, "
            f"in force from {earliest}: check the date; no rule held here applies to a claim that old",
            "claim.serviceDate",
        )
