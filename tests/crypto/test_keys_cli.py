"""`settle keys` from the command line: list, rotate, rewrap, retire (refused while needed), destroy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from api.settings import PROJECT_ROOT

DOCUMENT = {
    "region": "310100",
    "effective_from": "2026-01-01",
    "payers": [{"code": "INS-A", "name": "Insurer A", "kind": "insurer"}],
    "drugs": [{"code": "CART", "generic_name": "car-t", "package_units": 1}],
    "formulary": {"commercial": [{"drug": "CART", "insurer": "INS-A", "settlement_price": "98000.00"}]},
    "people": [
        {
            "psn_no": "P1",
            "id_number": "310101198001010012",
            "name": "Zhang Wei",
            "insurance_type": "employee",
            "region": "310100",
        }
    ],
}


def test_the_key_life_cycle_from_the_command_line(tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'keys.sqlite3'}",
        "SETTLE_KEYS_DIR": str(tmp_path / "keys"),
        "SETTLE_MODE": "development",
    }

    def settle(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "api.cli", *args], capture_output=True, text=True, env=environment, cwd=PROJECT_ROOT
        )

    (tmp_path / "document.json").write_text(json.dumps(DOCUMENT))
    assert settle("db", "upgrade").returncode == 0
    assert settle("load", str(tmp_path / "document.json")).returncode == 0
    before = {line.split("\t")[1]: line.split("\t")[0] for line in settle("keys", "list").stdout.splitlines()}
    old = before["insurer:INS-A"]

    rotated = settle("keys", "rotate", "--tenant", "insurer:INS-A")
    refused = settle("keys", "retire", old)
    rewrapped = settle("keys", "rewrap", "--batch", "10")
    retired = settle("keys", "retire", old)
    listed = settle("keys", "list").stdout
    destroyed = settle("keys", "destroy", old)
    sealed, verified = settle("audit", "seal"), settle("audit", "verify")

    assert rotated.returncode == 0 and "insurer:INS-A\tactive" in rotated.stdout
    assert refused.returncode == 1 and "still wraps 1 data keys" in refused.stderr
    assert rewrapped.stdout.strip() == "rewrapped 1 data keys"
    assert retired.returncode == 0
    assert f"{old}\tinsurer:INS-A\tretired\t0" in listed and "people:310100\tactive\t1" in listed
    assert destroyed.returncode == 0 and sealed.returncode == 0
    assert verified.returncode == 0, verified.stdout
    assert set(before) == {"insurer:INS-A", "people:310100"}
