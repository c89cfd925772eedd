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
