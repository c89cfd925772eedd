"""How long the settlement slip's PDF takes to render, by number of lines.

The renderer alone (`api.slip_pdf.render`), in process, on a generated slip of N lines (every
line paid by two plans, with a reason): the median and the worst of ROUNDS renders for each N.
Renders run one at a time in a process (reportlab's module-level state is held under a lock),
so a slip's render time is also how long it holds the next one back. Target: a slip of a few
lines well under 50 ms; the largest claim (200 lines) under a second.

    .venv/bin/python bench/slip.py [--lines 4,20,200] [--rounds 15]

Prints the figures, writes them to bench/results/slip.json and appends a row per N to
bench/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from adjudication import PlanKind
from api.services.slips import Slip, SlipFund, SlipLine
from api.slip_pdf import render

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "results" / "slip.json"
RESULTS_MD = HERE / "results.md"
SECTION = "## The settlement slip's PDF: `python bench/slip.py`"


def generated(lines: int) -> Slip:
    """A slip of `lines` lines of 3,200.00 each: 960.00 basic, 1,020.00 mutual aid, the rest cash."""
    line = SlipLine(
        index=0,
        drug="XL01XC00001",
        generic_name="trastuzumab",
        quantity=2,
        donated_units=0,
        unit_price_fen=160_000,
        total_fen=320_000,
        out_of_scope_fen=0,
        above_standard_fen=20_000,
        self_pay_first_fen=30_000,
        in_scope_fen=270_000,
        paid_by=(("BASIC-EMP", 96_000), ("MA", 102_000)),
        patient_fen=122_000,
        reasons=("ABOVE_STANDARD", "DEDUCTIBLE"),
    )
    paid = dict.fromkeys(PlanKind, 0) | {PlanKind.BASIC: 96_000 * lines, PlanKind.MUTUAL_AID: 102_000 * lines}
    return Slip(
        settlement_id=uuid.uuid4(),
        institution="H310003",
        institution_name="上海市某三级医院",
        serial="H310003-20260315-0001",
        person="P0001",
        name="张伟",
        service_date=date(2026, 3, 15),
        visit="inpatient",
        reversed=False,
        settled_at=datetime.now(UTC),
        reversed_at=None,
        reversal_reason=None,
        treating_region="310100",
        insured_region="310100",
        total_fen=320_000 * lines,
        out_of_scope_fen=0,
        above_standard_fen=20_000 * lines,
        self_pay_first_fen=30_000 * lines,
        in_scope_fen=270_000 * lines,
        paid_fen=MappingProxyType(paid),
        personal_account_fen=0,
        cash_fen=122_000 * lines,
        funds=(
            SlipFund("BASIC-EMP", "NHSA-310100", PlanKind.BASIC, 96_000 * lines, ()),
            SlipFund("MA", "MA-UNION", PlanKind.MUTUAL_AID, 102_000 * lines, ("CLAIM_CAP",)),
        ),
        lines=tuple(SlipLine(**{**_fields(line), "index": index}) for index in range(lines)),
    )


def _fields(line: SlipLine) -> dict[str, Any]:
    return {name: getattr(line, name) for name in SlipLine.__slots__}


def measure(lines: int, rounds: int) -> dict[str, Any]:
    slip = generated(lines)
    render(slip, printed_at=datetime.now(UTC))  # the fonts registered, the modules warm
    times_ms = []
    for _ in range(rounds):
        started = time.perf_counter()
        pdf = render(slip, printed_at=datetime.now(UTC))
        times_ms.append((time.perf_counter() - started) * 1000)
    return {
        "lines": lines,
        "rounds": rounds,
        "median_ms": round(statistics.median(times_ms), 1),
        "max_ms": round(max(times_ms), 1),
        "bytes": len(pdf),
    }


def record(figures: dict[str, Any]) -> None:
    RESULTS_JSON.parent.mkdir(exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    text = RESULTS_MD.read_text(encoding="utf-8")
    rows = [
        f"| {figures['measured_at'][:10]} | {run['lines']} | {run['median_ms']} | {run['max_ms']} | "
        f"{run['bytes']:,} | load {figures['load_average_before']} |"
        for run in figures["runs"]
    ]
    if SECTION not in text:
        text += (
            f"\n{SECTION}\n\n"
            "The renderer alone, in process, on a generated slip of N lines (two payers and two reasons a\n"
            "line); the median and the worst of the rounds. Target: a few lines well under 50 ms, the\n"
            "largest claim (200 lines) under a second.\n\n"
            "| date | lines | median ms | worst ms | PDF bytes | note |\n"
            "| --- | --- | --- | --- | --- | --- |\n"
        )
    RESULTS_MD.write_text(text.rstrip("\n") + "\n" + "\n".join(rows) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", default="4,20,200", help="slip sizes, comma separated (default 4,20,200)")
    parser.add_argument("--rounds", type=int, default=15, help="renders per size (default 15)")
    arguments = parser.parse_args()
    load_before = round(os.getloadavg()[0], 2)
    runs = [measure(int(n), arguments.rounds) for n in arguments.lines.split(",")]
    figures = {
        "measured_at": datetime.now(UTC).isoformat(),
        "python": platform.python_version(),
        "load_average_before": load_before,
        "runs": runs,
    }
    for run in runs:
        print(f"{run['lines']:>4} lines: median {run['median_ms']} ms, worst {run['max_ms']} ms, {run['bytes']:,} B")
    record(figures)


if __name__ == "__main__":
    main()
