"""Time `adjudicate()` alone: 100,000 generated claims of 3 lines, each met by 5 plans.

Inputs are built beforehand (no JSON, no I/O in the timed loop); the figure is claims per
second on one core. Prints the figures and writes them to bench/results/engine.json.

    python bench/engine.py [--claims 100000] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from datetime import UTC, date, datetime
from pathlib import Path
from types import MappingProxyType

from adjudication import (
    Accumulator,
    Band,
    Bands,
    BaseTerm,
    BasicEntry,
    ByLevel,
    Caps,
    Catalogue,
    Category,
    Claim,
    ClaimLine,
    CommercialEntry,
    Criteria,
    Deductible,
    DeductiblePer,
    Formulary,
    Institution,
    InstitutionKind,
    InsuranceType,
    Part,
    Patient,
    Plan,
    PlanKind,
    Rate,
    Variant,
    Visit,
    adjudicate,
)
from adjudication.money import RATIO_ONE

RESULTS = Path(__file__).resolve().parent / "results" / "engine.json"
DRUGS = [f"XL01XX{number:05d}" for number in range(1, 21)]


def ratio(text: str) -> int:
    return round(float(text) * RATIO_ONE)  # bench-only helper; the engine itself never sees a float


def build_formulary(rng: random.Random) -> Formulary:
    basic = []
    for index, drug in enumerate(DRUGS[:16]):
        basic.append(
            BasicEntry(
                drug=drug,
                category=Category.B if index % 3 else Category.A,
                payment_standard=rng.randrange(5_000, 900_000),
                self_pay_first_ratio=ratio("0.20") if index % 5 == 0 else None,
                negotiated=index % 2 == 0,
                dual_channel=index % 4 != 0,
                restricted_diagnoses=("C50", "C34") if index % 7 == 0 else (),
            )
        )
    commercial = [CommercialEntry(drug, "INS-A", rng.randrange(1_000_000, 9_000_000)) for drug in DRUGS[12:]]
    return Formulary.of(tuple(basic), ratio("0.10"), tuple(commercial))


def build_plans(rng: random.Random) -> tuple[Plan, ...]:
    return (
        Plan(
            "BASIC-EMP",
            "NHSA-310100",
            PlanKind.BASIC,
            eligible=Criteria(insurance_types=frozenset({InsuranceType.EMPLOYEE})),
            base=(BaseTerm(Part.IN_SCOPE),),
            deductible=Deductible(ByLevel(MappingProxyType({1: 80_000, 2: 120_000, 3: 150_000}))),
            ratio=ByLevel(MappingProxyType({1: Rate(ratio("0.90")), 2: Rate(ratio("0.85")), 3: Rate(ratio("0.80"))})),
            caps=Caps(annual=50_000_000),
            variants=(Variant(Criteria(flags=frozenset({"retired"})), ratio=Rate(ratio("0.90"))),),
        ),
        Plan(
            "SERIOUS",
            "NHSA-310100",
            PlanKind.SERIOUS_ILLNESS,
            base=(BaseTerm(Part.IN_SCOPE),),
            deductible=Deductible(1_500_000),
            ratio=Bands((Band(10_000_000, ratio("0.60")), Band(None, ratio("0.70")))),
        ),
        Plan(
            "HMB",
            "INS-A",
            PlanKind.COMMERCIAL,
            base=tuple(BaseTerm(part) for part in Part),
            only_catalogue=Catalogue.COMMERCIAL,
            deductible=Deductible(rng.choice([0, 2_000_000])),
            ratio=Rate(ratio("0.70")),
            caps=Caps(annual=100_000_000),
        ),
        Plan(
            "MA",
            "MA-UNION",
            PlanKind.MUTUAL_AID,
            eligible=Criteria(memberships=frozenset({"MA-UNION"})),
            base=(BaseTerm(Part.IN_SCOPE), BaseTerm(Part.SELF_PAY_FIRST, ratio("0.50"))),
            deductible=Deductible(50_000, DeductiblePer.CLAIM, subsequent=20_000),
            ratio=Rate(ratio("0.50")),
            caps=Caps(claim=200_000),
        ),
        Plan(
            "CHARITY",
            "CHARITY-X",
            PlanKind.CHARITY,
            eligible=Criteria(flags=frozenset({"low_income"})),
            base=(BaseTerm(Part.SELF_PAY_FIRST), BaseTerm(Part.ABOVE_STANDARD)),
            ratio=Rate(ratio("0.30")),
        ),
    )


def build_case(rng: random.Random, formulary: Formulary, plans: tuple[Plan, ...]) -> tuple[Claim, Patient, Institution]:
    level = rng.randint(1, 3)
    institution = Institution(f"H31000{level}", InstitutionKind.HOSPITAL, level, "310100")
    lines = tuple(ClaimLine(rng.choice(DRUGS), rng.randint(1, 6), rng.randrange(1_000, 1_000_000)) for _ in range(3))
    claim = Claim("S", date(2026, 3, 15), rng.choice([Visit.OUTPATIENT, Visit.INPATIENT]), ("C50.9",), lines)
    accumulators = {
        plan.id: Accumulator(
            rng.randrange(0, 200_000), rng.randrange(0, 20_000_000), rng.randrange(0, 5_000_000), rng.randint(0, 4)
        )
        for plan in plans
        if rng.random() < 0.6
    }
    patient = Patient(
        insurance_type=rng.choice(list(InsuranceType)),
        region="310100",
        memberships=frozenset({"MA-UNION"}) if rng.random() < 0.5 else frozenset(),
        flags=frozenset(rng.sample(["low_income", "retired"], rng.randint(0, 2))),
        accumulators=MappingProxyType(accumulators),
    )
    return claim, patient, institution


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--claims", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    formulary = build_formulary(rng)
    plan_sets = [build_plans(rng) for _ in range(16)]
    cases = []
    for index in range(args.claims):
        plans = plan_sets[index % len(plan_sets)]
        cases.append((*build_case(rng, formulary, plans), plans))

    started = time.perf_counter()
    for claim, patient, institution, plans in cases:
        adjudicate(claim, patient=patient, institution=institution, formulary=formulary, plans=plans)
    elapsed = time.perf_counter() - started

    figures = {
        "benchmark": "engine",
        "claims": args.claims,
        "lines_per_claim": 3,
        "plans_per_claim": 5,
        "seconds": round(elapsed, 3),
        "claims_per_second": round(args.claims / elapsed),
        "microseconds_per_claim": round(elapsed / args.claims * 1e6, 1),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    for key, value in figures.items():
        print(f"{key:>24}: {value}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
