"""The service's log says what happened and nothing personal.

Canary ID numbers and names go into every argument position the schema has, as literals and as
variables, in right and wrong types, in unknown fields and arguments, aliases and operation
names, in tokens, in `X-Request-ID`, in query strings and paths, and into the messages of
unexpected failures; the log, captured through the service's own set-up (`api.logs.install`,
at DEBUG), holds none of them in any written form, no traceback, and for every request one line
with its request id, role, org, operation, outcome and latency. (The database and the answers'
error messages are searched for sentinels in test_leaks.py; this is the log's side.)
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.exc import IntegrityError

from api.logs import get_logger, install
from api.settings import LogFormat, Settings
from tests.api.conftest import Service
from tests.api.documents import HOSPITAL, MEMBER, PRE_SETTLE, REGION, REVERSE, SETTLE, claim

ID_NUMBER = "110101199003070CANARY"
NAME = "金丝雀测试"
NAME_LATIN = "CANARYNAME"
CANARIES = (ID_NUMBER, NAME, NAME_LATIN)
PSN = "P-CANARY"
ANY = object()
"""An expected field that must be present and not empty, whatever its value."""


def forms() -> list[str]:
    """Every way a canary could be written into a line: as is, in other cases, JSON-escaped."""
    written = set()
    for value in CANARIES:
        for variant in (value, value.lower(), value.upper(), value[:12]):
            written.update({variant, json.dumps(variant)[1:-1], json.dumps(variant, ensure_ascii=False)[1:-1]})
    return sorted(written)


@dataclass(frozen=True)
class Expected:
    role: Any
    org: Any
    operation: Any
    outcome: Any
    status: int = 200


HOSPITAL_CALL = ("hospital", HOSPITAL)


@pytest.fixture
def log_text(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """What `settle serve` would write on stderr, at DEBUG."""
    caplog.set_level(logging.DEBUG)  # restored after the test
    stream = io.StringIO()
    handler = install(Settings(log_level="DEBUG"), stream)
    try:
        yield stream
    finally:
        logging.getLogger().removeHandler(handler)


class Caller:
    """Sends requests, each with a request id of its own, and remembers what its line must say."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.expected: dict[str, Expected] = {}

    async def graphql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        expect: Expected,
        url: str = "/graphql",
    ) -> dict[str, Any]:
        request_id = str(uuid.uuid4())
        headers = {"x-request-id": request_id, "authorization": f"Bearer {token or self.service.token}"}
        response = await self.service.client.post(url, json={"query": query, "variables": variables}, headers=headers)
        assert response.status_code == expect.status, response.text
        assert response.headers["x-request-id"] == request_id
        self.expected[request_id] = expect
        body: dict[str, Any] = response.json()
        return body

    async def raw(self, method: str, url: str, *, expect: Expected, **kwargs: Any) -> httpx.Response:
        request_id = str(uuid.uuid4())
        headers = {"x-request-id": request_id, **kwargs.pop("headers", {})}
        response = await self.service.client.request(method, url, headers=headers, **kwargs)
        assert response.status_code == expect.status, response.text
        self.expected[request_id] = expect
        return response


def hospital(operation: str, outcome: Any) -> Expected:
    return Expected("hospital", HOSPITAL, operation, outcome)


async def every_argument_position(caller: Caller) -> None:
    """Canaries in each argument of each query and mutation, right and wrong types."""
    for query, variables, expect in [
        (f'{{ personByIdNumber(idNumber: "{ID_NUMBER}") {{ name }} }}', None, hospital("query personByIdNumber", "OK")),
        (
            "query($id: String!) { personByIdNumber(idNumber: $id) { name psnNo } }",
            {"id": ID_NUMBER},
            hospital("query personByIdNumber", "OK"),
        ),
        (f'{{ person(psnNo: "{NAME}") {{ name }} }}', None, hospital("query person", "OK")),
        ("query($p: String!) { person(psnNo: $p) { name } }", {"p": NAME}, hospital("query person", "OK")),
        (
            "query($n: Int!) { settlements(first: $n) { edges { cursor } } }",
            {"n": ID_NUMBER},
            hospital("query settlements", "PAGE_SIZE_INVALID"),
        ),
        (
            f'{{ settlements(first: "{ID_NUMBER}") {{ edges {{ cursor }} }} }}',
            None,
            hospital("query settlements", "PAGE_SIZE_INVALID"),
        ),
        (
            f'{{ settlements(first: 1, after: "{ID_NUMBER}", filter: {{institution: "{NAME}", '
            f'drug: "{ID_NUMBER}"}}) {{ edges {{ cursor }} }} }}',
            None,
            hospital("query settlements", ANY),
        ),
        (f"{{ {NAME_LATIN} }}", None, hospital("query", "GRAPHQL_VALIDATION_FAILED")),
        (
            f'{{ person(psnNo: "{MEMBER}", {NAME_LATIN}: "{ID_NUMBER}") {{ name }} }}',
            None,
            hospital("query person", "GRAPHQL_VALIDATION_FAILED"),
        ),
        (
            f'query {NAME_LATIN} {{ {NAME_LATIN}: person(psnNo: "{ID_NUMBER}") {{ name }} }}',
            None,
            hospital("query person", "OK"),
        ),
        (f'{{ person(psnNo: "{PSN}") {{ name idNumber }} }}', None, hospital("query person", "FORBIDDEN")),
        (
            f'{{ settlementBySerial(institution: "{HOSPITAL}", serial: "{ID_NUMBER}") {{ id }} }}',
            None,
            hospital("query settlementBySerial", "OK"),
        ),
        (f'{{ traceCode(code: "{ID_NUMBER}") {{ kind }} }}', None, hospital("query traceCode", ANY)),
        (f'{{ institution(code: "{NAME}") {{ code }} }}', None, hospital("query institution", "OK")),
        (
            f'{{ institutionRisk(institution: "{NAME}", start: "{ID_NUMBER}", end: "2026-12-31") {{ settlements }} }}',
            None,
            hospital("query institutionRisk", "GRAPHQL_VALIDATION_FAILED"),
        ),
        (
            'query($d: Date!) { plans(region: "310100", onDate: $d) { code } }',
            {"d": ID_NUMBER},
            hospital("query plans", "GRAPHQL_VALIDATION_FAILED"),
        ),
    ]:
        await caller.graphql(query, variables, expect=expect)

    def edited(**changes: Any) -> dict[str, Any]:
        variables = claim(f"LOG-{uuid.uuid4().hex[:8]}")
        for key, value in changes.items():
            if key.startswith("line_"):
                variables["lines"][0][key.removeprefix("line_")] = value
            else:
                variables[key] = value
        return variables

    for variables, outcome in [
        (edited(person=ID_NUMBER), "NOT_FOUND"),
        (edited(institution=NAME), "NOT_FOUND"),
        (edited(diagnoses=[NAME, ID_NUMBER]), ANY),
        (edited(drgGroup=NAME, prescribingHospital=ID_NUMBER), ANY),
        (edited(line_drug=ID_NUMBER), "UNKNOWN_DRUG"),
        (edited(line_unitPrice=ID_NUMBER), "INVALID_AMOUNT"),
        (edited(line_traceCodes=[ID_NUMBER, NAME]), "TRACE_CODE_INVALID"),
        (edited(line_prescriptionId=NAME), ANY),
        (edited(line_quantity=ID_NUMBER), "BAD_USER_INPUT"),
        (edited(serviceDate=ID_NUMBER), "BAD_USER_INPUT"),
        (edited(visit=NAME_LATIN), "BAD_USER_INPUT"),
        (edited(**{NAME_LATIN: ID_NUMBER}), "BAD_USER_INPUT"),
    ]:
        await caller.graphql(SETTLE, {"claim": variables}, expect=hospital("mutation settle", outcome))
        await caller.graphql(PRE_SETTLE, {"claim": variables}, expect=hospital("mutation preSettle", outcome))
    literal = (
        f'mutation {{ settle(claim: {{institution: "{HOSPITAL}", serial: "{NAME}", person: "{ID_NUMBER}", '
        f'serviceDate: "2026-03-15", visit: INPATIENT, diagnoses: ["{NAME}"], lines: [{{drug: "{ID_NUMBER}", '
        f'quantity: 1, unitPrice: "{ID_NUMBER}", traceCodes: ["{ID_NUMBER}"]}}]}}) {{ __typename }} }}'
    )
    await caller.graphql(literal, expect=hospital("mutation settle", ANY))

    settled = claim(ID_NUMBER, person=PSN)  # a settlement under a canary serial, of the canary person
    body = await caller.graphql(SETTLE, {"claim": settled}, expect=hospital("mutation settle", "OK"))
    assert body["data"]["settle"]["__typename"] == "Settlement", body
    reversal = {"institution": HOSPITAL, "serial": ID_NUMBER, "reason": f"{NAME} {ID_NUMBER}"}
    body = await caller.graphql(REVERSE, {"input": reversal}, expect=hospital("mutation reverseSettlement", "OK"))
    assert body["data"]["reverseSettlement"]["__typename"] == "Reversal", body
    await caller.graphql(
        REVERSE,
        {"input": {"id": ID_NUMBER, "reason": NAME}},
        expect=hospital("mutation reverseSettlement", "NOT_FOUND"),
    )

    first = claim("LOG-FIRST", person=PSN)
    again = claim("LOG-AGAIN", person=PSN)
    again["lines"][0]["traceCodes"] = first["lines"][0]["traceCodes"]  # a package sold twice: an anomaly
    await caller.graphql(SETTLE, {"claim": first}, expect=hospital("mutation settle", "OK"))
    await caller.graphql(SETTLE, {"claim": again}, expect=hospital("mutation settle", "TRACE_CODE_ALREADY_SOLD"))
    anomalies = await caller.graphql(
        "{ anomalies(first: 10) { edges { node { id } } } }", expect=hospital("query anomalies", "OK")
    )
    anomaly_id = anomalies["data"]["anomalies"]["edges"][0]["node"]["id"]
    handle = "mutation($i: HandleAnomalyInput!) { handleAnomaly(input: $i) { __typename ... on Error { code } } }"
    for anomaly, outcome in ((anomaly_id, "OK"), (ID_NUMBER, "NOT_FOUND")):
        note = {"id": anomaly, "status": "EXPLAINED", "note": f"{NAME} {ID_NUMBER}"}
        await caller.graphql(handle, {"i": note}, expect=hospital("mutation handleAnomaly", outcome))
    prescription = {"prescriptionId": ID_NUMBER, "person": NAME, "drugs": [ID_NUMBER], "issuedOn": "2026-03-01"}
    await caller.graphql(
        "mutation($p: PrescriptionInput!) { recordPrescription(input: $p) { __typename } }",
        {"p": prescription},
        expect=hospital("mutation recordPrescription", ANY),
    )

    admin = caller.service.tokens.admin
    as_admin = Expected("admin", "NHSA-OPS", "mutation grantPrepayment", ANY)
    await caller.graphql(
        f'mutation {{ grantPrepayment(reference: "{ID_NUMBER}", payer: "{NAME}", institution: "{HOSPITAL}", '
        f'amount: "{ID_NUMBER}", note: "{NAME}") {{ __typename }} }}',
        token=admin,
        expect=as_admin,
    )
    load = "mutation($d: JSON!) { loadDocument(document: $d) { __typename ... on Error { code } } }"
    malformed = {"people": [{"psn_no": NAME, "id_number": ID_NUMBER, "name": NAME, "region": ID_NUMBER}]}
    await caller.graphql(
        load, {"d": malformed}, token=admin, expect=Expected("admin", "NHSA-OPS", "mutation loadDocument", ANY)
    )
    supervisor = caller.service.tokens.supervisor()
    await caller.graphql(
        "query($id: String!) { personByIdNumber(idNumber: $id) { name idNumber } }",
        {"id": ID_NUMBER},
        token=supervisor,
        expect=Expected("supervisor", "NHSA-SUPERVISION", "query personByIdNumber", "OK"),
    )


async def the_edges_of_http(caller: Caller) -> list[str]:
    """Tokens, request ids, query strings and paths, bodies GraphQL never parses. Returns the
    request ids the service chose instead of a client's unusable one."""
    service = caller.service
    probe = {"query": "{ __typename }"}
    refused = Expected(None, None, None, "UNAUTHENTICATED", 401)
    impostor = jwt.encode(
        service.tokens.claims("hospital", NAME, sub=ID_NUMBER, jti=ID_NUMBER),
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": NAME_LATIN},
    )
    for authorization in (f"Bearer {ID_NUMBER}", f"Bearer {impostor}", f"{NAME_LATIN} {ID_NUMBER}"):
        await caller.raw("POST", "/graphql", json=probe, headers={"authorization": authorization}, expect=refused)
    await caller.raw(
        "POST", "/graphql", json=probe, headers={"authorization": f"Bearer {NAME}".encode()}, expect=refused
    )
    await caller.raw(
        "POST",
        f"/graphql?idNumber={ID_NUMBER}&name={NAME}",
        json=probe,
        headers={"authorization": f"Bearer {service.token}"},
        expect=hospital("query __typename", "OK"),
    )
    exported = await caller.raw(
        "GET",
        f"/exports/trace-code.csv?code={ID_NUMBER}",
        headers={"authorization": f"Bearer {service.token}"},
        expect=Expected("hospital", HOSPITAL, None, "OK"),
    )
    assert exported.text.startswith('\ufeff"code",')  # the BOM, then the quoted header
    await caller.raw("GET", f"/graphql/{ID_NUMBER}/{NAME}", expect=Expected(None, None, None, "NOT_FOUND", 404))
    await caller.raw(
        "POST",
        "/graphql",
        content=f'{{"query": "{{ person(psnNo: \\"{ID_NUMBER}',
        headers={"authorization": f"Bearer {service.token}", "content-type": "application/json"},
        expect=Expected("hospital", HOSPITAL, None, ANY, 400),
    )

    chosen = []
    for request_id in (ID_NUMBER, NAME_LATIN, "110101199003070123", f"{ID_NUMBER}-{uuid.uuid4()}"):
        response = await service.client.post(
            "/graphql", json=probe, headers={"x-request-id": request_id, "authorization": f"Bearer {service.token}"}
        )
        assert response.status_code == 200
        assert response.headers["x-request-id"] != request_id  # not kept: a new one, echoed
        chosen.append(response.headers["x-request-id"])
        caller.expected[response.headers["x-request-id"]] = hospital("query __typename", "OK")
    return chosen


async def unexpected_failures(caller: Caller, monkeypatch: pytest.MonkeyPatch) -> int:
    """A bug and a database error whose messages quote canaries, in a resolver and in an export."""
    from api.services import queries, supervision

    async def bug(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"person {ID_NUMBER} named {NAME} broke this")

    async def database_error(*args: object, **kwargs: object) -> None:
        raise IntegrityError(
            "INSERT INTO people (id_number, name) VALUES ($1, $2)",
            {"id_number": ID_NUMBER, "name": NAME},
            Exception(f"duplicate key: Key (id_number)=({ID_NUMBER}) already exists"),
        )

    monkeypatch.setattr(queries, "institution", bug)
    body = await caller.graphql(
        f'{{ institution(code: "{NAME}") {{ code }} }}', expect=hospital("query institution", "INTERNAL_ERROR")
    )
    assert [error["message"] for error in body["errors"]] == ["internal error: the event is logged"]
    monkeypatch.setattr(queries, "institution", database_error)
    await caller.graphql(
        '{ institution(code: "H310003") { code } }', expect=hospital("query institution", "INTERNAL_ERROR")
    )

    async def failing_stream(*args: object, **kwargs: object) -> AsyncIterator[dict[str, Any]]:
        await database_error()
        yield {}

    monkeypatch.setattr(supervision, "stream_code_history", failing_stream)
    failed = await caller.raw(
        "GET",
        f"/exports/trace-code.csv?code={ID_NUMBER}",
        headers={"authorization": f"Bearer {caller.service.token}"},
        expect=Expected("hospital", HOSPITAL, None, "INTERNAL_ERROR", 500),
    )
    assert failed.json()["errors"][0]["extensions"]["code"] == "INTERNAL_ERROR"
    return 3


def matches(value: Any, expected: Any) -> bool:
    return bool(value) if expected is ANY else value == expected


async def test_the_log_holds_no_personal_value_and_a_line_for_every_request(
    service: Service, log_text: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    person = {"psn_no": PSN, "id_number": ID_NUMBER, "name": NAME, "insurance_type": "employee", "region": REGION}
    assert (await service.load({"people": [person]}))["__typename"] == "LoadSummary"
    caller = Caller(service)

    await every_argument_position(caller)
    chosen = await the_edges_of_http(caller)
    failures = await unexpected_failures(caller, monkeypatch)

    text = log_text.getvalue()
    assert [form for form in forms() if form in text] == []
    assert "Traceback" not in text
    lines = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    requests = {line["request_id"]: line for line in lines if line["event"] == "request"}
    for request_id, expect in caller.expected.items():
        line = requests[request_id]
        assert line["status"] == expect.status, line
        assert isinstance(line["latency_ms"], float) and line["latency_ms"] >= 0
        assert (
            line["source"] and line["method"] and line["path"] in ("/graphql", "/exports/trace-code.csv", "(unmatched)")
        )
        for field in ("role", "org", "operation", "outcome"):
            assert matches(line[field], getattr(expect, field)), (field, line, expect)
    assert set(chosen) <= set(requests)
    failed = [line for line in lines if line["event"] == "unexpected error"]
    assert len(failed) == failures
    assert {line["error"] for line in failed} == {"RuntimeError", "sqlalchemy.exc.IntegrityError(Exception)"}
    assert all(line["frames"] and line["request_id"] in requests for line in failed)
    assert all("frames" not in line for line in lines if line["event"] != "unexpected error")


@pytest.mark.parametrize("log_format", list(LogFormat))
def test_an_exception_logged_by_any_logger_is_written_as_its_classes_and_frames_without_its_message(
    caplog: pytest.LogCaptureFixture, log_format: LogFormat
) -> None:
    caplog.set_level(logging.INFO)
    stream = io.StringIO()
    handler = install(Settings(log_format=log_format), stream)
    try:
        try:
            try:
                raise KeyError(ID_NUMBER)
            except KeyError as error:
                raise ValueError(f"{NAME} is not valid") from error
        except ValueError:
            logging.getLogger("some.library").exception("it failed")
            get_logger("settle.test").exception("it failed too")
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()

    assert [form for form in forms() if form in text] == [] and "Traceback" not in text
    assert text.count("ValueError") == 2 and text.count("KeyError") == 2
    if log_format is LogFormat.JSON:
        lines = [json.loads(line) for line in text.splitlines()]
        assert [(line["error"], line["causes"]) for line in lines] == [("ValueError", ["KeyError"])] * 2
        assert all(line["frames"][-1].startswith("tests/api/test_logs.py:") for line in lines)
