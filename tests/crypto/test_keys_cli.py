"""`settle keys` from the command line: list, rotate, rewrap, retire (refused while needed), destroy;
and rotate-audit, after which the audit log still verifies under the keys each part names.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from api.crypto.keyring import FileKeyring
from api.crypto.suites import Suite
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
        "SETTLE_AUDIT_WITNESS_DIR": str(tmp_path / "witness"),
        "SETTLE_MODE": "development",
    }

    def settle(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "api.cli", *args], capture_output=True, text=True, env=environment, cwd=PROJECT_ROOT
        )

    (tmp_path / "document.json").write_text(json.dumps(DOCUMENT))
    assert settle("db", "upgrade").returncode == 0
    assert settle("load", str(tmp_path / "document.json")).returncode == 0
    listing = [line.split("\t") for line in settle("keys", "list").stdout.splitlines()]
    before = {fields[1]: fields[0] for fields in listing if not fields[1].startswith("audit-")}
    audit_before = {fields[1]: fields[0] for fields in listing if fields[1].startswith("audit-")}
    old = before["insurer:INS-A"]

    rotated = settle("keys", "rotate", "--tenant", "insurer:INS-A")
    refused = settle("keys", "retire", old)
    rewrapped = settle("keys", "rewrap", "--batch", "10")
    retired = settle("keys", "retire", old)
    listed = settle("keys", "list").stdout
    destroyed = settle("keys", "destroy", old)
    sealed, verified = settle("audit", "seal"), settle("audit", "verify")
    rotated_audit = settle("keys", "rotate-audit")
    sealed_after, verified_after = settle("audit", "seal"), settle("audit", "verify")
    audit_after = [line.split("\t") for line in settle("keys", "list").stdout.splitlines() if "\taudit-" in line]

    assert rotated.returncode == 0 and "insurer:INS-A\tactive" in rotated.stdout
    assert refused.returncode == 1 and "still wraps 1 data keys" in refused.stderr
    assert rewrapped.stdout.strip() == "rewrapped 1 data keys"
    assert retired.returncode == 0
    assert f"{old}\tinsurer:INS-A\tretired\t0" in listed and "people:310100\tactive\t1" in listed
    assert destroyed.returncode == 0 and sealed.returncode == 0
    assert verified.returncode == 0, verified.stdout
    assert set(before) == {"insurer:INS-A", "people:310100"}
    assert rotated_audit.returncode == 0 and sealed_after.returncode == 0
    assert verified_after.returncode == 0, verified_after.stdout
    assert set(audit_before) == {"audit-mac"}  # made by the first audited write (the signing key: by the first seal)
    assert [fields[2] for fields in audit_after if fields[0] == audit_before["audit-mac"]] == ["verify_only"]
    assert sorted((fields[1], fields[2]) for fields in audit_after) == [
        ("audit-mac", "active"),
        ("audit-mac", "verify_only"),
        ("audit-signing", "active"),
        ("audit-signing", "verify_only"),
    ]


def test_production_provisions_its_audit_keys_before_anything_is_written(tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'production.sqlite3'}",
        "SETTLE_MODE": "production",
        "SETTLE_KEYS_DIR": str(tmp_path / "keys"),
        "SETTLE_KEYRING_DIR": str(tmp_path / "keyring"),
        "SETTLE_AUDIT_WITNESS_DIR": str(tmp_path / "witness"),
    }

    def settle(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "api.cli", *args], capture_output=True, text=True, env=environment, cwd=PROJECT_ROOT
        )

    FileKeyring(tmp_path / "keyring", Suite.AES_256_GCM, create_missing=True).index_key()  # provisioned too
    assert settle("db", "upgrade").returncode == 0
    unprovisioned = settle("keys", "list")  # lists, though no audit key exists yet
    provisioned = settle("keys", "rotate-audit")  # audited under the MAC key it has just made
    listed = settle("keys", "list").stdout
    sealed, verified = settle("audit", "seal"), settle("audit", "verify")

    assert unprovisioned.returncode == 0 and unprovisioned.stdout == "", unprovisioned.stderr
    assert provisioned.returncode == 0, provisioned.stderr
    assert [line.split("\t")[1:3] for line in provisioned.stdout.splitlines()] == [
        ["audit-mac", "active"],
        ["audit-signing", "active"],
    ]
    assert listed.count("\tactive\t") == 2
    assert sealed.stdout.strip() == "sealed 1 entries" and verified.returncode == 0, verified.stdout
