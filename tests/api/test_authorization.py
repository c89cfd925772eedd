"""The authorization matrix: every query, mutation and CSV export of the service, called by every
role from each of two pooling regions built alike (each with its own institutions, people, plans,
pools, insurer, mutual aid and charity), against the object of its own region and the same
object of the other region.

The fields are found by introspection and the exports (CSV files, PDF slips) by the app's routes:
a field or export added without a row in EXPECTED fails
`test_every_field_and_export_of_the_service_is_in_the_matrix`.
A caller is a role, its region and its grants (`supervisor+price_audit@320100`); its row in
EXPECTED is looked up as role+grants, then as role. Outcomes:

    own     the object of the caller's region (its institution's, its payer's, its supervised
            region's) is visible, or the write succeeds; the other region's reads as not found
            (null, absent from a list, an empty or 404 export, or NotFound)
    all     both are visible (the register of institutions for payers; the admin's reference data)
    deny    the role may not use it at all: FORBIDDEN (a typed Forbidden for mutations, 403 for exports)

A price auditor is a supervisor all the same: the grant lets it read prices and rebates of its
own regions, never another region's. `verifyAuditLog` is `all`: the hash chain is one for the
whole service, and the verification reports its integrity, no region's content.

A supervisor's settlements are of two kinds, and each is probed: those treated in its region,
and those of the people its region insures, treated in a third region (异地就医); the other
region's supervisor sees neither of the first region's.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from api.app import create_app
from tests.api.conftest import Service, settings_for
from tests.api.documents import (
    CAR_T,
    EMPLOYEE,
    HOSPITAL,
    MEMBER,
    OWN_SHARE,
    PHARMACY,
    REFERENCE_DATA,
    REGION,
    SECOND_REGION,
    SETTLE,
    claim,
    in_second_region,
    second_region_data,
)

REGIONS = (REGION, SECOND_REGION)
THIRD_REGION = "330100"
THIRD_HOSPITAL = "H330003"
THIRD_REGION_DATA: dict[str, Any] = {
    "region": THIRD_REGION,
    "effective_from": "2026-01-01",
    "institutions": [
        {"code": THIRD_HOSPITAL, "name": "Hangzhou hospital", "kind": "hospital", "level": 3, "region": THIRD_REGION}
    ],
    "formulary": REFERENCE_DATA["formulary"] | {"commercial": []},
}
"""Where both regions' insured are treated elsewhere: a hospital and a formulary, no caller."""
ORG = {
    "hospital": HOSPITAL,
    "pharmacy": PHARMACY,
    "insurer": "INS-A",
    "mutual_aid": "MA-UNION",
    "charity": "CHARITY-X",
    "supervisor": "NHSA-SUPERVISION",
    "admin": "NHSA-OPS",
}


def in_region(value: Any, region: str) -> Any:
    """A code (or claim) of the first region, or its counterpart in `region`."""
    return value if region == REGION else in_second_region(value)


@dataclass(frozen=True)
class Caller:
    role: str
    region: str | None  # None: a role without a region (the admin)
    grants: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return "+".join((self.role, *self.grants))

    @property
    def name(self) -> str:
        return self.label if self.region is None else f"{self.label}@{self.region}"

    @property
    def org(self) -> str:
        return in_region(ORG[self.role], self.region or REGION)


CALLERS = (
    *(
        Caller(role, region)
        for role in ("hospital", "pharmacy", "insurer", "mutual_aid", "charity", "supervisor")
        for region in REGIONS
    ),
    *(Caller("supervisor", region, ("price_audit",)) for region in REGIONS),
    Caller("admin", None),
    Caller("admin", None, ("price_audit",)),
)

CLAIM_WRITERS = {"hospital": "own", "pharmacy": "own"}
CLAIM_READERS = {
    "hospital": "own",
    "pharmacy": "own",
    "insurer": "own",
    "mutual_aid": "own",
    "charity": "own",
    "supervisor": "own",
}
TRACE_READERS = {"hospital": "own", "pharmacy": "own", "supervisor": "own"}
EXPECTED: dict[str, dict[str, str]] = {
    "settlement": CLAIM_READERS,
    "settlementBySerial": CLAIM_READERS,
    "settlements": CLAIM_READERS,
    "person": {"hospital": "own", "pharmacy": "own", "supervisor": "own", "admin": "all"},
    "personByIdNumber": {"hospital": "own", "pharmacy": "own", "supervisor": "own", "admin": "all"},
    "rebateStatement": {"insurer": "own", "supervisor+price_audit": "own", "admin+price_audit": "all"},
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
    "anomalies": TRACE_READERS,
    "traceCode": TRACE_READERS,
    "institutionRisk": {"supervisor": "own"},
    "verifyAuditLog": {"supervisor": "all", "admin": "all"},
    "handleAnomaly": TRACE_READERS,
    "recordPrescription": {"hospital": "all"},
    "GET /exports/anomalies.csv": TRACE_READERS,
    "GET /exports/anomaly-steps.csv": TRACE_READERS,
    "GET /exports/trace-code.csv": TRACE_READERS,
    "GET /exports/risk.csv": {"supervisor": "own"},
    "GET /settlements/{id}/slip.pdf": {"hospital": "own", "pharmacy": "own", "supervisor": "own"},
}

Verdict = str  # "visible", "hidden" or "denied"
Verdicts = tuple[Verdict, Verdict]  # on the first region's object, on the second's


def expected(field: str, caller: Caller) -> Verdicts:
    row = EXPECTED[field]
    outcome = row.get(caller.label, row.get(caller.role, "deny"))
    if outcome == "deny":
        return "denied", "denied"
    if outcome == "all":
        return "visible", "visible"
    assert caller.region is not None, f"{field}: 'own' needs a caller with a region"
    return ("visible", "hidden") if caller.region == REGION else ("hidden", "visible")


@dataclass
class World:
    """The service, each region's settlements by name, one anomaly per institution, and callers."""

    service: Service
    settlements: dict[str, dict[str, dict[str, Any]]]  # region -> name -> settlement
    serials: itertools.count[int]
    anomalies: dict[str, str]  # institution -> the id of one of its anomalies

    def as_(self, caller: Caller) -> Service:
        regions = [caller.region] if caller.role == "supervisor" and caller.region else []
        token = self.service.tokens.mint(caller.role, caller.org, regions=regions, grants=list(caller.grants))
        return self.service.as_(token)

    def serial(self) -> str:
        return f"M-{next(self.serials)}"

    def own_settlement(self, role: str, region: str) -> dict[str, Any]:
        name = {"pharmacy": "pharmacy", "insurer": "car-t", "charity": "donated"}.get(role, "own")
        return self.settlements[region][name]

    def own_settlements(self, role: str, region: str) -> list[dict[str, Any]]:
        """A supervisor's are two: treated in its region, and of its insured treated elsewhere."""
        own = [self.own_settlement(role, region)]
        return [*own, self.settlements[region]["elsewhere"]] if role == "supervisor" else own


async def settle_in(region: str, caller: Service, variables: dict[str, Any]) -> dict[str, Any]:
    result = (await caller.graphql(SETTLE, {"claim": in_region(variables, region)}))["settle"]
    assert result["__typename"] == "Settlement", result
    return dict(result)


@pytest.fixture
async def world(service: Service) -> AsyncIterator[World]:
    policies = {
        "trace_policies": [
            {"institution": in_region(HOSPITAL, region), "drug": CAR_T, "no_code_stock": True} for region in REGIONS
        ]
    }
    for document in (second_region_data(), THIRD_REGION_DATA, policies):
        assert (await service.load(document))["__typename"] == "LoadSummary"
    settled: dict[str, dict[str, dict[str, Any]]] = {}
    third_hospital = service.as_(service.tokens.mint("hospital", THIRD_HOSPITAL))
    for region in REGIONS:
        hospital = service.as_(service.tokens.mint("hospital", in_region(HOSPITAL, region)))
        pharmacy = service.as_(service.tokens.mint("pharmacy", in_region(PHARMACY, region)))
        settled[region] = {
            "own": await settle_in(region, hospital, claim("W-OWN")),  # basic and mutual aid pay
            "donated": await settle_in(region, hospital, claim("W-DONATED")),  # the year's 4th unit is donated
            "car-t": await settle_in(  # the region's insurer pays, and is owed a rebate; no-code stock, flagged
                region,
                hospital,
                claim(
                    "W-CART",
                    diagnoses=("C83.3",),
                    lines=[{"drug": CAR_T, "quantity": 1, "unitPrice": "120000.00", "traceCodes": []}],
                ),
            ),
            "pharmacy": await settle_in(  # no e-prescription: flagged
                region,
                pharmacy,
                claim(
                    "W-PHARM",
                    person=EMPLOYEE,
                    institution=PHARMACY,
                    visit="PHARMACY",
                    diagnoses=("C34.1",),
                    lines=[{"drug": OWN_SHARE, "quantity": 1, "unitPrice": "8000.00"}],
                ),
            ),
            "elsewhere": await settle_in(  # the region's insured, treated in the third region
                region,
                third_hospital,
                claim(f"W-ELSEWHERE-{region}", person=EMPLOYEE, institution=THIRD_HOSPITAL),
            ),
        }
        insurer = in_region("INS-A", region)
        paid = {fund["payer"] for fund in settled[region]["car-t"]["explanation"]["funds"] if fund["amount"] != "0.00"}
        assert insurer in paid, paid
    everywhere = service.as_(service.tokens.supervisor(*REGIONS))
    listed = await everywhere.graphql("{ anomalies(first: 100) { edges { node { id institution } } } }")
    anomalies = {edge["node"]["institution"]: edge["node"]["id"] for edge in listed["anomalies"]["edges"]}
    assert {in_region(code, region) for code in (HOSPITAL, PHARMACY) for region in REGIONS} <= set(anomalies)
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


async def both(probe: Callable[[str], Awaitable[Verdict]]) -> Verdicts:
    return await probe(REGION), await probe(SECOND_REGION)


Probe = Callable[[World, Caller], Awaitable[Verdicts]]

SETTLEMENT_BY_ID = "query($id: ID!) { settlement(id: $id) { id } }"
BY_SERIAL = "query($i: String!, $s: String!) { settlementBySerial(institution: $i, serial: $s) { id } }"
LISTED = "query { settlements(first: 100) { edges { node { id } } } }"
PERSON = "query($p: String!) { person(psnNo: $p) { psnNo } }"
BY_ID_NUMBER = "query($n: String!) { personByIdNumber(idNumber: $n) { psnNo } }"
STATEMENT = """query($i: String) { rebateStatement(start: "2026-01-01", end: "2026-12-31", insurer: $i) {
  insurer drug amount } }"""
INSTITUTION = "query($c: String!) { institution(code: $c) { code } }"
PLANS = "query($r: String!) { plans(region: $r) { plan } }"
CATALOGUE = 'query($r: String!) { commercialCatalogue(region: $r, onDate: "2026-06-01") { drug insurer } }'
MUTATION_FIELDS = "__typename ... on Error { code field }"
PRE_SETTLE = f"mutation($c: ClaimInput!) {{ preSettle(claim: $c) {{ {MUTATION_FIELDS} }} }}"
SETTLE_ONLY = f"mutation($c: ClaimInput!) {{ settle(claim: $c) {{ {MUTATION_FIELDS} }} }}"
REVERSE = f"mutation($i: ReversalInput!) {{ reverseSettlement(input: $i) {{ {MUTATION_FIELDS} }} }}"
LOAD = f"mutation($d: JSON!) {{ loadDocument(document: $d) {{ {MUTATION_FIELDS} }} }}"
GRANT = f"""mutation($r: String!, $p: String!, $i: String!) {{ grantPrepayment(reference: $r, payer: $p,
  institution: $i, amount: "1.00") {{ {MUTATION_FIELDS} }} }}"""
ANOMALIES = "query { anomalies(first: 100) { edges { node { institution } } } }"
TRACE = "query($c: String!) { traceCode(code: $c) { code } }"
RISK = 'query($i: String!) { institutionRisk(institution: $i, start: "2026-01-01", end: "2026-12-31") { settlements } }'
VERIFY = "query { verifyAuditLog { intact } }"
HANDLE = f"mutation($i: HandleAnomalyInput!) {{ handleAnomaly(input: $i) {{ {MUTATION_FIELDS} }} }}"
PRESCRIBE = f"mutation($i: PrescriptionInput!) {{ recordPrescription(input: $i) {{ {MUTATION_FIELDS} }} }}"


def own_institution(role: str, region: str) -> str:
    return in_region(PHARMACY if role == "pharmacy" else HOSPITAL, region)


def agreed(verdicts: list[Verdict]) -> Verdict:
    """One verdict for all of a region's objects of one kind (a supervisor's two settlements)."""
    assert len(set(verdicts)) == 1, verdicts
    return verdicts[0]


async def probe_settlement(world: World, caller: Caller) -> Verdicts:
    async def probe(region: str) -> Verdict:
        return agreed(
            [
                await read_verdict(world.as_(caller), SETTLEMENT_BY_ID, {"id": own["id"]}, "settlement")
                for own in world.own_settlements(caller.role, region)
            ]
        )

    return await both(probe)


async def probe_by_serial(world: World, caller: Caller) -> Verdicts:
    async def probe(region: str) -> Verdict:
        return agreed(
            [
                await read_verdict(
                    world.as_(caller), BY_SERIAL, {"i": own["institution"], "s": own["serial"]}, "settlementBySerial"
                )
                for own in world.own_settlements(caller.role, region)
            ]
        )

    return await both(probe)


async def probe_listed(world: World, caller: Caller) -> Verdicts:
    async def probe(region: str) -> Verdict:
        def lists(own: dict[str, Any]) -> Callable[[Any], bool]:
            return lambda data: data is not None and own["id"] in {edge["node"]["id"] for edge in data["edges"]}

        return agreed(
            [
                await read_verdict(world.as_(caller), LISTED, {}, "settlements", lists(own))
                for own in world.own_settlements(caller.role, region)
            ]
        )

    return await both(probe)


async def probe_person(world: World, caller: Caller) -> Verdicts:
    async def probe(region: str) -> Verdict:
        return await read_verdict(world.as_(caller), PERSON, {"p": in_region(MEMBER, region)}, "person")

    return await both(probe)


async def probe_by_id_number(world: World, caller: Caller) -> Verdicts:
    async def probe(region: str) -> Verdict:
        variables = {"n": in_region("310101198001010012", region)}
        return await read_verdict(world.as_(caller), BY_ID_NUMBER, variables, "personByIdNumber")

    return await both(probe)


async def probe_statement(world: World, caller: Caller) -> Verdicts:
    """A region's rebates are those of its insurer: seen in a statement without `insurer` (every
    insurer the caller may see) or asked by name.
    """

    async def probe(region: str) -> Verdict:
        insurer = in_region("INS-A", region)
        verdicts = [
            await read_verdict(
                world.as_(caller),
                STATEMENT,
                {"i": name},
                "rebateStatement",
                lambda data: bool(data) and insurer in {line["insurer"] for line in data},
            )
            for name in (None, insurer)
        ]
        assert len(set(verdicts)) == 1, verdicts  # by name or not, the same answer
        return verdicts[0]

    return await both(probe)


async def probe_institution(world: World, caller: Caller) -> Verdicts:
    async def probe(region: str) -> Verdict:
        code = own_institution(caller.role, region)
        return await read_verdict(world.as_(caller), INSTITUTION, {"c": code}, "institution")

    return await both(probe)


async def probe_plans(world: World, caller: Caller) -> Verdicts:
    own_plan = {"insurer": "HMB", "mutual_aid": "MA", "charity": "PAP"}.get(caller.role, "BASIC-EMP")

    async def probe(region: str) -> Verdict:
        plan = in_region(own_plan, region)

        def lists(data: Any) -> bool:
            return data is not None and plan in {entry["plan"] for entry in data}

        return await read_verdict(world.as_(caller), PLANS, {"r": region}, "plans", lists)

    return await both(probe)


async def probe_catalogue(world: World, caller: Caller) -> Verdicts:
    async def probe(region: str) -> Verdict:
        insurer = in_region("INS-A", region)

        def lists(data: Any) -> bool:
            return data is not None and insurer in {entry["insurer"] for entry in data}

        return await read_verdict(world.as_(caller), CATALOGUE, {"r": region}, "commercialCatalogue", lists)

    return await both(probe)


def writer_claim(world: World, role: str, region: str) -> dict[str, Any]:
    """A fresh claim of the region's own institution for `role` (its pharmacy for a pharmacy)."""
    if role == "pharmacy":
        request = claim(
            world.serial(),
            person=EMPLOYEE,
            institution=PHARMACY,
            visit="PHARMACY",
            diagnoses=("C34.1",),
            lines=[{"drug": OWN_SHARE, "quantity": 1, "unitPrice": "8000.00"}],
        )
    else:
        request = claim(world.serial(), person=EMPLOYEE)
    return dict(in_region(request, region))


async def probe_pre_settle(world: World, caller: Caller) -> Verdicts:
    async def probe(region: str) -> Verdict:
        variables = {"c": writer_claim(world, caller.role, region)}
        return await mutation_verdict(world.as_(caller), PRE_SETTLE, variables, "preSettle", "Settlement")

    return await both(probe)


async def probe_settle(world: World, caller: Caller) -> Verdicts:
    async def probe(region: str) -> Verdict:
        variables = {"c": writer_claim(world, caller.role, region)}
        return await mutation_verdict(world.as_(caller), SETTLE_ONLY, variables, "settle", "Settlement")

    return await both(probe)


async def probe_reverse(world: World, caller: Caller) -> Verdicts:
    async def probe(region: str) -> Verdict:
        kind = caller.role if caller.role in CLAIM_WRITERS else "hospital"
        writer = world.as_(Caller(kind, region))
        fresh = (await writer.graphql(SETTLE, {"claim": writer_claim(world, kind, region)}))["settle"]
        assert fresh["__typename"] == "Settlement", fresh
        variables = {"i": {"id": fresh["id"], "reason": "matrix"}}
        return await mutation_verdict(world.as_(caller), REVERSE, variables, "reverseSettlement", "Reversal")

    return await both(probe)


async def probe_load(world: World, caller: Caller) -> Verdicts:
    async def probe(region: str) -> Verdict:
        payer = in_region(REFERENCE_DATA["payers"][1], region)
        variables = {"d": {"payers": [payer]}}
        return await mutation_verdict(world.as_(caller), LOAD, variables, "loadDocument", "LoadSummary")

    return await both(probe)


async def probe_grant(world: World, caller: Caller) -> Verdicts:
    async def probe(region: str) -> Verdict:
        variables = {"r": f"G-{world.serial()}", "p": in_region("INS-A", region), "i": in_region(HOSPITAL, region)}
        return await mutation_verdict(world.as_(caller), GRANT, variables, "grantPrepayment", "PrepaymentPool")

    return await both(probe)


async def probe_anomalies(world: World, caller: Caller) -> Verdicts:
    async def probe(region: str) -> Verdict:
        institution = own_institution(caller.role, region)

        def lists(data: Any) -> bool:
            return data is not None and institution in {edge["node"]["institution"] for edge in data["edges"]}

        return await read_verdict(world.as_(caller), ANOMALIES, {}, "anomalies", lists)

    return await both(probe)


def own_code(world: World, role: str, region: str) -> str:
    settlement = world.settlements[region]["pharmacy" if role == "pharmacy" else "own"]
    code: str = settlement["explanation"]["lines"][0]["traceCodes"][0]
    return code


async def probe_trace_code(world: World, caller: Caller) -> Verdicts:
    async def probe(region: str) -> Verdict:
        variables = {"c": own_code(world, caller.role, region)}
        return await read_verdict(world.as_(caller), TRACE, variables, "traceCode", bool)

    return await both(probe)


async def probe_risk(world: World, caller: Caller) -> Verdicts:
    async def probe(region: str) -> Verdict:
        variables = {"i": in_region(HOSPITAL, region)}
        return await read_verdict(world.as_(caller), RISK, variables, "institutionRisk")

    return await both(probe)


async def probe_verify(world: World, caller: Caller) -> Verdicts:
    async def probe(region: str) -> Verdict:
        return await read_verdict(world.as_(caller), VERIFY, {}, "verifyAuditLog")

    return await both(probe)


FRESH = "query($f: AnomalyFilter) { anomalies(first: 100, filter: $f) { edges { node { id settlementId } } } }"


async def fresh_anomaly(world: World, region: str) -> str:
    """A new anomaly of the region's hospital (no-code stock): a decision is final, so each
    supervisor's probe decides one of its own.
    """
    hospital = world.as_(Caller("hospital", region))
    line = {"drug": CAR_T, "quantity": 1, "unitPrice": "120000.00", "traceCodes": []}
    settled = await settle_in(region, hospital, claim(world.serial(), diagnoses=("C83.3",), lines=[line]))
    everywhere = world.service.as_(world.service.tokens.supervisor(*REGIONS))
    where = {"f": {"institution": in_region(HOSPITAL, region), "kind": "NO_CODE_STOCK"}}
    edges = (await everywhere.graphql(FRESH, where))["anomalies"]["edges"]
    (anomaly,) = [edge["node"]["id"] for edge in edges if edge["node"]["settlementId"] == settled["id"]]
    return str(anomaly)


async def probe_handle(world: World, caller: Caller) -> Verdicts:
    """Its institution explains an anomaly; a supervisor dismisses one (the other's step is
    refused whatever the region, so each role is probed with its own).
    """

    async def probe(region: str) -> Verdict:
        if caller.role == "supervisor":
            anomaly, status = await fresh_anomaly(world, region), "DISMISSED"
        else:
            anomaly, status = world.anomalies[own_institution(caller.role, region)], "EXPLAINED"
        variables = {"i": {"id": anomaly, "status": status, "note": "stock from the no-code list"}}
        return await mutation_verdict(world.as_(caller), HANDLE, variables, "handleAnomaly", "Anomaly")

    return await both(probe)


async def probe_prescribe(world: World, caller: Caller) -> Verdicts:
    async def probe(region: str) -> Verdict:
        prescription = {
            "prescriptionId": f"RX-{world.serial()}",
            "person": in_region(MEMBER, region),
            "drugs": [OWN_SHARE],
            "issuedOn": "2026-03-01",
        }
        variables = {"i": prescription}
        return await mutation_verdict(
            world.as_(caller), PRESCRIBE, variables, "recordPrescription", "PrescriptionRecord"
        )

    return await both(probe)


async def export_verdict(caller: Service, path: str, params: dict[str, str], column: str, value: str) -> Verdict:
    """403 is denied; a 404 (the subject out of sight) or a file without `value` in `column` is hidden."""
    response = await caller.client.get(path, params=params, headers={"authorization": f"Bearer {caller.token}"})
    if response.status_code == 403:
        return "denied"
    if response.status_code == 404:
        return "hidden"
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.text.lstrip("\ufeff"))))
    return "visible" if value in {row[column].lstrip("'") for row in rows} else "hidden"


async def probe_export_anomalies(world: World, caller: Caller) -> Verdicts:
    async def probe(region: str) -> Verdict:
        institution = own_institution(caller.role, region)
        return await export_verdict(world.as_(caller), "/exports/anomalies.csv", {}, "institution_code", institution)

    return await both(probe)


async def probe_export_anomaly_steps(world: World, caller: Caller) -> Verdicts:
    """Steps of the anomalies each region's institution explained (an anomaly without a step has no row)."""
    for region in REGIONS:
        for role in ("hospital", "pharmacy"):
            owner = world.as_(Caller(role, region))
            anomaly = world.anomalies[own_institution(role, region)]
            variables = {"i": {"id": anomaly, "status": "EXPLAINED", "note": "what happened"}}
            assert (await owner.graphql(HANDLE, variables))["handleAnomaly"]["__typename"] == "Anomaly"

    async def probe(region: str) -> Verdict:
        institution = own_institution(caller.role, region)
        path = "/exports/anomaly-steps.csv"
        return await export_verdict(world.as_(caller), path, {}, "institution_code", institution)

    return await both(probe)


async def probe_export_trace_code(world: World, caller: Caller) -> Verdicts:
    async def probe(region: str) -> Verdict:
        code = own_code(world, caller.role, region)
        return await export_verdict(world.as_(caller), "/exports/trace-code.csv", {"code": code}, "code", code)

    return await both(probe)


async def probe_export_risk(world: World, caller: Caller) -> Verdicts:
    async def probe(region: str) -> Verdict:
        institution = in_region(HOSPITAL, region)
        params = {"institution": institution, "start": "2026-01-01", "end": "2026-12-31"}
        return await export_verdict(world.as_(caller), "/exports/risk.csv", params, "institution", institution)

    return await both(probe)


async def probe_slip(world: World, caller: Caller) -> Verdicts:
    """403 is denied, 404 hidden, a PDF visible."""

    async def fetch(own: dict[str, Any]) -> Verdict:
        asking = world.as_(caller)
        url = f"/settlements/{own['id']}/slip.pdf"
        response = await asking.client.get(url, headers={"authorization": f"Bearer {asking.token}"})
        verdicts = {403: "denied", 404: "hidden", 200: "visible"}
        assert response.status_code in verdicts, response.text
        assert response.status_code != 200 or response.headers["content-type"] == "application/pdf"
        return verdicts[response.status_code]

    async def probe(region: str) -> Verdict:
        return agreed([await fetch(own) for own in world.own_settlements(caller.role, region)])

    return await both(probe)


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
    "GET /exports/anomalies.csv": probe_export_anomalies,
    "GET /exports/anomaly-steps.csv": probe_export_anomaly_steps,
    "GET /exports/trace-code.csv": probe_export_trace_code,
    "GET /exports/risk.csv": probe_export_risk,
    "GET /settlements/{id}/slip.pdf": probe_slip,
}


async def test_every_field_and_export_of_the_service_is_in_the_matrix(service: Service) -> None:
    data = await service.graphql("{ __schema { queryType { fields { name } } mutationType { fields { name } } } }")
    fields = {f["name"] for kind in ("queryType", "mutationType") for f in data["__schema"][kind]["fields"]}
    app = create_app(settings_for(service.database_url, service.tokens))
    exports = {
        f"{method} {route.path}"
        for route in app.routes
        if getattr(route, "path", "").startswith("/exports/") or getattr(route, "path", "").endswith(".pdf")
        for method in sorted(getattr(route, "methods", None) or ())
        if method != "HEAD"
    }
    assert fields | exports == set(EXPECTED) == set(PROBES)


@pytest.mark.parametrize("field", sorted(EXPECTED))
async def test_each_role_of_each_region_sees_and_does_only_its_own_part(world: World, field: str) -> None:
    observed = {caller.name: await PROBES[field](world, caller) for caller in CALLERS}
    assert observed == {caller.name: expected(field, caller) for caller in CALLERS}
