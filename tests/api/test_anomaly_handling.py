"""Handling an anomaly, step by step, through the API: its institution explains it, a supervisor
of its region confirms or dismisses it with a reason; every step is kept as its own record (who:
role, organisation and person, each once; when), nothing overwrites an earlier note, a decision
is final, every refusal is typed and writes nothing, and the risk summary counts confirmed and
open anomalies apart and ignores dismissed ones.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select

from adjudication.anomaly_handling import EXPLANATIONS_MAX
from api.db import models
from api.db.session import create_engine, create_sessionmaker
from tests.api.conftest import Service
from tests.api.documents import EMPLOYEE, GENERIC_A, HOSPITAL, REGION, SECOND_REGION, SETTLE, claim
from tests.conftest import ADMIN_URL, _asyncpg_dsn

SUPERVISION = "NHSA-SUPERVISION"
CASHIER = "cashier-wang"
INSPECTOR = "inspector-li"
STEP_FIELDS = "kind note role organisation person at"
ANOMALIES = f"""query($f: AnomalyFilter) {{ anomalies(first: 100, filter: $f) {{ edges {{ node {{
  id code status handledBy handledAt note steps {{ {STEP_FIELDS} }} }} }} }} }}"""
HANDLE = f"""mutation($i: HandleAnomalyInput!) {{ handleAnomaly(input: $i) {{ __typename
  ... on Anomaly {{ id status steps {{ {STEP_FIELDS} }} }}
  ... on Error {{ code field message }} }} }}"""
RISK = """query($i: String!) { institutionRisk(institution: $i, start: "2000-01-01", end: "2099-12-31") {
  settlements anomalies openAnomalies explainedAnomalies confirmedAnomalies anomaliesPerHundredSettlements
  byKind { name count } bySeverity { name count } } }"""


@dataclass
class Handlers:
    """The hospital's cashier, the region's inspector, and the anomalies of one flagged line."""

    service: Service
    cashier: Service
    inspector: Service
    anomalies: dict[str, str]  # the malformed code -> its anomaly's id


@pytest.fixture
async def handlers(service: Service) -> AsyncIterator[Handlers]:
    """A line whose four codes are malformed, settled at a hospital that accepts and flags them:
    four anomalies of the hospital, in the supervisor's region.
    """
    await service.load(
        {"trace_policies": [{"institution": HOSPITAL, "drug": GENERIC_A, "invalid_codes": "accept_and_flag"}]}
    )
    scanned = ["BAD-A", "BAD-B", "BAD-C", "BAD-D"]
    line = {"drug": GENERIC_A, "quantity": len(scanned), "unitPrice": "250.00", "traceCodes": scanned}
    request = claim("H-FLAGS", person=EMPLOYEE, visit="OUTPATIENT", diagnoses=("I10",), lines=[line])
    settled = (await service.graphql(SETTLE, {"claim": request}))["settle"]
    assert settled["__typename"] == "Settlement", settled
    cashier = service.as_(service.tokens.mint("hospital", HOSPITAL, sub=CASHIER))
    inspector = service.as_(service.tokens.mint("supervisor", SUPERVISION, sub=INSPECTOR, regions=[REGION]))
    edges = (await inspector.graphql(ANOMALIES))["anomalies"]["edges"]
    found = {edge["node"]["code"]: edge["node"]["id"] for edge in edges}
    assert set(scanned) <= set(found), found
    yield Handlers(service, cashier, inspector, {code: found[code] for code in scanned})


async def take(caller: Service, anomaly_id: str, status: str, note: str) -> dict[str, Any]:
    result: dict[str, Any] = (await caller.graphql(HANDLE, {"i": {"id": anomaly_id, "status": status, "note": note}}))[
        "handleAnomaly"
    ]
    return result


async def seen(caller: Service, anomaly_id: str) -> dict[str, Any]:
    """The anomaly as `caller` reads it through `anomalies`."""
    edges = (await caller.graphql(ANOMALIES))["anomalies"]["edges"]
    (node,) = [edge["node"] for edge in edges if edge["node"]["id"] == anomaly_id]
    return dict(node)


def who(step: dict[str, Any]) -> tuple[str, str, str, str]:
    return step["kind"], step["role"], step["organisation"], step["person"]


async def audited(service: Service, outcome: str) -> int:
    engine = create_engine(service.database_url)
    log = models.AuditEntry.__table__
    try:
        async with create_sessionmaker(engine)() as session:
            statement = select(func.count()).where(log.c.action == "handleAnomaly", log.c.outcome == outcome)
            return int((await session.execute(statement)).scalar_one())
    finally:
        await engine.dispose()


async def test_the_institutions_explanations_are_still_there_after_the_supervisors_decision(
    handlers: Handlers,
) -> None:
    anomaly = handlers.anomalies["BAD-A"]

    first = await take(handlers.cashier, anomaly, "EXPLAINED", "扫码枪重复读取")
    second = await take(handlers.cashier, anomaly, "EXPLAINED", "已退药重扫，附退药单")
    decided = await take(handlers.inspector, anomaly, "CONFIRMED", "退药单与追溯码记录不符")
    by_inspector = await seen(handlers.inspector, anomaly)
    by_cashier = await seen(handlers.cashier, anomaly)

    assert (first["status"], second["status"], decided["status"]) == ("EXPLAINED", "EXPLAINED", "CONFIRMED")
    assert [step["note"] for step in first["steps"]] == ["扫码枪重复读取"]
    steps = by_inspector["steps"]
    assert [(step["kind"], step["note"]) for step in steps] == [
        ("EXPLAINED", "扫码枪重复读取"),
        ("EXPLAINED", "已退药重扫，附退药单"),
        ("CONFIRMED", "退药单与追溯码记录不符"),
    ]
    assert steps == decided["steps"] and by_cashier["steps"] == steps  # the institution sees the decision too
    assert [step["at"] for step in steps] == sorted(step["at"] for step in steps)
    assert by_inspector["status"] == by_cashier["status"] == "CONFIRMED"
    # the deprecated fields read the latest step, as they did before
    assert by_inspector["note"] == "退药单与追溯码记录不符" and by_inspector["handledAt"] == steps[-1]["at"]
    assert by_inspector["handledBy"] == f"supervisor:{SUPERVISION}:{INSPECTOR}"


async def test_who_took_a_step_is_recorded_once_each_as_role_organisation_and_person(handlers: Handlers) -> None:
    anomaly = handlers.anomalies["BAD-A"]
    await take(handlers.cashier, anomaly, "EXPLAINED", "the scanner read a label twice")
    await take(handlers.inspector, anomaly, "DISMISSED", "the label was a duplicate print")

    steps = (await seen(handlers.inspector, anomaly))["steps"]

    assert [who(step) for step in steps] == [
        ("EXPLAINED", "hospital", HOSPITAL, CASHIER),
        ("DISMISSED", "supervisor", SUPERVISION, INSPECTOR),
    ]
    assert all(set(step) == {"kind", "note", "role", "organisation", "person", "at"} for step in steps)


async def test_a_supervisor_dismisses_an_open_anomaly_with_a_reason_and_the_decision_is_final(
    handlers: Handlers,
) -> None:
    anomaly = handlers.anomalies["BAD-B"]
    colleague = handlers.service.as_(handlers.service.tokens.supervisor(REGION, SECOND_REGION))

    dismissed = await take(handlers.inspector, anomaly, "DISMISSED", "a test scan of the training till")
    again = [
        await take(handlers.inspector, anomaly, "DISMISSED", "once more"),
        await take(colleague, anomaly, "CONFIRMED", "I disagree"),
        await take(handlers.cashier, anomaly, "EXPLAINED", "more detail"),
    ]
    listed = (await handlers.inspector.graphql(ANOMALIES, {"f": {"status": "DISMISSED"}}))["anomalies"]["edges"]

    assert dismissed["status"] == "DISMISSED"
    assert [(step["kind"], step["note"]) for step in dismissed["steps"]] == [
        ("DISMISSED", "a test scan of the training till")
    ]
    assert [(refusal["__typename"], refusal["code"], refusal["field"]) for refusal in again] == [
        ("AnomalyDecided", "ANOMALY_DECIDED", "input.id")
    ] * 3
    assert [edge["node"]["id"] for edge in listed] == [anomaly]
    assert (await seen(handlers.inspector, anomaly))["steps"] == dismissed["steps"]


REFUSALS = [
    ("cashier", "CONFIRMED", "we confirm it ourselves", "Forbidden", "FORBIDDEN", "input.status"),
    ("cashier", "DISMISSED", "nothing to see", "Forbidden", "FORBIDDEN", "input.status"),
    ("inspector", "EXPLAINED", "the supervisor explains", "Forbidden", "FORBIDDEN", "input.status"),
    ("inspector", "DISMISSED", "   ", "InvalidInput", "MISSING_FIELD", "input.note"),
    ("cashier", "EXPLAINED", "", "InvalidInput", "MISSING_FIELD", "input.note"),
    ("inspector", "OPEN", "reopen it", "InvalidInput", "INVALID_FIELD", "input.status"),
    ("cashier", "EXPLAINED", "=" * 1001, "InvalidInput", "INVALID_FIELD", "input.note"),
    ("other region's supervisor", "CONFIRMED", "out of my region", "NotFound", "NOT_FOUND", "input.id"),
    ("another institution", "EXPLAINED", "not ours", "NotFound", "NOT_FOUND", "input.id"),
    ("insurer", "EXPLAINED", "an insurer's view", "Forbidden", "FORBIDDEN", "input"),
    ("admin", "DISMISSED", "an operator's view", "Forbidden", "FORBIDDEN", "input"),
]


@pytest.mark.parametrize(
    ("caller", "status", "note", "typename", "code", "field"),
    REFUSALS,
    ids=[f"{caller} {status} {code}" for caller, status, _, _, code, _ in REFUSALS],
)
async def test_a_refused_step_is_typed_and_writes_nothing(
    handlers: Handlers, caller: str, status: str, note: str, typename: str, code: str, field: str
) -> None:
    tokens = handlers.service.tokens
    callers = {
        "cashier": handlers.cashier,
        "inspector": handlers.inspector,
        "other region's supervisor": handlers.service.as_(tokens.supervisor(SECOND_REGION)),
        "another institution": handlers.service.as_(tokens.pharmacy),
        "insurer": handlers.service.as_(tokens.payer("insurer", "INS-A")),
        "admin": handlers.service.as_(tokens.admin),
    }
    anomaly = handlers.anomalies["BAD-C"]

    refused = await take(callers[caller], anomaly, status, note)

    assert (refused["__typename"], refused["code"], refused["field"]) == (typename, code, field)
    after = await seen(handlers.inspector, anomaly)
    assert (after["status"], after["steps"], after["note"], after["handledBy"]) == ("OPEN", [], None, None)
    assert await audited(handlers.service, "allowed") == 0
    assert await audited(handlers.service, "denied") == (1 if typename == "Forbidden" else 0)


async def test_an_institution_explains_an_anomaly_at_most_twenty_times(handlers: Handlers) -> None:
    anomaly = handlers.anomalies["BAD-A"]
    for index in range(EXPLANATIONS_MAX):
        assert (await take(handlers.cashier, anomaly, "EXPLAINED", f"detail {index}"))["__typename"] == "Anomaly"

    refused = await take(handlers.cashier, anomaly, "EXPLAINED", "one more")
    decided = await take(handlers.inspector, anomaly, "CONFIRMED", "read all twenty")

    assert (refused["__typename"], refused["code"], refused["field"]) == ("InvalidInput", "INVALID_FIELD", "input.id")
    assert [step["note"] for step in decided["steps"]] == [
        *(f"detail {index}" for index in range(EXPLANATIONS_MAX)),
        "read all twenty",
    ]


async def test_each_step_is_audited_in_its_own_transaction(handlers: Handlers) -> None:
    anomaly = handlers.anomalies["BAD-A"]
    await take(handlers.cashier, anomaly, "EXPLAINED", "a first explanation")
    await take(handlers.inspector, anomaly, "CONFIRMED", "not convincing")
    await take(handlers.inspector, anomaly, "DISMISSED", "changed my mind")  # refused: decided

    assert await audited(handlers.service, "allowed") == 2


async def test_two_supervisors_deciding_at_once_keep_one_decision_and_tell_the_other(handlers: Handlers) -> None:
    anomaly = handlers.anomalies["BAD-D"]
    colleague = handlers.service.as_(handlers.service.tokens.supervisor(REGION))

    results = await asyncio.gather(
        take(handlers.inspector, anomaly, "CONFIRMED", "confirmed by one"),
        take(colleague, anomaly, "DISMISSED", "dismissed by the other"),
    )

    assert sorted(result["__typename"] for result in results) == ["Anomaly", "AnomalyDecided"]
    (won,) = [result for result in results if result["__typename"] == "Anomaly"]
    assert (await seen(handlers.inspector, anomaly))["steps"] == won["steps"] and len(won["steps"]) == 1


async def risk(caller: Service) -> dict[str, Any]:
    summary: dict[str, Any] = (await caller.graphql(RISK, {"i": HOSPITAL}))["institutionRisk"]
    return summary


async def risk_file(caller: Service) -> list[dict[str, str]]:
    response = await caller.client.get(
        "/exports/risk.csv", params={"institution": HOSPITAL}, headers={"authorization": f"Bearer {caller.token}"}
    )
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))


def counts(summary: dict[str, Any]) -> tuple[int, int, int, int]:
    return (
        summary["anomalies"],
        summary["openAnomalies"],
        summary["explainedAnomalies"],
        summary["confirmedAnomalies"],
    )


async def test_the_risk_summary_counts_open_explained_and_confirmed_apart_and_ignores_dismissed_ones(
    handlers: Handlers,
) -> None:
    anomalies = handlers.anomalies
    untouched = await risk(handlers.inspector)
    await take(handlers.cashier, anomalies["BAD-A"], "EXPLAINED", "explained, awaiting a decision")
    await take(handlers.cashier, anomalies["BAD-B"], "EXPLAINED", "explained, then confirmed")
    await take(handlers.inspector, anomalies["BAD-B"], "CONFIRMED", "the explanation does not hold")
    before = await risk(handlers.inspector)
    await take(handlers.inspector, anomalies["BAD-C"], "DISMISSED", "a test scan")
    after = await risk(handlers.inspector)
    rows = await risk_file(handlers.inspector)

    assert counts(untouched) == (4, 4, 0, 0)
    assert counts(before) == (4, 2, 1, 1)
    assert counts(after) == (3, 1, 1, 1)  # BAD-C counts nowhere: not in anomalies, open or by kind
    settlements = after["settlements"]
    assert settlements >= 1 and after["anomaliesPerHundredSettlements"] == round(300 / settlements, 2)
    assert after["byKind"] == [{"name": "MALFORMED_CODE", "count": 3}]
    assert sum(severity["count"] for severity in after["bySeverity"]) == 3
    assert [(r["kind"], r["anomalies"], r["open"], r["explained"], r["confirmed"]) for r in rows] == [
        ("MALFORMED_CODE", "3", "1", "1", "1")
    ]


async def test_a_kind_whose_anomalies_were_all_dismissed_leaves_the_risk_summary(handlers: Handlers) -> None:
    for anomaly in handlers.anomalies.values():
        await take(handlers.inspector, anomaly, "DISMISSED", "a training till's test scans")

    summary = await risk(handlers.inspector)

    assert counts(summary) == (0, 0, 0, 0)
    assert (summary["byKind"], summary["bySeverity"], summary["anomaliesPerHundredSettlements"]) == ([], [], 0.0)
    assert await risk_file(handlers.inspector) == []


async def export(caller: Service, path: str, params: dict[str, str] | None = None) -> list[dict[str, str]]:
    response = await caller.client.get(path, params=params, headers={"authorization": f"Bearer {caller.token}"})
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))


async def test_the_exports_show_the_latest_explanation_beside_the_decision_and_every_step_in_its_own_row(
    handlers: Handlers,
) -> None:
    anomaly = handlers.anomalies["BAD-A"]
    await take(handlers.cashier, anomaly, "EXPLAINED", "first: a double scan")
    await take(handlers.cashier, anomaly, "EXPLAINED", "second: the refund slip is attached")
    await take(handlers.inspector, anomaly, "DISMISSED", "the refund slip matches")

    for caller in (handlers.inspector, handlers.cashier):
        rows = {row["id"]: row for row in await export(caller, "/exports/anomalies.csv")}
        steps = await export(caller, "/exports/anomaly-steps.csv", {"status": "dismissed"})

        row = rows[anomaly]
        assert (row["status"], row["explanations"], row["explanation"]) == (
            "dismissed",
            "2",
            "second: the refund slip is attached",
        )
        assert (row["explained_by_organisation"], row["explained_by"]) == (HOSPITAL, CASHIER)
        assert (row["decision"], row["reason"], row["decided_by_organisation"], row["decided_by"]) == (
            "dismissed",
            "the refund slip matches",
            SUPERVISION,
            INSPECTOR,
        )
        assert row["explained_at"] <= row["decided_at"]
        untouched = rows[handlers.anomalies["BAD-B"]]
        assert [untouched[name] for name in ("status", "explanations", "explanation", "decision", "reason")] == [
            "open",
            "0",
            "",
            "",
            "",
        ]
        assert [
            (step["anomaly_id"], step["sequence"], step["step"], step["note"], step["role"], step["person"])
            for step in steps
        ] == [
            (anomaly, "1", "explained", "first: a double scan", "hospital", CASHIER),
            (anomaly, "2", "explained", "second: the refund slip is attached", "hospital", CASHIER),
            (anomaly, "3", "dismissed", "the refund slip matches", "supervisor", INSPECTOR),
        ]
        assert {step["status"] for step in steps} == {"dismissed"}


async def test_another_regions_supervisor_exports_none_of_the_steps(handlers: Handlers) -> None:
    await take(handlers.cashier, handlers.anomalies["BAD-A"], "EXPLAINED", "a double scan")
    elsewhere = handlers.service.as_(handlers.service.tokens.supervisor(SECOND_REGION))
    pharmacy = handlers.service.as_(handlers.service.tokens.pharmacy)

    assert await export(elsewhere, "/exports/anomaly-steps.csv") == []
    assert await export(pharmacy, "/exports/anomaly-steps.csv") == []
    assert len(await export(handlers.inspector, "/exports/anomaly-steps.csv")) == 1


async def test_on_postgresql_the_steps_are_append_only_and_an_anomaly_changes_only_by_a_step(
    handlers: Handlers, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("roles and triggers are PostgreSQL's")
    decided, undecided = handlers.anomalies["BAD-A"], handlers.anomalies["BAD-B"]
    await take(handlers.cashier, decided, "EXPLAINED", "a double scan")
    await take(handlers.inspector, decided, "CONFIRMED", "not convincing")
    await take(handlers.cashier, undecided, "EXPLAINED", "a double scan")
    step = (
        "INSERT INTO anomaly_steps (id, anomaly_id, sequence, kind, note, role, org, subject, taken_at) "
        "VALUES (gen_random_uuid(), $1, $2, $3, 'forged', 'supervisor', 'NHSA-SUPERVISION', 'nobody', now())"
    )
    app = await asyncpg.connect(_asyncpg_dsn(handlers.service.database_url))  # the application's own role
    try:
        for statement in ("UPDATE anomaly_steps SET note = 'rewritten'", "DELETE FROM anomaly_steps"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await app.execute(statement)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app.execute("TRUNCATE anomaly_steps")
        with pytest.raises(asyncpg.CheckViolationError, match="a decision is final"):
            await app.execute(step, decided, 3, "dismissed")
        with pytest.raises(asyncpg.CheckViolationError, match="latest step"):
            await app.execute("UPDATE anomalies SET status = 'dismissed' WHERE id = $1", undecided)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="only its status changes"):
            await app.execute("UPDATE anomalies SET severity = 'low', institution_code = 'H310001'")
    finally:
        await app.close()
    database = handlers.service.database_url.rsplit("/", 1)[1]
    owner = await asyncpg.connect(_asyncpg_dsn(ADMIN_URL).rsplit("/", 1)[0] + "/" + database)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await owner.execute("UPDATE anomaly_steps SET note = 'rewritten'")  # the trigger stops even the owner
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await owner.execute("TRUNCATE anomaly_steps")
    finally:
        await owner.close()

    assert [(step["kind"], step["note"]) for step in (await seen(handlers.inspector, decided))["steps"]] == [
        ("EXPLAINED", "a double scan"),
        ("CONFIRMED", "not convincing"),
    ]
    assert (await seen(handlers.inspector, undecided))["status"] == "EXPLAINED"
