"""Malformed input: `settle adjudicate` exits 2, prints one line naming the field, nothing on stdout."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = json.loads(
    (Path(__file__).resolve().parent.parent / "scenarios" / "spec_worked_example" / "input.json").read_text("utf-8")
)
Mutation = Callable[[dict[str, Any]], None]
ALL_KINDS = ["basic", "serious_illness", "medical_assistance", "commercial", "mutual_aid", "charity"]


def settle_adjudicate(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "adjudicate", "-"], input=text, capture_output=True, text=True, check=False
    )


def set_at(path: list[Any], value: Any) -> Mutation:
    def mutate(scenario: dict[str, Any]) -> None:
        target: Any = scenario
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def delete_at(path: list[Any]) -> Mutation:
    def mutate(scenario: dict[str, Any]) -> None:
        target: Any = scenario
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


CASES: list[tuple[str, Mutation, str]] = [
    ("three decimals", set_at(["claim", "lines", 0, "unit_price"], "1600.001"), "claim.lines[0].unit_price"),
    (
        "negative amount",
        set_at(["formulary", "basic", 0, "payment_standard"], "-1.00"),
        "formulary.basic[0].payment_standard",
    ),
    ("amount as a number", set_at(["plans", 1, "deductible", "amount"], 15000), "plans[1].deductible.amount"),
    ("zero quantity", set_at(["claim", "lines", 0, "quantity"], 0), "claim.lines[0].quantity"),
    ("negative quantity", set_at(["claim", "lines", 0, "quantity"], -2), "claim.lines[0].quantity"),
    ("fractional quantity", set_at(["claim", "lines", 0, "quantity"], 1.5), "claim.lines[0].quantity"),
    ("unknown plan kind", set_at(["plans", 3, "kind"], "lottery"), "plans[3].kind"),
    ("unknown base part", set_at(["plans", 2, "base"], ["in_scope", "vat"]), "plans[2].base[1]"),
    ("unknown key", set_at(["plans", 0, "ratio", "bonus"], "0.10"), "plans[0].ratio.bonus"),
    ("unknown top-level key", set_at(["currency"], "CNY"), "currency"),
    ("missing field", delete_at(["patient", "insurance_type"]), "patient.insurance_type"),
    ("missing claim", delete_at(["claim"]), "claim"),
    ("ratio above one", set_at(["plans", 3, "ratio", "rate"], "1.50"), "plans[3].ratio.rate"),
    (
        "bands that do not rise",
        set_at(["plans", 1, "ratio", "bands", 1, "upto"], "50000.00"),
        "plans[1].ratio.bands[1].upto",
    ),
    ("unknown visit", set_at(["claim", "visit"], "home"), "claim.visit"),
    ("bad date", set_at(["service_date"], "2026-02-30"), "service_date"),
    ("duplicate plan id", set_at(["plans", 4, "id"], "BASIC-SH-EMP"), "plans[4].id"),
    ("level out of range", set_at(["institution", "level"], 4), "institution.level"),
    ("pharmacy visit at a hospital", set_at(["claim", "visit"], "pharmacy"), "claim.visit"),
    ("in-kind plan with a ratio", set_at(["plans", 4, "ratio"], {"rate": "0.50"}), "plans[4].ratio"),
    (
        "subsequent on a yearly deductible",
        set_at(["plans", 0, "deductible", "subsequent"], "100.00"),
        "plans[0].deductible.subsequent",
    ),
    ("unknown level key", set_at(["plans", 0, "ratio", "by_level", "4"], "0.50"), "plans[0].ratio.by_level.4"),
    # a region's waterfall: all six kinds, each once
    (
        "waterfall missing a kind",
        set_at(["waterfall"], ["basic", "serious_illness", "commercial", "mutual_aid", "charity"]),
        "waterfall",
    ),
    ("waterfall repeating a kind", set_at(["waterfall"], [*ALL_KINDS[:5], "basic"]), "waterfall[5]"),
    (
        "waterfall naming an unknown kind",
        set_at(["waterfall"], [*ALL_KINDS[:2], "lottery", *ALL_KINDS[3:]]),
        "waterfall[2]",
    ),
    ("waterfall not a list", set_at(["waterfall"], "basic"), "waterfall"),
    # payment-standard units
    (
        "split line without package_units against a per-package standard",
        set_at(["claim", "lines", 0], {"drug": "XL01XX00003", "quantity": 10, "unit_price": "300.00", "split": True}),
        "formulary.basic[1].package_units",
    ),
    (
        "standard per smallest unit without package_units",
        set_at(["formulary", "basic", 0, "standard_per"], "smallest"),
        "formulary.basic[0].package_units",
    ),
    (
        "split line of a commercial drug with no package_units anywhere",
        set_at(["claim", "lines", 0], {"drug": "XL01XX00002", "quantity": 2, "unit_price": "100.00", "split": True}),
        "formulary.commercial[0].package_units",
    ),
    ("split line of an in-kind-donated drug", set_at(["claim", "lines", 0, "split"], True), "claim.lines[0].split"),
    (
        "standard_per other than package or smallest",
        set_at(["formulary", "basic", 0, "standard_per"], "box"),
        "formulary.basic[0].standard_per",
    ),
    (
        "package_units of zero",
        set_at(["formulary", "basic", 0, "package_units"], 0),
        "formulary.basic[0].package_units",
    ),
    # claims after the fact
    (
        "paid_before above the part",
        set_at(["claim", "lines", 0, "paid_before"], {"in_scope": "2700.01"}),
        "claim.lines[0].paid_before.in_scope",
    ),
    (
        "paid_before negative",
        set_at(["claim", "lines", 0, "paid_before"], {"self_pay_first": "-1.00"}),
        "claim.lines[0].paid_before.self_pay_first",
    ),
    (
        "paid_before of an unknown part",
        set_at(["claim", "lines", 0, "paid_before"], {"vat": "1.00"}),
        "claim.lines[0].paid_before.vat",
    ),
    (
        "paid_before with three decimals",
        set_at(["claim", "lines", 0, "paid_before"], {"in_scope": "1.001"}),
        "claim.lines[0].paid_before.in_scope",
    ),
    # pre-authorization and consent
    (
        "authorizations not a list",
        set_at(["claim", "lines", 0, "authorizations"], "HMB-SH"),
        "claim.lines[0].authorizations",
    ),
    (
        "requires_authorization neither a list nor true",
        set_at(["plans", 2, "requires_authorization"], "all"),
        "plans[2].requires_authorization",
    ),
    ("consents not a list", set_at(["patient", "consents"], "INS-A"), "patient.consents"),
    ("requires_consent not a boolean", set_at(["plans", 2, "requires_consent"], "yes"), "plans[2].requires_consent"),
    # visits
    ("unknown visit in eligible", set_at(["plans", 0, "eligible", "visits"], ["home"]), "plans[0].eligible.visits[0]"),
    # the personal account
    ("personal account negative", set_at(["patient", "personal_account"], "-1.00"), "patient.personal_account"),
    (
        "personal account with three decimals",
        set_at(["patient", "personal_account"], "800.001"),
        "patient.personal_account",
    ),
    (
        "personal account covering an unknown part",
        set_at(["personal_account_covers"], ["in_scope", "drugs"]),
        "personal_account_covers[1]",
    ),
    (
        "personal account covering a part twice",
        set_at(["personal_account_covers"], ["in_scope", "in_scope"]),
        "personal_account_covers[1]",
    ),
]


@pytest.mark.parametrize(("mutation", "field"), [(m, f) for _, m, f in CASES], ids=[c[0] for c in CASES])
def test_malformed_input_exits_2_naming_the_field(mutation: Mutation, field: str) -> None:
    scenario = copy.deepcopy(EXAMPLE)
    mutation(scenario)
    completed = settle_adjudicate(json.dumps(scenario))
    assert completed.returncode == 2
    assert completed.stdout == ""
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert f" {field}: " in lines[0], lines[0]


def test_comment_is_allowed_on_any_object() -> None:
    scenario = copy.deepcopy(EXAMPLE)
    scenario["plans"][0]["ratio"]["$comment"] = "Shanghai 2026 employee rates"
    scenario["claim"]["lines"][0]["$comment"] = "one vial"
    assert settle_adjudicate(json.dumps(scenario)).returncode == 0


def test_text_that_is_not_json_exits_2() -> None:
    completed = settle_adjudicate("{not json")
    assert (completed.returncode, completed.stdout) == (2, "")
    assert len(completed.stderr.strip().splitlines()) == 1


def test_a_key_given_twice_is_refused() -> None:
    completed = settle_adjudicate('{"service_date": "2026-03-15", "service_date": "2026-03-16"}')
    assert (completed.returncode, completed.stdout) == (2, "")
    assert "service_date" in completed.stderr


def test_a_missing_file_exits_2() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "api.cli", "adjudicate", "/nonexistent/scenario.json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (completed.returncode, completed.stdout) == (2, "")
