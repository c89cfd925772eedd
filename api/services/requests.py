"""What a cashier submits, checked field by field, and its canonical form.

"The same request" means the same canonical JSON: keys sorted, no whitespace, amounts in fen,
so that "1600.0" and "1600.00" are one request and any change of substance is another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from adjudication import Claim, ClaimLine, ErrorCode, Visit
from adjudication.money import parse_yuan
from api.errors import ServiceError


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


def _required_text(value: str, field: str) -> str:
    value = value.strip()
    if not value:
        raise ServiceError(ErrorCode.MISSING_FIELD, "must not be empty", field)
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
    field: str = "claim",
) -> ClaimRequest:
    """Check a submitted claim: every refusal names its field (`claim.lines[1].quantity`)."""
    if not lines:
        raise ServiceError(ErrorCode.MISSING_FIELD, "a claim has at least one line", f"{field}.lines")
    checked: list[ClaimLine] = []
    for index, line in enumerate(lines):
        at = f"{field}.lines[{index}]"
        if line.quantity <= 0:
            raise ServiceError(
                ErrorCode.INVALID_QUANTITY,
                f"quantity must be a positive integer, not {line.quantity}",
                f"{at}.quantity",
            )
        try:
            unit_price = parse_yuan(line.unit_price)
        except ValueError as error:
            raise ServiceError(ErrorCode.INVALID_AMOUNT, str(error), f"{at}.unitPrice") from None
        checked.append(
            ClaimLine(
                drug=_required_text(line.drug, f"{at}.drug"),
                quantity=line.quantity,
                unit_price=unit_price,
                trace_codes=tuple(line.trace_codes),
                prescription_id=line.prescription_id,
                split=line.split,
            )
        )
    return ClaimRequest(
        institution=_required_text(institution, f"{field}.institution"),
        serial=_required_text(serial, f"{field}.serial"),
        person=_required_text(person, f"{field}.person"),
        service_date=service_date,
        visit=visit,
        diagnoses=tuple(d.strip().upper() for d in diagnoses if d.strip()),
        lines=tuple(checked),
        drg_group=drg_group,
        prescribing_hospital=prescribing_hospital,
    )
