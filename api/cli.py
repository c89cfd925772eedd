"""The `settle` command.

    settle adjudicate FILE.json     split one scenario (SCENARIO.md) and print the result; `-` reads stdin

Exit status: 0 on success, 2 on malformed input (one line on stderr naming the field, nothing on
stdout).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

EXIT_INPUT = 2


def _adjudicate(args: argparse.Namespace) -> int:
    from adjudication import InputError, adjudicate
    from adjudication.scenario import loads, read_scenario, render

    try:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as error:
        print(f"settle: cannot read {args.file}: {error.strerror}", file=sys.stderr)
        return EXIT_INPUT
    try:
        scenario = read_scenario(loads(text))
        result = adjudicate(
            scenario.claim,
            patient=scenario.patient,
            institution=scenario.institution,
            formulary=scenario.formulary,
            plans=scenario.plans,
        )
    except InputError as error:
        print(f"settle: invalid input: {error}", file=sys.stderr)
        return EXIT_INPUT
    sys.stdout.write(json.dumps(render(result), ensure_ascii=False, indent=2) + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="settle", description="Multi-payer settlement of innovative drugs.")
    commands = parser.add_subparsers(dest="command", required=True)
    adjudicate = commands.add_parser("adjudicate", help="split one scenario (SCENARIO.md) and print the result")
    adjudicate.add_argument("file", help="scenario JSON file, or - for standard input")
    adjudicate.set_defaults(run=_adjudicate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
