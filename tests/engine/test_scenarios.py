"""Every worked scenario under tests/scenarios/ splits exactly as computed by hand.

Each scenario is a directory with `input.json` (SCENARIO.md's input) and `expected.json` (the
output, computed by hand; its `$comment` shows the arithmetic). Reason messages are for people:
only their codes are compared.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from adjudication.scenario import loads, read_scenario, render

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
NAMES = sorted(path.name for path in SCENARIOS.iterdir() if (path / "input.json").exists())


def comparable(value: object) -> object:
    """The output with comments dropped and reasons reduced to their codes."""
    if isinstance(value, dict):
        return {
            key: [reason["code"] for reason in item] if key == "reasons" else comparable(item)
            for key, item in value.items()
            if key != "$comment"
        }
    if isinstance(value, list):
        return [comparable(item) for item in value]
    return value


def run(name: str) -> dict[str, object]:
    scenario = read_scenario(loads((SCENARIOS / name / "input.json").read_text(encoding="utf-8")))
    return render(scenario.adjudicate())


def expected(name: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((SCENARIOS / name / "expected.json").read_text(encoding="utf-8"))
    return loaded


def test_there_are_enough_worked_scenarios_and_each_explains_itself() -> None:
    assert len(NAMES) >= 15
    assert sum(name.startswith("real_") for name in NAMES) >= 3
    for name in NAMES:
        for file in ("input.json", "expected.json"):
            comment = json.loads((SCENARIOS / name / file).read_text(encoding="utf-8")).get("$comment")
            assert isinstance(comment, str) and len(comment) > 40, f"{name}/{file} has no $comment"


@pytest.mark.parametrize("name", NAMES)
def test_scenario_splits_as_computed_by_hand(name: str) -> None:
    assert comparable(run(name)) == comparable(expected(name))


@pytest.mark.parametrize("name", NAMES)
def test_scenario_adds_up_to_the_fen(name: str) -> None:
    """total = paid_before + the payers' amounts + patient, per line and per claim; the personal
    account and cash split the patient's share, and the lines' accounts add up to the claim's.
    """
    output = run(name)
    claim = json.loads((SCENARIOS / name / "input.json").read_text(encoding="utf-8"))["claim"]
    cents = lambda text: int(text.replace(".", ""))  # noqa: E731 - yuan strings always carry two places
    payers = output["payers"]
    lines = output["lines"]
    account = output["personal_account"]
    assert isinstance(payers, list) and isinstance(lines, list) and isinstance(account, dict)
    total = cents(str(output["total"]))
    paid_before = cents(str(output["paid_before"]))
    assert paid_before + cents(str(output["patient"])) + sum(cents(p["amount"]) for p in payers) == total
    assert cents(account["paid"]) + cents(str(output["cash"])) == cents(str(output["patient"]))
    assert sum(cents(line["personal_account"]) for line in lines) == cents(account["paid"])
    line_paid_before = [sum(cents(v) for v in line.get("paid_before", {}).values()) for line in claim["lines"]]
    assert sum(line_paid_before) == paid_before
    for line, before in zip(lines, line_paid_before, strict=True):
        paid = sum(cents(v) for v in line["paid"].values())
        assert before + paid + cents(line["patient"]) == cents(line["total"])
        assert 0 <= cents(line["personal_account"]) <= cents(line["patient"])


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("deductible_across_claims_1", "deductible_across_claims_2"),
        ("per_claim_deductible_1", "per_claim_deductible_2"),
    ],
)
def test_the_second_claim_runs_on_the_first_claims_output(first: str, second: str) -> None:
    """The output's accumulators and units are the next claim's input: the chain gives the year."""
    first_output = run(first)
    second_input = json.loads((SCENARIOS / second / "input.json").read_text(encoding="utf-8"))
    assert comparable(second_input["patient"]["accumulators"]) == comparable(first_output["accumulators"])
    assert second_input["patient"]["units_received"] == first_output["units_received"]


def test_settle_adjudicate_prints_the_output_json() -> None:
    name = "spec_worked_example"
    completed = subprocess.run(
        [sys.executable, "-m", "api.cli", "adjudicate", str(SCENARIOS / name / "input.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert comparable(json.loads(completed.stdout)) == comparable(expected(name))


def test_settle_adjudicate_reads_standard_input() -> None:
    name = "in_kind_donation"
    completed = subprocess.run(
        [sys.executable, "-m", "api.cli", "adjudicate", "-"],
        input=(SCENARIOS / name / "input.json").read_text(encoding="utf-8"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert comparable(json.loads(completed.stdout)) == comparable(expected(name))
