"""The supervisors' audit: a seeded data set with planted anomalies of every kind, found by the
scan and no clean record flagged; anomalies by page and filter; risk; CSV exports.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select, text

from adjudication.tracecodes import AnomalyKind
from api.crypto.envelope import FieldCipher
from api.crypto.keyring import FileKeyring
from api.crypto.suites import Suite
from api.db import models
from api.db.references import VersionCache
from api.db.session import create_engine, create_sessionmaker
from api.ids import uuid7
from api.services import supervision
from api.services.runtime import Runtime
from tests.api.conftest import Service
from tests.api.documents import (
    CAR_T,
    EMPLOYEE,
    GENERIC_A,
    HOSPITAL,
    OWN_SHARE,
    PHARMACY,
    REVERSE,
    SETTLE,
    TRASTUZUMAB,
    claim,
    codes,
)
from tests.conftest import ADMIN_URL, _asyncpg_dsn


@dataclass
class Seeded:
    service: Service
    runtime: Runtime
    clean: set[str]
    planted: Counter[str]
    anomalous: set[str]


async def settle(caller: Service, request: dict[str, Any]) -> str:
    result = (await caller.graphql(SETTLE, {"claim": request}))["settle"]
    assert result["__typename"] == "Settlement", result
    return str(result["id"])


async def as_owner(service: Service, backend: str, statement: str, *parameters: Any) -> None:
    """Write rows directly, as a legacy import would (bypassing the service's checks)."""
    if backend == "sqlite":
        engine = create_engine(service.database_url)
        named = statement
        for index in range(len(parameters), 0, -1):
            named = named.replace(f"${index}", f":p{index}")
        values = {f"p{i}": p.hex if isinstance(p, uuid.UUID) else p for i, p in enumerate(parameters, start=1)}
        async with engine.begin() as connection:
            await connection.execute(text(named), values)
        await engine.dispose()
        return
    database = service.database_url.rsplit("/", 1)[1]
    connection = await asyncpg.connect(_asyncpg_dsn(ADMIN_URL).rsplit("/", 1)[0] + "/" + database)
    try:
        await connection.execute(statement, *parameters)
    finally:
        await connection.close()


@pytest.fixture
async def seeded(service: Service, backend: str) -> AsyncIterator[Seeded]:
    """Clean settlements, settlements flagged when written (their anomalies then erased, as if
    imported from a system without checks), and code events planted directly.
    """
    await service.load(
        {
            "drugs": [
                {
                    "code": OWN_SHARE,
                    "generic_name": "osimertinib",
                    "package_units": 30,
                    "trace_prefixes": ["8304321"],
                    "listed_on": "2026-03-01",
                }
            ],
            "trace_policies": [
                {"institution": HOSPITAL, "drug": GENERIC_A, "invalid_codes": "accept_and_flag"},
                {"institution": HOSPITAL, "drug": CAR_T, "no_code_stock": True},
            ],
        }
    )
    pharmacy = service.as_(service.tokens.pharmacy)
    await service.graphql(
        "mutation($i: PrescriptionInput!) { recordPrescription(input: $i) { __typename } }",
        {"i": {"prescriptionId": "RX-OK", "person": EMPLOYEE, "drugs": [OWN_SHARE], "issuedOn": "2026-03-01"}},
    )

    def generic(serial: str, quantity: int, trace: list[str], split: bool = False) -> dict[str, Any]:
        return claim(
            serial,
            person=EMPLOYEE,
            visit="OUTPATIENT",
            diagnoses=("I10",),
            lines=[
                {"drug": GENERIC_A, "quantity": quantity, "unitPrice": "250.00", "traceCodes": trace, "split": split}
            ],
        )

    def pharmacy_sale(serial: str, prescription: str) -> dict[str, Any]:
        return claim(
            serial,
            person=EMPLOYEE,
            institution=PHARMACY,
            visit="PHARMACY",
            diagnoses=("C34.1",),
            lines=[{"drug": OWN_SHARE, "quantity": 1, "unitPrice": "8000.00", "prescriptionId": prescription}],
        )

    split_package = codes(GENERIC_A, 1)[0]
    clean = {
        await settle(service, claim("C-1")),
        await settle(service, claim("C-2", person=EMPLOYEE)),
        await settle(service, generic("C-3", 3, codes(GENERIC_A, 3))),
        await settle(service, generic("C-4", 20, [split_package], split=True)),
        await settle(pharmacy, pharmacy_sale("C-5", "RX-OK")),
    }
    package = codes(GENERIC_A, 1)[0]
    anomalous = {
        await settle(service, generic("A-MALFORMED", 2, [codes(GENERIC_A, 1)[0], "12345"])),
        await settle(service, generic("A-COUNT", 3, codes(GENERIC_A, 1))),
        await settle(service, generic("A-MISMATCH", 1, ["99999990000000000001"])),
        await settle(
            service,
            claim(
                "A-NOCODE",
                diagnoses=("C83.3",),
                lines=[{"drug": CAR_T, "quantity": 1, "unitPrice": "120000.00", "traceCodes": []}],
            ),
        ),
        await settle(pharmacy, pharmacy_sale("A-NORX", "RX-MISSING")),
        await settle(
            service,
            claim(
                "A-EARLY",
                person=EMPLOYEE,
                service_date="2026-02-15",
                diagnoses=("C34.1",),
                lines=[{"drug": OWN_SHARE, "quantity": 1, "unitPrice": "8000.00"}],
            ),
        ),
    }
    returned = await settle(service, generic("A-RETURNED", 1, [package]))
    await service.graphql(REVERSE, {"input": {"id": returned, "reason": "refund"}})
    anomalous |= {returned, await settle(service, generic("A-RESOLD", 1, [package]))}
    planted = Counter(
        {
            AnomalyKind.MALFORMED_CODE: 1,
            AnomalyKind.CODE_COUNT_MISMATCH: 1,
            AnomalyKind.PRODUCT_MISMATCH: 1,
            AnomalyKind.NO_CODE_STOCK: 1,
            AnomalyKind.NO_PRESCRIPTION: 1,
            AnomalyKind.SOLD_BEFORE_LISTING: 1,
            AnomalyKind.REUSED_AFTER_REVERSAL: 1,
        }
    )
    # what the service refuses outright, planted as a legacy import would have it
    sold_once = codes(TRASTUZUMAB, 1)[0]
    host = await settle(
        service,
        claim(
            "A-HOST", lines=[{"drug": TRASTUZUMAB, "quantity": 1, "unitPrice": "1500.00", "traceCodes": [sold_once]}]
        ),
    )
    now = datetime.now(UTC)
    for code, units in ((sold_once, 1), (split_package, 50)):  # a vial sold twice; 20 + 50 tablets of 60
        await as_owner(
            service,
            backend,
            "INSERT INTO trace_events (id, code, drug_code, kind, institution_code, region, settlement_id, "
            "line_index, units, patient_index, occurred_at) "
            "VALUES ($1, $2, $3, 'sold', 'H310001', '310100', $4, 0, $5, 'legacy', $6)",
            uuid7(),
            code,
            TRASTUZUMAB if code == sold_once else GENERIC_A,
            uuid_of(host),
            units,
            now if backend == "postgresql" else now.strftime("%Y-%m-%d %H:%M:%S.%f"),
        )
    anomalous.add(host)
    planted.update({AnomalyKind.CODE_REUSED: 1, AnomalyKind.UNITS_BEYOND_PACKAGE: 1})
    await as_owner(service, backend, "DELETE FROM anomalies")  # the import carried no findings
    engine = create_engine(service.database_url)
    sessions = create_sessionmaker(engine)
    keyring = FileKeyring(service.tokens.keyring_dir, Suite.AES_256_GCM, create_missing=True)
    runtime = Runtime(sessions, VersionCache.bounded(), FieldCipher(keyring, sessions), lambda: datetime.now(UTC))
    try:
        yield Seeded(service, runtime, clean, planted, anomalous)
    finally:
        await engine.dispose()


def uuid_of(value: str) -> uuid.UUID:
    return uuid.UUID(value)


async def test_the_scan_finds_every_planted_anomaly_and_flags_no_clean_record(seeded: Seeded) -> None:
    found = await supervision.scan(seeded.runtime)
    again = await supervision.scan(seeded.runtime)

    async with seeded.runtime.sessions() as session:
        rows = (await session.execute(select(models.Anomaly.__table__))).mappings().all()
    assert Counter(row["kind"] for row in rows) == seeded.planted
    assert found == sum(seeded.planted.values()) and again == 0
    flagged = {str(row["settlement_id"]) for row in rows}
    assert flagged <= seeded.anomalous and not flagged & seeded.clean
    assert all(row["detected_by"] == "scan" and row["status"] == "open" for row in rows)


ANOMALIES = """query($first: Int!, $after: String, $f: AnomalyFilter) {
  anomalies(first: $first, after: $after, filter: $f) {
    edges { cursor node { id kind severity institution } } pageInfo { hasNextPage endCursor } } }"""


async def test_supervisors_page_filter_and_summarize_anomalies_and_export_them(seeded: Seeded) -> None:
    await supervision.scan(seeded.runtime)
    supervisor = seeded.service.as_(seeded.service.tokens.supervisor())

    pages, after = [], None
    while True:
        page = (await supervisor.graphql(ANOMALIES, {"first": 4, "after": after}))["anomalies"]
        pages.append([edge["node"]["kind"] for edge in page["edges"]])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    high = (await supervisor.graphql(ANOMALIES, {"first": 50, "f": {"kind": "CODE_REUSED"}}))["anomalies"]["edges"]
    pharmacy = (await supervisor.graphql(ANOMALIES, {"first": 50, "f": {"institution": PHARMACY}}))["anomalies"][
        "edges"
    ]
    risk = (
        await supervisor.graphql(
            'query { institutionRisk(institution: "H310003", start: "2026-01-01", end: "2026-12-31") '
            "{ settlements anomalies openAnomalies anomaliesPerHundredSettlements bySeverity { name count } } }"
        )
    )["institutionRisk"]
    export = await seeded.service.client.get(
        "/exports/anomalies.csv", headers={"authorization": f"Bearer {supervisor.token}"}, params={"region": "310100"}
    )
    refused = await seeded.service.client.get(
        "/exports/anomalies.csv", headers={"authorization": f"Bearer {seeded.service.tokens.admin}"}
    )
    anonymous = await seeded.service.client.get("/exports/anomalies.csv")

    assert [len(page) for page in pages] == [4, 4, 1] and Counter(k for p in pages for k in p) == seeded.planted
    assert [edge["node"]["kind"] for edge in high] == ["CODE_REUSED"]
    assert [edge["node"]["kind"] for edge in pharmacy] == ["NO_PRESCRIPTION"]
    assert (risk["settlements"], risk["anomalies"], risk["openAnomalies"]) == (12, 6, 6)  # 3 more are elsewhere
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert Counter(row["kind"] for row in rows) == seeded.planted
    assert (refused.status_code, anonymous.status_code) == (403, 401)
