"""HTTP conventions: CORS only for configured origins, gzip for large answers, and no cache keeps
an answer that may carry personal data.
"""

from __future__ import annotations

from api.app import create_app
from tests.api.conftest import Service, running, settings_for
from tests.api.tokens import Tokens
from tests.conftest import Databases

HIS = "https://his.hospital.example"
PREFLIGHT = {"origin": HIS, "access-control-request-method": "POST", "access-control-request-headers": "authorization"}


async def test_no_origin_is_allowed_unless_configured(service: Service) -> None:
    preflight = await service.client.options("/graphql", headers=PREFLIGHT)
    answer = await service.client.post(
        "/graphql",
        json={"query": "{ __typename }"},
        headers={"origin": HIS, "authorization": f"Bearer {service.token}"},
    )

    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in answer.headers


async def test_a_configured_origin_gets_its_preflight_answered_without_a_token(
    databases: Databases, tokens: Tokens
) -> None:
    settings = settings_for(await databases.fresh("sqlite"), tokens).replace(cors_origins=(HIS,))
    async with running(create_app(settings)) as client:
        preflight = await client.options("/graphql", headers=PREFLIGHT)
        answer = await client.post(
            "/graphql",
            json={"query": "{ __typename }"},
            headers={"origin": HIS, "authorization": f"Bearer {tokens.hospital}"},
        )
        other = await client.options("/graphql", headers=PREFLIGHT | {"origin": "https://elsewhere.example"})

    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == HIS
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert answer.headers["access-control-allow-origin"] == HIS
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in other.headers


async def test_large_answers_are_compressed_and_small_ones_are_not(service: Service) -> None:
    headers = {"authorization": f"Bearer {service.token}", "accept-encoding": "gzip"}
    large = await service.client.post(
        "/graphql", json={"query": "{ __schema { types { name description } } }"}, headers=headers
    )
    small = await service.client.post("/graphql", json={"query": "{ __typename }"}, headers=headers)

    assert large.headers.get("content-encoding") == "gzip" and large.json()["data"]["__schema"]["types"]
    assert "content-encoding" not in small.headers


async def test_no_graphql_answer_may_be_cached(service: Service) -> None:
    for body in ({"query": '{ person(psnNo: "P0001") { psnNo } }'}, {"query": "{"}, {"notquery": 1}):
        answer = await service.client.post("/graphql", json=body, headers={"authorization": f"Bearer {service.token}"})
        assert answer.headers["cache-control"] == "no-store", body
