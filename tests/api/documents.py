"""Reference data the service tests load, and claims built on it.

The plans and formulary are those of SCENARIO.md's worked example, so that the first claim
below splits exactly as that page computes by hand: basic 960.00, serious illness 0.00 (its
deductible absorbs the rest), commercial 0.00 (not in INS-A's catalogue), mutual aid 1020.00,
patient 1220.00.
"""

from __future__ import annotations

import itertools
from typing import Any

REGION = "310100"
HOSPITAL = "H310003"  # level 3
SMALL_HOSPITAL = "H310001"  # level 1
PHARMACY = "P310001"
MEMBER = "P0001"  # employee, member of MA-UNION, low income
RESIDENT = "P0002"
EMPLOYEE = "P0003"  # no memberships, no flags
ELSEWHERE = "P0004"  # insured in a region with no plans loaded
TRASTUZUMAB = "XL01XC00001"
GENERIC_A = "XL01XE00004"
CAR_T = "XL01XX00002"
OWN_SHARE = "XL01XX00003"

REFERENCE_DATA: dict[str, Any] = {
    "region": REGION,
    "effective_from": "2026-01-01",
    "payers": [
        {"code": "NHSA-310100", "name": "Shanghai medical insurance fund", "kind": "fund", "region": REGION},
        {"code": "INS-A", "name": "Insurer A", "kind": "insurer"},
        {"code": "MA-UNION", "name": "Trade union mutual aid", "kind": "mutual_aid"},
        {"code": "CHARITY-X", "name": "Patient assistance programme X", "kind": "charity"},
    ],
    "institutions": [
        {"code": HOSPITAL, "name": "Level-3 hospital", "kind": "hospital", "level": 3, "region": REGION},
        {"code": SMALL_HOSPITAL, "name": "Community hospital", "kind": "hospital", "level": 1, "region": REGION},
        {"code": PHARMACY, "name": "Dual-channel pharmacy", "kind": "pharmacy", "region": REGION},
    ],
    "drugs": [
        {"code": TRASTUZUMAB, "generic_name": "trastuzumab", "package_units": 1, "trace_prefixes": ["8301234"]},
        {"code": GENERIC_A, "generic_name": "imatinib", "package_units": 60, "trace_prefixes": ["8305678"]},
        {"code": CAR_T, "generic_name": "axicabtagene ciloleucel", "package_units": 1, "trace_prefixes": ["8309999"]},
        {"code": OWN_SHARE, "generic_name": "osimertinib", "package_units": 30, "trace_prefixes": ["8304321"]},
    ],
    "people": [
        {
            "psn_no": MEMBER,
            "id_number": "310101198001010012",
            "name": "Zhang Wei",
            "insurance_type": "employee",
            "region": REGION,
            "memberships": ["MA-UNION"],
            "flags": ["low_income"],
        },
        {
            "psn_no": RESIDENT,
            "id_number": "310101199002020024",
            "name": "Li Na",
            "insurance_type": "resident",
            "region": REGION,
        },
        {
            "psn_no": EMPLOYEE,
            "id_number": "310101197503030036",
            "name": "Wang Fang",
            "insurance_type": "employee",
            "region": REGION,
        },
        {
            "psn_no": ELSEWHERE,
            "id_number": "320101198504040048",
            "name": "Liu Yang",
            "insurance_type": "employee",
            "region": "320100",
        },
    ],
    "formulary": {
        "basic": [
            {
                "drug": TRASTUZUMAB,
                "category": "B",
                "payment_standard": "1500.00",
                "negotiated": True,
                "dual_channel": True,
                "restricted_diagnoses": ["C50"],
                "restricted_visits": ["inpatient", "outpatient", "pharmacy"],
            },
            {
                "drug": OWN_SHARE,
                "category": "B",
                "payment_standard": "8000.00",
                "self_pay_first_ratio": "0.20",
                "negotiated": True,
                "dual_channel": True,
            },
            {"drug": GENERIC_A, "category": "A", "payment_standard": "300.00"},
        ],
        "self_pay_first_ratio": "0.10",
        "commercial": [{"drug": CAR_T, "insurer": "INS-A", "settlement_price": "98000.00"}],
    },
    "plans": [
        {
            "id": "BASIC-EMP",
            "payer": "NHSA-310100",
            "kind": "basic",
            "eligible": {"insurance_types": ["employee"], "regions": [REGION]},
            "base": ["in_scope"],
            "deductible": {"amount": "1500.00", "per": "year"},
            "ratio": {"by_level": {"1": "0.90", "2": "0.85", "3": "0.80"}},
            "caps": {"annual": "500000.00"},
        },
        {
            "id": "BASIC-RES",
            "payer": "NHSA-310100",
            "kind": "basic",
            "eligible": {"insurance_types": ["resident"], "regions": [REGION]},
            "base": ["in_scope"],
            "deductible": {"amount": "800.00", "per": "year"},
            "ratio": {"rate": "0.60"},
        },
        {
            "id": "SERIOUS",
            "payer": "NHSA-310100",
            "kind": "serious_illness",
            "eligible": {"regions": [REGION]},
            "base": ["in_scope"],
            "deductible": {"amount": "15000.00", "per": "year"},
            "ratio": {"bands": [{"upto": "100000.00", "rate": "0.60"}, {"upto": None, "rate": "0.70"}]},
        },
        {
            "id": "HMB",
            "payer": "INS-A",
            "kind": "commercial",
            "eligible": {"regions": [REGION]},
            "base": ["in_scope", "self_pay_first", "above_standard", "out_of_scope"],
            "only_catalogue": "commercial",
            "deductible": {"amount": "0.00", "per": "year"},
            "ratio": {"rate": "0.70"},
            "caps": {"annual": "1000000.00"},
        },
        {
            "id": "MA",
            "payer": "MA-UNION",
            "kind": "mutual_aid",
            "eligible": {"memberships": ["MA-UNION"]},
            "base": ["in_scope", "self_pay_first"],
            "ratio": {"rate": "0.50"},
            "caps": {"claim": "2000.00"},
        },
        {
            "id": "PAP",
            "payer": "CHARITY-X",
            "kind": "charity",
            "eligible": {"flags": ["low_income"], "drugs": [TRASTUZUMAB]},
            "in_kind": {"drug": TRASTUZUMAB, "after_units": 3, "free_units": 3},
        },
    ],
    "grants": [
        {"reference": "G-NHSA-H3", "payer": "NHSA-310100", "institution": HOSPITAL, "amount": "100000.00"},
        {"reference": "G-INSA-H3", "payer": "INS-A", "institution": HOSPITAL, "amount": "1000.00"},
        {"reference": "G-MA-H3", "payer": "MA-UNION", "institution": HOSPITAL, "amount": "5000.00"},
        {"reference": "G-NHSA-P", "payer": "NHSA-310100", "institution": PHARMACY, "amount": "50000.00"},
    ],
}


SECOND_REGION = "320100"
IN_SECOND_REGION: dict[str, str] = {
    REGION: SECOND_REGION,
    "NHSA-310100": "NHSA-320100",
    "Shanghai medical insurance fund": "Nanjing medical insurance fund",
    "INS-A": "INS-B",
    "Insurer A": "Insurer B",
    "MA-UNION": "MA-UNION-B",
    "CHARITY-X": "CHARITY-Y",
    HOSPITAL: "H320003",
    SMALL_HOSPITAL: "H320001",
    PHARMACY: "P320001",
    MEMBER: "Q0001",
    RESIDENT: "Q0002",
    EMPLOYEE: "Q0003",
    "310101198001010012": "320102198001010016",
    "310101199002020024": "320102199002020028",
    "310101197503030036": "320102197503030030",
    **{plan: f"{plan}-B" for plan in ("BASIC-EMP", "BASIC-RES", "SERIOUS", "HMB", "MA", "PAP")},
    **{grant: f"{grant}-B" for grant in ("G-NHSA-H3", "G-INSA-H3", "G-MA-H3", "G-NHSA-P")},
}
"""The second region's counterpart of each code (and ID number) of the first."""
SECOND_REGION_PRICE = "95000.00"  # INS-B's settlement price of CAR_T: its rebate is 25000.00 a unit at 120000.00


def in_second_region(value: Any) -> Any:
    """`value` (a code, a claim, a document) with every code of the first region replaced by its
    counterpart in the second.
    """
    if isinstance(value, dict):
        return {key: in_second_region(item) for key, item in value.items()}
    if isinstance(value, list):
        return [in_second_region(item) for item in value]
    return IN_SECOND_REGION.get(value, value) if isinstance(value, str) else value


def second_region_data() -> dict[str, Any]:
    """A second pooling region built like the first: its own institutions, people, plans, pools,
    insurer (INS-B, with its own confidential price), mutual aid and charity; the same drugs.
    """
    document: dict[str, Any] = in_second_region({k: v for k, v in REFERENCE_DATA.items() if k != "drugs"})
    document["people"] = [person for person in document["people"] if person["psn_no"] != ELSEWHERE]
    document["formulary"]["commercial"][0]["settlement_price"] = SECOND_REGION_PRICE
    return document


def claim(
    serial: str,
    *,
    person: str = MEMBER,
    institution: str = HOSPITAL,
    service_date: str = "2026-03-15",
    visit: str = "INPATIENT",
    diagnoses: tuple[str, ...] = ("C50.9",),
    lines: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A ClaimInput (GraphQL variables); by default SCENARIO.md's worked example. Lines given
    without `traceCodes` get fresh, valid ones: one per package, never used before.
    """
    lines = lines if lines is not None else [{"drug": TRASTUZUMAB, "quantity": 2, "unitPrice": "1600.00"}]
    return {
        "institution": institution,
        "serial": serial,
        "person": person,
        "serviceDate": service_date,
        "visit": visit,
        "diagnoses": list(diagnoses),
        "lines": [
            line if "traceCodes" in line else line | {"traceCodes": codes(line["drug"], line["quantity"])}
            for line in lines
        ],
    }


_SERIALS = itertools.count(1)
PREFIXES = {drug["code"]: drug["trace_prefixes"][0] for drug in REFERENCE_DATA["drugs"]}


def codes(drug: str, packages: int) -> list[str]:
    """Fresh traceability codes of `drug`: its 7-digit product prefix and a 13-digit serial."""
    return [f"{PREFIXES[drug]}{next(_SERIALS):013d}" for _ in range(packages)]


SETTLEMENT_FIELDS = """
  id institution serial person serviceDate year visit status settledAt reversedAt reversalReason
  explanation {
    total outOfScope aboveStandard selfPayFirst inScope patientCash
    funds { plan payer kind amount base deductibleApplied drawnFromPrepayment receivable reasons { code } }
    lines { index drug quantity donatedUnits unitPrice total outOfScope aboveStandard selfPayFirst inScope
            patientCash payments { plan amount } reasons { code } traceCodes }
  }
"""
ERROR_FIELDS = "... on Error { __typename code field message retryable }"

SETTLE = f"""mutation($claim: ClaimInput!) {{ settle(claim: $claim) {{ __typename
  ... on Settlement {{ {SETTLEMENT_FIELDS} }} {ERROR_FIELDS}
  ... on IdempotencyConflict {{ settlementId }} ... on AlreadyReversed {{ settlementId }} }} }}"""
PRE_SETTLE = f"""mutation($claim: ClaimInput!) {{ preSettle(claim: $claim) {{ __typename
  ... on Settlement {{ {SETTLEMENT_FIELDS} }} {ERROR_FIELDS} }} }}"""
REVERSE = f"""mutation($input: ReversalInput!) {{ reverseSettlement(input: $input) {{ __typename
  ... on Reversal {{ voidedSerial settlement {{ {SETTLEMENT_FIELDS} }} laterSettlements {{ id serial }} }}
  {ERROR_FIELDS} ... on AlreadyReversed {{ settlementId }} }} }}"""
BY_SERIAL = f"""query($institution: String!, $serial: String!) {{
  settlementBySerial(institution: $institution, serial: $serial) {{ {SETTLEMENT_FIELDS} }} }}"""
ACCUMULATORS = """query($psn: String!, $year: Int!) { person(psnNo: $psn) {
  accumulators(year: $year) { plan deductibleMet baseSpent paid claims }
  unitsReceived(year: $year) { drug units } } }"""
POOLS = """query($code: String!) { institution(code: $code) {
  prepaymentPools { payer granted drawn returned balance } } }"""
