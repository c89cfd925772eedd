"""The engine is a calculator: nothing under adjudication/ imports I/O, ORM, web or clock modules."""

from __future__ import annotations

import ast
from pathlib import Path

import adjudication

ENGINE = Path(adjudication.__file__).resolve().parent
ALLOWED = {"__future__", "collections", "dataclasses", "datetime", "enum", "json", "re", "types", "typing"}


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def test_the_engine_imports_only_the_standard_library_it_needs() -> None:
    for path in ENGINE.rglob("*.py"):
        foreign = imported_modules(path) - ALLOWED - {"adjudication"}
        assert not foreign, f"{path.name} imports {sorted(foreign)}"


def test_the_engine_never_reads_the_clock_or_uses_floats() -> None:
    for path in ENGINE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for forbidden in ("float(", "date.today", "datetime.now", "time.time", "open("):
            assert forbidden not in text, f"{path.name} uses {forbidden}"
