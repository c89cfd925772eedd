"""The authorization matrix: every query and mutation of the schema, as every role, against an
object of its own tenant and one of another tenant (another institution, payer or region).

The fields are found by introspection: a field added to the schema without a row in EXPECTED
fails `test_every_field_of_the_schema_is_in_the_matrix`. Outcomes:

    own     the caller's own object is visible (or the write succeeds); another tenant's reads
            as not found (null, absent from a list, or NotFound)
    all     both are visible (the register of institutions, for payers and the admin)
    deny    the role may not use the field at all: FORBIDDEN (a typed Forbidden for mutations)
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.conftest import Service
from tests.api.documents import (
    CAR_T,
    ELSEWHERE,
    EMPLOYEE,
    HOSPITAL,
    MEMBER,
    OWN_SHARE,
    PHARMACY,
    REFERENCE_DATA,
    SETTLE,
    claim,
)

OTHER_REGION = "320100"
OTHER_HOSPITAL = "H320001"
ROLES = ("hospital", "pharmacy", "insurer", "mutual_aid", "charity", "supervisor", "admin")
ORG = {
    "hospital": HOSPITAL,
    "pharmacy": PHARMACY,
    "insurer": "INS-A",
    "mutual_aid": "MA-UNION",
    "charity": "CHARITY-X",
    "supervisor": "NHSA-SUPERVISION",
    "admin": "NHSA-OPS",
}
CLAIM_WRITERS = {"hospital": "own", "pharmacy": "own"}
CLAIM_READERS = {
    "hospital": "own",
    "pharmacy": "own",
    "insurer": "own",
    "mutual_aid": "own",
    "charity": "own",
    "supervisor": "own",
}
EXPECTED: dict[str, dict[str, str]] = {
    "settlement": CLAIM_READERS,
    "settlementBySerial": CLAIM_READERS,
    "settlements": CLAIM_READERS,
    "person": {"hospital": "own", "pharmacy": "own", "supervisor": "own", "admin": "all"},
    "personByIdNumber": {"hospital": "own", "pharmacy": "own", "supervisor": "own", "admin": "all"},
    "rebateStatement": {"insurer": "own"},
    "institution": {
        "hospital": "own",
        "pharmacy": "own",
        "insurer": "all",
        "mutual_aid": "all",
        "charity": "all",
        "supervisor": "own",
        "admin": "all",
    },
    "plans": {"insurer": "own", "mutual_aid": "own", "charity": "own", "supervisor": "own", "admin": "all"},
    "commercialCatalogue": {"insurer": "own", "supervisor": "own", "admin": "all"},
    "preSettle": CLAIM_WRITERS,
    "settle": CLAIM_WRITERS,
    "reverseSettlement": CLAIM_WRITERS,
    "loadDocument": {"admin": "all"},
    "grantPrepayment": {"admin": "all"},
    "anomalies": {"hospital": "own", "pharmacy": "own", "supervisor": "own"},
    "traceCode": {"hospital": "own", "pharmacy": "own", "supervisor": "own"},
    "institutionRisk": {"supervisor": "own"},
    "verifyAuditLog": {"supervisor": "all", "admin": "all"},
    "handleAnomaly": {"hospital": "own", "pharmacy": "own", "supervisor": "own"},
    "recordPrescription": {"hospital": "all"},
}

OTHER_TENANTS: dict[str, Any] = {
    "region": OTHER_REGION,
    "effective_from": "2026-01-01",
    "payers": [
        {"code": "NHSA-320100", "name": "Nanjing medical insurance fund", "kind": "fund", "region": OTHER_REGION},
        {"code": "INS-B", "name": "Insurer B", "kind": "insurer"},
    ],
    "institutions": [
        {"code": OTHER_HOSPITAL, "name": "Nanjing hospital", "kind": "hospital", "level": 3, "region": OTHER_REGION}
    ],
    "formulary": {
        "basic": copy.deepcopy(REFERENCE_DATA["formulary"]["basic"]),
        "self_pay_first_ratio": "0.10",
        "commercial": [{"drug": CAR_T, "insurer": "INS-B", "settlement_price": "95000.00"}],
    },
    "trace_policies": [
        {"institution": OTHER_HOSPITAL, "drug": CAR_T, "no_code_stock": True},
        {"institution": HOSPITAL, "drug": CAR_T, "no_code_stock": True},
    ],
    "plans": [
        {
            "id": "BASIC-320100",
            "payer": "NHSA-320100",
            "kind": "basic",
            "base": ["in_scope"],
            "ratio": {"rate": "0.70"},
        },
        {
            "id": "HMB-B",
            "payer": "INS-B",
            "kind": "commercial",
            "base": ["out_of_scope"],
            "only_catalogue": "commercial",
            "ratio": {"rate": "0.50"},
        },
    ],
}

Verdict = str  # "visible", "hidden" or "denied"


@dataclass
class World:
    """The service, its settlements by name, and a caller per role."""

    service: Service
    settlements: dict[str, dict[str, Any]]
    serials: itertools.count[int]
    anomalies: dict[str, str]  # institution -> the id of one of its anomalies

    def caller(self, role: str, *, grants: tuple[str, ...] = ()) -> Service:
        tokens = self.service.tokens
        regions = ["310100"] if role == "supervisor" else []
        return self.service.as_(tokens.mint(role, ORG[role], regions=regions, grants=list(grants)))

    def serial(self) -> str:
        return f"M-{next(self.serials)}"

    def own_settlement(self, role: str) -> dict[str, Any]:
        name = {"pharmacy": "pharmacy", "insurer": "car-t", "charity": "donated"}.get(role, "own")
        return self.settlements[name]


@pytest.fixture
async def world(service: Service) -> AsyncIterator[World]:
    assert (await service.load(copy.deepcopy(OTHER_TENANTS)))["__typename"] == "LoadSummary"
    settled: dict[str, dict[str, Any]] = {}

    async def settle(name: str, as_: Service, variables: dict[str, Any]) -> None:
        result = (await as_.graphql(SETTLE, {"claim": variables}))["settle"]
        assert result["__typename"] == "Settlement", result
        settled[name] = result

    pharmacy = service.as_(service.tokens.pharmacy)
    elsewhere = service.as_(service.tokens.mint("hospital", OTHER_HOSPITAL))
    await settle("own", service, claim("W-OWN"))  # basic and mutual aid pay
    await settle("donated", service, claim("W-DONATED"))  # the year's fourth unit is donated by CHARITY-X
    await settle(
        "car-t",
        service,
        claim(  # stock from the no-code list: settled, and flagged
            "W-CART",
            diagnoses=("C83.3",),
            lines=[{"drug": CAR_T, "quantity": 1, "unitPrice": "120000.00", "traceCodes": []}],
        ),
    )
    await settle(
        "pharmacy",
        pharmacy,
        claim(
            "W-PHARM",
            person=EMPLOYEE,
            institution=PHARMACY,
            visit="PHARMACY",
            diagnoses=("C34.1",),
            lines=[{"drug": OWN_SHARE, "quantity": 1, "unitPrice": "8000.00"}],
        ),
    )
    await settle(
        "other",
        elsewhere,
        claim(
            "W-OTHER",
            person=ELSEWHERE,
            institution=OTHER_HOSPITAL,
            diagnoses=("C83.3",),
            lines=[{"drug": CAR_T, "quantity": 1, "unitPrice": "120000.00"}],
        ),
    )
    await settle(
        "other-no-code",
        elsewhere,
        claim(
            "W-OTHER-2",
            person=ELSEWHERE,
            institution=OTHER_HOSPITAL,
            diagnoses=("C83.3",),
            lines=[{"drug": CAR_T, "quantity": 1, "unitPrice": "120000.00", "traceCodes": []}],
        ),
    )
    funds = {fund["payer"] for fund in settled["car-t"]["explanation"]["funds"] if fund["amount"] != "0.00"}
    assert "INS-A" in funds and "INS-B" not in funds
    everywhere = service.as_(service.tokens.supervisor("310100", OTHER_REGION))
    listed = await everywhere.graphql("{ anomalies(first: 50) { edges { node { id institution } } } }")
    anomalies = {edge["node"]["institution"]: edge["node"]["id"] for edge in listed["anomalies"]["edges"]}
    assert {HOSPITAL, PHARMACY, OTHER_HOSPITAL} <= set(anomalies), anomalies
    yield World(service, settled, itertools.count(), anomalies)


async def ask(caller: Service, query: str, variables: dict[str, Any], field: str) -> tuple[Any, list[Any]]:
    response = await caller.post(query, variables)
    assert response.status_code == 200, response.text
    body = response.json()
    data = (body.get("data") or {}).get(field)
    return data, body.get("errors") or []


def forbidden(errors: list[Any]) -> bool:
    return any((error.get("extensions") or {}).get("code") == "FORBIDDEN" for error in errors)


async def read_verdict(
    caller: Service,
    query: str,
    variables: dict[str, Any],
    field: str,
    visible: Callable[[Any], bool] = lambda data: data is not None,
) -> Verdict:
    data, errors = await ask(caller, query, variables, field)
    if forbidden(errors):
        return "denied"
    assert not errors, errors
    return "visible" if visible(data) else "hidden"


async def mutation_verdict(caller: Service, query: str, variables: dict[str, Any], field: str, success: str) -> Verdict:
    data, errors = await ask(caller, query, variables, field)
    assert not errors, errors
    if data["__typename"] == "Forbidden":
        assert data["code"] == "FORBIDDEN"
        return "denied"
    if data["__typename"] == "NotFound":
        return "hidden"
    assert data["__typename"] == success, data
    return "visible"


SETTLEMENT_BY_ID = "query($id: ID!) { settlement(id: $id) { id } }"
BY_SERIAL = "query($i: String!, $s: String!) { settlementBySerial(institution: $i, serial: $s) { id } }"
LISTED = "query { settlements(first: 100) { edges { node { id } } } }"
PERSON = "query($p: String!) { person(psnNo: $p) { psnNo } }"
BY_ID_NUMBER = "query($n: String!) { personByIdNumber(idNumber: $n) { psnNo } }"
STATEMENT = 'query($i: String) { rebateStatement(start: "2026-01-01", end: "2026-12-31", insurer: $i) { drug } }'
INSTITUTION = "query($c: String!) { institution(code: $c) { code } }"
PLANS = "query($r: String!) { plans(region: $r) { plan } }"
CATALOGUE = 'query($r: String!) { commercialCatalogue(region: $r, onDate: "2026-06-01") { drug insurer } }'
MUTATION_FIELDS = "__typename ... on Error { code field }"
PRE_SETTLE = f"mutation($c: ClaimInput!) {{ preSettle(claim: $c) {{ {MUTATION_FIELDS} }} }}"
SETTLE_ONLY = f"mutation($c: ClaimInput!) {{ settle(claim: $c) {{ {MUTATION_FIELDS} }} }}"
REVERSE = f"mutation($i: ReversalInput!) {{ reverseSettlement(input: $i) {{ {MUTATION_FIELDS} }} }}"
LOAD = f"mutation($d: JSON!) {{ loadDocument(document: $d) {{ {MUTATION_FIELDS} }} }}"
GRANT = f"""mutation($r: String!) {{ grantPrepayment(reference: $r, payer: "INS-A", institution: "{HOSPITAL}",
  amount: "1.00") {{ {MUTATION_FIELDS} }} }}"""

Probe = Callable[[World, str], Awaitable[tuple[Verdict, Verdict]]]


async def probe_settlement(world: World, role: str) -> tuple[Verdict, Verdict]:
    caller = world.caller(role)
    own, other = world.own_settlement(role), world.settlements["other"]
    return (
        await read_verdict(caller, SETTLEMENT_BY_ID, {"id": own["id"]}, "settlement"),
        await read_verdict(caller, SETTLEMENT_BY_ID, {"id": other["id"]}, "settlement"),
    )


async def probe_by_serial(world: World, role: str) -> tuple[Verdict, Verdict]:
    caller = world.caller(role)
    own, other = world.own_settlement(role), world.settlements["other"]
    return (
        await read_verdict(caller, BY_SERIAL, {"i": own["institution"], "s": own["serial"]}, "settlementBySerial"),
        await read_verdict(caller, BY_SERIAL, {"i": other["institution"], "s": other["serial"]}, "settlementBySerial"),
    )


async def probe_listed(world: World, role: str) -> tuple[Verdict, Verdict]:
    caller = world.caller(role)
    own, other = world.own_settlement(role), world.settlements["other"]

    def lists(settlement: dict[str, Any]) -> Callable[[Any], bool]:
        return lambda data: data is not None and settlement["id"] in {e["node"]["id"] for e in data["edges"]}

    return (
        await read_verdict(caller, LISTED, {}, "settlements", lists(own)),
        await read_verdict(caller, LISTED, {}, "settlements", lists(other)),
    )


async def probe_person(world: World, role: str) -> tuple[Verdict, Verdict]:
    caller = world.caller(role)
    return (
        await read_verdict(caller, PERSON, {"p": MEMBER}, "person"),
        await read_verdict(caller, PERSON, {"p": ELSEWHERE}, "person"),
    )


async def probe_by_id_number(world: World, role: str) -> tuple[Verdict, Verdict]:
    caller = world.caller(role)
    return (
        await read_verdict(caller, BY_ID_NUMBER, {"n": "310101198001010012"}, "personByIdNumber"),
        await read_verdict(caller, BY_ID_NUMBER, {"n": "320101198504040048"}, "personByIdNumber"),
    )


async def probe_statement(world: World, role: str) -> tuple[Verdict, Verdict]:
    caller = world.caller(role)

    def lists(data: Any) -> bool:
        return bool(data)

    return (
        await read_verdict(caller, STATEMENT, {"i": None}, "rebateStatement", lists),
        await read_verdict(caller, STATEMENT, {"i": "INS-B"}, "rebateStatement", lists),
    )


async def probe_institution(world: World, role: str) -> tuple[Verdict, Verdict]:
    caller = world.caller(role)
    own = PHARMACY if role == "pharmacy" else HOSPITAL
    return (
        await read_verdict(caller, INSTITUTION, {"c": own}, "institution"),
        await read_verdict(caller, INSTITUTION, {"c": OTHER_HOSPITAL}, "institution"),
    )


async def probe_plans(world: World, role: str) -> tuple[Verdict, Verdict]:
    caller = world.caller(role)
    own_plan = {"insurer": "HMB", "mutual_aid": "MA", "charity": "PAP"}.get(role, "BASIC-EMP")

    def lists(plan: str) -> Callable[[Any], bool]:
        return lambda data: data is not None and plan in {entry["plan"] for entry in data}

    return (
        await read_verdict(caller, PLANS, {"r": "310100"}, "plans", lists(own_plan)),
        await read_verdict(caller, PLANS, {"r": OTHER_REGION}, "plans", lists("HMB-B")),
    )


async def probe_catalogue(world: World, role: str) -> tuple[Verdict, Verdict]:
    caller = world.caller(role)

    def lists(insurer: str) -> Callable[[Any], bool]:
        return lambda data: data is not None and insurer in {entry["insurer"] for entry in data}

    return (
        await read_verdict(caller, CATALOGUE, {"r": "310100"}, "commercialCatalogue", lists("INS-A")),
        await read_verdict(caller, CATALOGUE, {"r": OTHER_REGION}, "commercialCatalogue", lists("INS-B")),
    )


def writer_claim(world: World, role: str, *, elsewhere: bool) -> dict[str, Any]:
    if elsewhere:
        return claim(
            world.serial(),
            person=ELSEWHERE,
            institution=OTHER_HOSPITAL,
            diagnoses=("C83.3",),
            lines=[{"drug": CAR_T, "quantity": 1, "unitPrice": "120000.00"}],
        )
    if role == "pharmacy":
        return claim(
            world.serial(),
            person=EMPLOYEE,
            institution=PHARMACY,
            visit="PHARMACY",
            diagnoses=("C34.1",),
            lines=[{"drug": OWN_SHARE, "quantity": 1, "unitPrice": "8000.00"}],
        )
    return claim(world.serial(), person=EMPLOYEE)


async def probe_pre_settle(world: World, role: str) -> tuple[Verdict, Verdict]:
    caller = world.caller(role)
    return (
        await mutation_verdict(
            caller, PRE_SETTLE, {"c": writer_claim(world, role, elsewhere=False)}, "preSettle", "Settlement"
        ),
        await mutation_verdict(
            caller, PRE_SETTLE, {"c": writer_claim(world, role, elsewhere=True)}, "preSettle", "Settlement"
        ),
    )


async def probe_settle(world: World, role: str) -> tuple[Verdict, Verdict]:
    caller = world.caller(role)
    return (
        await mutation_verdict(
            caller, SETTLE_ONLY, {"c": writer_claim(world, role, elsewhere=False)}, "settle", "Settlement"
        ),
        await mutation_verdict(
            caller, SETTLE_ONLY, {"c": writer_claim(world, role, elsewhere=True)}, "settle", "Settlement"
        ),
    )


async def probe_reverse(world: World, role: str) -> tuple[Verdict, Verdict]:
    caller = world.caller(role)
    writer = world.caller(role if role in CLAIM_WRITERS else "hospital")
    fresh = (await writer.graphql(SETTLE, {"claim": writer_claim(world, role, elsewhere=False)}))["settle"]
    return (
        await mutation_verdict(
            caller, REVERSE, {"i": {"id": fresh["id"], "reason": "matrix"}}, "reverseSettlement", "Reversal"
        ),
        await mutation_verdict(
            caller,
            REVERSE,
            {"i": {"id": world.settlements["other"]["id"], "reason": "matrix"}},
            "reverseSettlement",
            "Reversal",
        ),
    )


async def probe_load(world: World, role: str) -> tuple[Verdict, Verdict]:
    caller = world.caller(role)
    document = {"payers": [{"code": "INS-A", "name": "Insurer A", "kind": "insurer"}]}
    verdict = await mutation_verdict(caller, LOAD, {"d": document}, "loadDocument", "LoadSummary")
    return verdict, verdict


async def probe_grant(world: World, role: str) -> tuple[Verdict, Verdict]:
    caller = world.caller(role)
    verdict = await mutation_verdict(caller, GRANT, {"r": f"G-{world.serial()}"}, "grantPrepayment", "PrepaymentPool")
    return verdict, verdict


ANOMALIES = "query { anomalies(first: 100) { edges { node { institution } } } }"
TRACE = "query($c: String!) { traceCode(code: $c) { code } }"
RISK = 'query($i: String!) { institutionRisk(institution: $i, start: "2026-01-01", end: "2026-12-31") { settlements } }'
VERIFY = "query { verifyAuditLog { intact } }"
HANDLE = f"mutation($i: HandleAnomalyInput!) {{ handleAnomaly(input: $i) {{ {MUTATION_FIELDS} }} }}"
PRESCRIBE = f"mutation($i: PrescriptionInput!) {{ recordPrescription(input: $i) {{ {MUTATION_FIELDS} }} }}"


def own_institution(role: str) -> str:
    return PHARMACY if role == "pharmacy" else HOSPITAL


async def probe_anomalies(world: World, role: str) -> tuple[Verdict, Verdict]:
    caller = world.caller(role)

    def lists(institution: str) -> Callable[[Any], bool]:
        return lambda data: data is not None and institution in {e["node"]["institution"] for e in data["edges"]}

    return (
        await read_verdict(caller, ANOMALIES, {}, "anomalies", lists(own_institution(role))),
        await read_verdict(caller, ANOMALIES, {}, "anomalies", lists(OTHER_HOSPITAL)),
    )


async def probe_trace_code(world: World, role: str) -> tuple[Verdict, Verdict]:
    caller = world.caller(role)
    own = world.settlements["pharmacy" if role == "pharmacy" else "own"]["explanation"]["lines"][0]["traceCodes"][0]
    other = world.settlements["other"]["explanation"]["lines"][0]["traceCodes"][0]
    return (
        await read_verdict(caller, TRACE, {"c": own}, "traceCode", bool),
        await read_verdict(caller, TRACE, {"c": other}, "traceCode", bool),
    )


async def probe_risk(world: World, role: str) -> tuple[Verdict, Verdict]:
    caller = world.caller(role)
    return (
        await read_verdict(caller, RISK, {"i": HOSPITAL}, "institutionRisk"),
        await read_verdict(caller, RISK, {"i": OTHER_HOSPITAL}, "institutionRisk"),
    )


async def probe_verify(world: World, role: str) -> tuple[Verdict, Verdict]:
    verdict = await read_verdict(world.caller(role), VERIFY, {}, "verifyAuditLog")
    return verdict, verdict


async def probe_handle(world: World, role: str) -> tuple[Verdict, Verdict]:
    caller = world.caller(role)

    def explain(institution: str) -> dict[str, Any]:
        return {"i": {"id": world.anomalies[institution], "status": "EXPLAINED", "note": "stock from the no-code list"}}

    return (
        await mutation_verdict(caller, HANDLE, explain(own_institution(role)), "handleAnomaly", "Anomaly"),
        await mutation_verdict(caller, HANDLE, explain(OTHER_HOSPITAL), "handleAnomaly", "Anomaly"),
    )


async def probe_prescribe(world: World, role: str) -> tuple[Verdict, Verdict]:
    caller = world.caller(role)

    def prescription() -> dict[str, Any]:
        return {
            "i": {
                "prescriptionId": f"RX-{world.serial()}",
                "person": MEMBER,
                "drugs": [OWN_SHARE],
                "issuedOn": "2026-03-01",
            }
        }

    return (
        await mutation_verdict(caller, PRESCRIBE, prescription(), "recordPrescription", "PrescriptionRecord"),
        await mutation_verdict(caller, PRESCRIBE, prescription(), "recordPrescription", "PrescriptionRecord"),
    )


PROBES: dict[str, Probe] = {
    "settlement": probe_settlement,
    "settlementBySerial": probe_by_serial,
    "settlements": probe_listed,
    "person": probe_person,
    "personByIdNumber": probe_by_id_number,
    "rebateStatement": probe_statement,
    "institution": probe_institution,
    "plans": probe_plans,
    "commercialCatalogue": probe_catalogue,
    "preSettle": probe_pre_settle,
    "settle": probe_settle,
    "reverseSettlement": probe_reverse,
    "loadDocument": probe_load,
    "grantPrepayment": probe_grant,
    "anomalies": probe_anomalies,
    "traceCode": probe_trace_code,
    "institutionRisk": probe_risk,
    "verifyAuditLog": probe_verify,
    "handleAnomaly": probe_handle,
    "recordPrescription": probe_prescribe,
}
OUTCOMES = {"own": ("visible", "hidden"), "all": ("visible", "visible"), "deny": ("denied", "denied")}


async def test_every_field_of_the_schema_is_in_the_matrix(service: Service) -> None:
    data = await service.graphql("{ __schema { queryType { fields { name } } mutationType { fields { name } } } }")
    fields = {f["name"] for kind in ("queryType", "mutationType") for f in data["__schema"][kind]["fields"]}
    assert fields == set(EXPECTED) == set(PROBES)


@pytest.mark.parametrize("field", sorted(EXPECTED))
async def test_each_role_sees_and_does_only_its_own_part(world: World, field: str) -> None:
    observed = {role: await PROBES[field](world, role) for role in ROLES}
    expected = {role: OUTCOMES[EXPECTED[field].get(role, "deny")] for role in ROLES}
    assert observed == expected
