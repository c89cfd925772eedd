"""Nothing leaks: sentinel prices, ID numbers and names that equal no other figure are loaded,
claims are settled and read back, errors are provoked, and then the raw database (every table,
every column, and on SQLite the files themselves), the application log and every GraphQL error
message are searched for them in every written form. None is found.
"""

from __future__ import annotations

import copy
import logging
import struct
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, inspect, select

from api.db.session import create_engine
from tests.api.conftest import Service
from tests.api.documents import CAR_T, REFERENCE_DATA, SETTLE, claim

PRICE_FEN = 9_753_186  # 97531.86 yuan: the confidential settlement price
ID_NUMBER = "11010119830307451X"
NAME = "Sentinel Qiuyue"
PSN = "P-SENTINEL"


def forms() -> list[bytes]:
    """Every way the sentinels could be written: yuan with and without decimals, fen, packed."""
    text = [
        "97531.86",
        "97531.9",
        "97531",
        "9753186",
        "97,531.86",
        "0x94d1a2",
        ID_NUMBER,
        ID_NUMBER.lower(),
        NAME,
        NAME.upper(),
        NAME.lower(),
    ]
    packed = [
        struct.pack(">q", PRICE_FEN),
        struct.pack("<q", PRICE_FEN),
        struct.pack(">i", PRICE_FEN),
        struct.pack("<i", PRICE_FEN),
    ]
    encoded = [value.encode(encoding) for value in text for encoding in ("utf-8", "utf-16-le")]
    return encoded + packed


def found_in(blob: bytes) -> list[bytes]:
    return [form for form in forms() if form in blob]


async def every_value(database_url: str) -> list[tuple[str, str, Any]]:
    engine = create_engine(database_url)
    values: list[tuple[str, str, Any]] = []
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            for name in names:
                table = await connection.run_sync(lambda sync, name=name: Table(name, MetaData(), autoload_with=sync))
                for row in (await connection.execute(select(table))).mappings():
                    values.extend((name, column, value) for column, value in row.items())
    finally:
        await engine.dispose()
    return values


def as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


async def test_no_sentinel_is_written_anywhere_in_clear(
    service: Service, caplog: pytest.LogCaptureFixture, backend: str
) -> None:
    caplog.set_level(logging.DEBUG)
    document = copy.deepcopy(REFERENCE_DATA)
    document["formulary"]["commercial"][0]["settlement_price"] = "97531.86"
    document["people"].append(
        {"psn_no": PSN, "id_number": ID_NUMBER, "name": NAME, "insurance_type": "employee", "region": "310100"}
    )
    document["effective_from"] = "2026-02-01"  # a new version of the formulary, with the sentinel price
    document["plans"] = []
    assert (await service.load(document))["__typename"] == "LoadSummary"

    errors: list[str] = []
    for serial in ("L-1", "L-2"):
        car_t = claim(
            serial,
            person=PSN,
            service_date="2026-03-01",
            diagnoses=("C83.3",),
            lines=[{"drug": CAR_T, "quantity": 1, "unitPrice": "120000.00"}],
        )
        settled = (await service.graphql(SETTLE, {"claim": car_t}))["settle"]
        assert settled["__typename"] == "Settlement", settled
    insurer = service.as_(service.tokens.payer("insurer", "INS-A"))
    statement = await insurer.graphql(
        'query { rebateStatement(start: "2026-01-01", end: "2026-12-31") { drug amount } }'
    )
    assert statement["rebateStatement"][0]["amount"] == "44936.28"  # 2 x (120000.00 - 97531.86): it works
    for caller, query in (
        (service, f'query {{ person(psnNo: "{PSN}") {{ name idNumber }} }}'),
        (
            service.as_(service.tokens.supervisor()),
            'query { commercialCatalogue(region: "310100", onDate: "2026-03-01") { settlementPrice { value } } }',
        ),
        (
            service.as_(service.tokens.payer("insurer", "INS-B")),
            'query { rebateStatement(start: "2026-01-01", end: "2026-12-31", insurer: "INS-A") { amount } }',
        ),
        (service, f'query {{ personByIdNumber(idNumber: "{ID_NUMBER}") {{ idNumber }} }}'),
    ):
        body = (await caller.post(query)).json()
        errors.extend(error["message"] for error in body.get("errors") or [])
    refused = await service.load(
        {
            "people": [
                {
                    "psn_no": "P-TWIN",
                    "id_number": ID_NUMBER,
                    "name": NAME,
                    "insurance_type": "employee",
                    "region": "310100",
                }
            ]
        }
    )
    errors.append(refused["message"])

    leaks = [
        (table, column) for table, column, value in await every_value(service.database_url) if found_in(as_bytes(value))
    ]
    assert leaks == []
    if backend == "sqlite":
        path = Path(service.database_url.split("///", 1)[1])
        for file in (path, path.with_name(path.name + "-wal")):
            if file.exists():
                assert found_in(file.read_bytes()) == [], file
    assert [record.getMessage() for record in caplog.records if found_in(record.getMessage().encode())] == []
    assert errors and [message for message in errors if found_in(message.encode())] == []
