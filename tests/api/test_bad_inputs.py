"""Every failure a client can cause is typed: none of the corpus's requests (tests/api/bad_inputs.py)
makes the service answer 500, masks its answer as an internal error, or writes a business row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from api.db import models
from api.db.session import create_engine, create_sessionmaker
from tests.api.bad_inputs import CORPUS, BadInput
from tests.api.conftest import Service

RECORDS_OF_REFUSALS = {"audit_log", "audit_seals", "audit_checkpoints", "anomalies"}
"""Tables a refusal may write to on its own (the audit of a denial, the anomaly of a refused sale)."""


async def business_state(service: Service) -> dict[str, Any]:
    """Row counts of every business table, and the balances that updates (not inserts) would move."""
    engine = create_engine(service.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            state: dict[str, Any] = {
                table.name: (await session.execute(select(func.count()).select_from(table))).scalar_one()
                for table in models.Base.metadata.sorted_tables
                if table.name not in RECORDS_OF_REFUSALS and table.name != "alembic_version"
            }
            pools = models.PrepaymentPool.__table__
            accumulators = models.Accumulator.__table__
            state["pool balances"] = (await session.execute(select(func.sum(pools.c.balance_fen)))).scalar_one()
            state["accumulators paid"] = (await session.execute(select(func.sum(accumulators.c.paid_fen)))).scalar_one()
            return state
    finally:
        await engine.dispose()


def token_for(service: Service, who: str) -> str:
    tokens = service.tokens
    return {
        "hospital": tokens.hospital,
        "pharmacy": tokens.pharmacy,
        "admin": tokens.admin,
        "supervisor": tokens.supervisor(),
        "insurer": tokens.payer("insurer", "INS-A"),
    }[who]


async def send(service: Service, bad: BadInput) -> tuple[int, str, Any]:
    headers = {**bad.headers, "authorization": f"Bearer {token_for(service, bad.token)}"}
    response = await service.client.request(
        bad.method, "/graphql", content=bad.body, headers=headers, params=bad.params
    )
    try:
        body = response.json()
    except ValueError:
        body = None
    return response.status_code, response.headers.get("content-type", ""), body


def problems_with(status: int, content_type: str, body: Any) -> list[str]:
    """What is wrong with an answer to a bad request (nothing, when it is a typed refusal)."""
    problems = []
    if status >= 500:
        problems.append(f"HTTP {status}")
    if not isinstance(body, dict):
        return [*problems, f"not a JSON object ({content_type})"]
    errors = body.get("errors") or []
    for error in errors:
        code = (error.get("extensions") or {}).get("code")
        if not code:
            problems.append(f"an error without a code: {error.get('message')!r}")
        if code == "INTERNAL_ERROR" or "internal error" in str(error.get("message", "")):
            problems.append("a masked internal error")
    results = [value for value in (body.get("data") or {}).values() if isinstance(value, dict)]
    typed = [result for result in results if result.get("code")]
    if not errors and not typed:
        problems.append(f"accepted: {body}")
    return problems


async def test_no_bad_input_gets_a_500_a_masked_error_or_writes_business_data(service: Service) -> None:
    assert len(CORPUS) >= 100
    assert len({bad.name for bad in CORPUS}) == len(CORPUS), "corpus entries are named uniquely"
    before = await business_state(service)

    failures = {}
    for bad in CORPUS:
        status, content_type, body = await send(service, bad)
        problems = problems_with(status, content_type, body)
        if problems:
            failures[bad.name] = (status, problems)

    assert not failures, "\n".join(
        f"{name}: HTTP {status}: {problems}" for name, (status, problems) in failures.items()
    )
    assert await business_state(service) == before


async def test_refusals_before_execution_are_400_under_graphql_response_json(service: Service) -> None:
    strict = {"content-type": "application/json", "accept": "application/graphql-response+json"}
    for document in ("{", "{ noSuchField }", "query($id: ID!) { __typename }"):
        response = await service.client.post(
            "/graphql",
            json={"query": document, "variables": {"id": None}},
            headers={**strict, "authorization": f"Bearer {service.token}"},
        )
        body = response.json()
        assert response.status_code == 400, (document, body)
        assert response.headers["content-type"].startswith("application/graphql-response+json")
        assert "data" not in body and body["errors"][0]["extensions"]["code"]


async def test_a_dropped_database_connection_is_a_retryable_failure(service: Service, monkeypatch: Any) -> None:
    from sqlalchemy.exc import OperationalError

    from api.services import queries

    async def dropped(*args: object, **kwargs: object) -> None:
        raise OperationalError(
            "SELECT ...", {"secret": "parameter"}, ConnectionResetError("connection reset"), connection_invalidated=True
        )

    monkeypatch.setattr(queries, "institution", dropped)
    body = (await service.post('{ institution(code: "H310003") { code } }')).json()

    [error] = body["errors"]
    assert error["extensions"] == {"code": "RETRYABLE_FAILURE", "retryable": True}
    assert "secret" not in str(body)


async def test_a_serialization_failure_or_deadlock_is_a_retryable_failure(service: Service, monkeypatch: Any) -> None:
    from asyncpg.exceptions import DeadlockDetectedError, SerializationError
    from sqlalchemy.exc import DBAPIError

    from api.services import queries

    for driver_error in (SerializationError("could not serialize access"), DeadlockDetectedError("deadlock")):

        async def collided(*args: object, error: Exception = driver_error, **kwargs: object) -> None:
            raise DBAPIError("UPDATE prepayment_pools ...", {"secret": "parameter"}, error)

        monkeypatch.setattr(queries, "institution", collided)
        body = (await service.post('{ institution(code: "H310003") { code } }')).json()

        [error] = body["errors"]
        assert error["extensions"] == {"code": "RETRYABLE_FAILURE", "retryable": True}, type(driver_error)
