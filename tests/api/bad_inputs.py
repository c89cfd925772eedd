"""A corpus of requests a client can get wrong, by mistake or on purpose.

Each entry is one HTTP request to `/graphql`. None of them may make the service answer 500, mask
its answer as an internal error, or write a business row: each is refused with a stable code (an
HTTP-level refusal, a GraphQL request error, or a mutation's typed error).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.api.documents import (
    HOSPITAL,
    MEMBER,
    PHARMACY,
    PRE_SETTLE,
    REVERSE,
    SETTLE,
    SMALL_HOSPITAL,
    TRASTUZUMAB,
    claim,
)

JSON = {"content-type": "application/json"}
STRICT = {"content-type": "application/json", "accept": "application/graphql-response+json"}
CANARY_ID_NUMBER = "110101199003077777"


@dataclass(frozen=True)
class BadInput:
    name: str
    method: str = "POST"
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))
    params: dict[str, str] | None = None
    token: str = "hospital"
    """Whose bearer token: hospital, pharmacy, admin, supervisor, insurer."""


def post(name: str, payload: Any, headers: dict[str, str] | None = None, token: str = "hospital") -> BadInput:
    return BadInput(name, body=json.dumps(payload).encode(), headers=headers or dict(JSON), token=token)


def raw(name: str, body: bytes, headers: dict[str, str] | None = None) -> BadInput:
    return BadInput(name, body=body, headers=dict(JSON) if headers is None else headers)


def query(name: str, document: str, variables: Any = None, headers: dict[str, str] | None = None) -> BadInput:
    payload: dict[str, Any] = {"query": document}
    if variables is not None:
        payload["variables"] = variables
    return post(name, payload, headers)


def _claim(label: str, **changes: Any) -> dict[str, Any]:
    body = claim(label)
    for key, value in changes.items():
        if key.startswith("line_"):
            body["lines"][0][key.removeprefix("line_")] = value
        else:
            body[key] = value
    return body


def settle(name: str, **changes: Any) -> BadInput:
    return query(name, SETTLE, {"claim": _claim(f"BAD-{name}", **changes)})


def _http() -> Iterator[BadInput]:
    yield raw("truncated JSON", b'{ "not a JSON')
    yield raw("truncated JSON, strict accept", b'{ "query": "{ __typename }"', STRICT)
    yield raw("empty body", b"")
    yield raw("whitespace body", b"   \n ")
    yield raw("JSON null", b"null")
    yield raw("JSON number", b"42")
    yield raw("JSON string", b'"{ __typename }"')
    yield raw("JSON array batch", b'[{"query": "{ __typename }"}]')
    yield raw("NaN in JSON", b'{"query": "{ __typename }", "variables": {"a": NaN}}')
    yield raw("Infinity in JSON", b'{"query": "{ __typename }", "variables": {"a": -Infinity}}')
    yield raw(
        "deeply nested arrays",
        b'{"query": "{ __typename }", "variables": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
    )
    yield raw(
        "deeply nested objects", b'{"query": "{ __typename }", "variables": ' + b'{"a":' * 50_000 + b"1" + b"}" * 50_001
    )
    yield raw("invalid UTF-8", b'{"query": "{ __typename \xff\xfe }"}')
    yield raw("UTF-16 body", '{"query": "{ __typename }"}'.encode("utf-16"))
    yield raw("trailing garbage", b'{"query": "{ __typename }"} }')
    yield raw("no content type", b'{"query": "{ __typename }"}', {})
    yield raw("form content type", b"query=%7B__typename%7D", {"content-type": "application/x-www-form-urlencoded"})
    yield raw("text content type", b'{"query": "{ __typename }"}', {"content-type": "text/plain"})
    yield raw("graphql content type", b"{ __typename }", {"content-type": "application/graphql"})
    yield raw("latin-1 charset", b'{"query": "{ __typename }"}', {"content-type": "application/json; charset=latin-1"})
    yield raw("not acceptable", b'{"query": "{ __typename }"}', {**JSON, "accept": "text/csv"})
    yield raw("body over the limit", b'{"query": "{ __typename }", "variables": {"pad": "' + b"x" * 300_000 + b'"}}')
    yield post("missing query", {"notquery": "{ __typename }"})
    yield post("query typo", {"qeury": "{ __typename }"})
    yield post("query is an object", {"query": {"obj": "ect"}})
    yield post("query is a number", {"query": 0})
    yield post("query is false", {"query": False})
    yield post("query is a list", {"query": ["{ __typename }"]})
    yield post("operationName is an object", {"query": "{ __typename }", "operationName": {"a": 1}})
    yield post("operationName is a number", {"query": "{ __typename }", "operationName": 7})
    yield post("variables is a string", {"query": "{ __typename }", "variables": "{}"})
    yield post("variables is a list", {"query": "{ __typename }", "variables": [1]})
    yield post("variables is a number", {"query": "{ __typename }", "variables": 0})
    yield post("extensions is a string", {"query": "{ __typename }", "extensions": "x"})
    yield post("extensions is a list", {"query": "{ __typename }", "extensions": ["x"]})
    yield BadInput("PUT", method="PUT", body=b'{"query": "{ __typename }"}')
    yield BadInput("DELETE", method="DELETE")
    yield BadInput("PATCH", method="PATCH", body=b'{"query": "{ __typename }"}')
    yield BadInput("GET mutation", method="GET", params={"query": "mutation { __typename }"}, headers={})
    yield BadInput("GET without query", method="GET", params={}, headers={})
    yield BadInput(
        "GET bad variables JSON", method="GET", params={"query": "{ __typename }", "variables": "{"}, headers={}
    )
    yield BadInput(
        "GET variables not an object", method="GET", params={"query": "{ __typename }", "variables": "[]"}, headers={}
    )


def _documents() -> Iterator[BadInput]:
    yield query("parse error", "{")
    yield query("parse error, strict accept", "query {", headers=STRICT)
    yield query("empty document", "")
    yield query("only a comment", "# nothing")
    yield query("unknown character", "{ __typename \u00a7 }")
    yield query("unknown field", "{ 8f31403dfe404bccbb0e835f2629c6a7 }")
    yield query("unknown field, strict accept", "{ noSuchField }", headers=STRICT)
    yield query("scalar with a selection", '{ institution(code: "H310003") { name { x } } }')
    yield query("object without a selection", '{ institution(code: "H310003") }')
    yield query("missing required argument", "{ institution { name } }")
    yield query("argument of the wrong type", "{ institution(code: 42) { name } }")
    yield query("unknown argument", '{ institution(code: "H310003", nope: 1) { name } }')
    yield query("undefined variable", "query { institution(code: $c) { name } }")
    yield query("unused variable of unknown type", "query($x: NoSuchType) { __typename }")
    yield query("undefined fragment", "{ ...Missing }")
    yield query("fragment cycle", "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }")
    yield query("fragment on unknown type", "{ ...A } fragment A on Nope { x }")
    yield query("duplicate operation names", "query A { __typename } query A { __typename }")
    yield query("several operations without a name", "query A { __typename } query B { __typename }")
    yield post("unknown operation name", {"query": "query A { __typename }", "operationName": "B"})
    yield query("subscription", "subscription { __typename }")
    yield query(
        "too deep", "{ __schema { types { fields { type " + "{ ofType " * 9 + "{ name }" + " }" * 9 + " } } } } }"
    )
    yield query("too many aliases", "{" + " ".join(f"a{i}: __typename" for i in range(200)) + " }")
    yield query("too many tokens", "{" + " __typename" * 6_000 + " }")
    yield query("document too long", "{ __typename }" + " " * 30_000)
    yield query("too many operations", " ".join(f"query Q{i} {{ __typename }}" for i in range(50)))
    bomb = ["query { ...F0 }"]
    bomb += [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(40)]
    bomb.append('fragment F40 on Query { institution(code: "H310003") { name } }')
    yield query("doubling fragments", " ".join(bomb))
    yield query("NUL in a string literal", '{ institution(code: "H31\\u00000003") { name } }')
    yield query("control character in a string literal", '{ institution(code: "H31\\u00070003") { name } }')
    yield query("lone surrogate in a string literal", '{ institution(code: "\\ud800") { name } }')
    yield query("over-long string literal", '{ institution(code: "' + "x" * 11_000 + '") { name } }')
    yield query("NUL in a variable", "query($c: String!) { institution(code: $c) { name } }", {"c": "H31\x000003"})
    yield raw(
        "lone surrogate in a variable",
        b'{"query": "query($c: String!) { institution(code: $c) { name } }", "variables": {"c": "\\udc00"}}',
    )
    yield query(
        "NUL in a variable's key",
        "query($c: String!) { institution(code: $c) { name } }",
        {"c\x00": "x", "c": "H310003"},
    )


def _coercion() -> Iterator[BadInput]:
    person = "query($p: String!) { person(psnNo: $p) { psnNo } }"
    yield query("null for a non-null variable", "query CoerceFailure($id: ID!) { __typename }", {"id": None})
    yield query(
        "null for a non-null variable, strict", "query CoerceFailure($id: ID!) { __typename }", {"id": None}, STRICT
    )
    yield query("ID number where an Int is expected", "query($y: Int!) { __typename }", {"y": CANARY_ID_NUMBER})
    yield query("ID number given as a number", person, {"p": 110101199003077777})
    yield query("object for a string", person, {"p": {"a": 1}})
    yield query("list for a string", person, {"p": ["a"]})
    yield query("missing variable", person, {})
    yield query(
        "Int overflow", 'query($y: Int!) { person(psnNo: "P0001") { accumulators(year: $y) { plan } } }', {"y": 2**40}
    )
    yield query("float for an Int", "query($y: Int!) { __typename }", {"y": 1.5})
    yield query("bad date", SETTLE, {"claim": _claim("BAD-date", serviceDate="2026-02-30")})
    yield query("date as a number", SETTLE, {"claim": _claim("BAD-date-number", serviceDate=20260315)})
    yield query("unknown enum value", SETTLE, {"claim": _claim("BAD-visit", visit="SPA")})
    yield query("lowercase enum value", SETTLE, {"claim": _claim("BAD-visit-lower", visit="inpatient")})
    yield query("unknown input field", SETTLE, {"claim": _claim("BAD-field", surprise=1)})
    yield query(
        "missing input field", SETTLE, {"claim": {k: v for k, v in _claim("BAD-missing").items() if k != "lines"}}
    )
    yield query("quantity as a string", SETTLE, {"claim": _claim("BAD-q-string", line_quantity="2")})
    yield query("quantity beyond Int", SETTLE, {"claim": _claim("BAD-q-huge", line_quantity=2**40)})
    yield query("unit price as a number", SETTLE, {"claim": _claim("BAD-price-number", line_unitPrice=1600)})
    yield query("claim is a list", SETTLE, {"claim": [1, 2]})
    yield query("lines is an object", SETTLE, {"claim": _claim("BAD-lines-object", lines={"drug": TRASTUZUMAB})})
    yield query(
        "ID number in an unknown field",
        f'{{ institution(code: "H310003", idNumber: "{CANARY_ID_NUMBER}") {{ name }} }}',
    )


def _business() -> Iterator[BadInput]:
    yield settle("unknown drug", line_drug="XNOSUCHDRUG01")
    yield settle("negative quantity", line_quantity=-2)
    yield settle("zero quantity", line_quantity=0)
    yield settle("absurd quantity", line_quantity=2_000_000)
    yield settle("three decimals", line_unitPrice="1600.001")
    yield settle("negative price", line_unitPrice="-1.00")
    yield settle("price in exponent form", line_unitPrice="1e5")
    yield settle("price NaN", line_unitPrice="NaN")
    yield settle("price Infinity", line_unitPrice="Infinity")
    yield settle("price with spaces", line_unitPrice=" 16 00.00 ")
    yield settle("price of words", line_unitPrice="sixteen hundred")
    yield settle("absurd price", line_unitPrice="99999999999999999.00")
    yield settle("no lines", lines=[])
    yield settle(
        "too many lines", lines=[{"drug": TRASTUZUMAB, "quantity": 1, "unitPrice": "1.00", "traceCodes": []}] * 201
    )
    yield settle("too many diagnoses", diagnoses=[f"C{i:02d}" for i in range(21)])
    yield settle("over-long diagnosis", diagnoses=["C50." + "9" * 40])
    yield settle("empty serial", serial=" ")
    yield settle("over-long serial", serial="S" * 101)
    yield settle("over-long person", person="P" * 65)
    yield settle("over-long drug", line_drug="X" * 65)
    yield settle("over-long institution", institution="H" * 65)
    yield settle("over-long DRG group", drgGroup="G" * 33)
    yield settle("over-long prescribing hospital", prescribingHospital="H" * 65)
    yield settle("over-long prescription id", line_prescriptionId="R" * 65)
    yield settle("malformed trace code", line_traceCodes=["123", "456"])
    yield settle("over-long trace code", line_traceCodes=["8" * 5_000, "8" * 5_000])
    yield settle("trace code of another product", line_traceCodes=["99999990000000000001", "99999990000000000002"])
    yield settle("too few trace codes", line_traceCodes=[])
    yield settle("unknown person", person="P9999")
    yield settle("another institution", institution=SMALL_HOSPITAL)
    yield settle("far future", serviceDate="9999-12-31")
    yield settle("before any rules", serviceDate="1900-01-01")
    yield post(
        "pharmacy settles as the hospital",
        {"query": SETTLE, "variables": {"claim": _claim("BAD-tenant")}},
        token="pharmacy",
    )
    yield post("insurer settles", {"query": SETTLE, "variables": {"claim": _claim("BAD-insurer")}}, token="insurer")
    yield post(
        "supervisor settles", {"query": SETTLE, "variables": {"claim": _claim("BAD-supervisor")}}, token="supervisor"
    )
    yield query("pre-settle unknown drug", PRE_SETTLE, {"claim": _claim("BAD-pre", line_drug="XNOSUCHDRUG01")})
    yield query(
        "pre-settle for a pharmacy's institution", PRE_SETTLE, {"claim": _claim("BAD-pre-2", institution=PHARMACY)}
    )
    yield query(
        "reverse an unknown id", REVERSE, {"input": {"id": "00000000-0000-0000-0000-000000000000", "reason": "x"}}
    )
    yield query("reverse a malformed id", REVERSE, {"input": {"id": "not-a-uuid", "reason": "x"}})
    yield query(
        "reverse without a reason", REVERSE, {"input": {"institution": HOSPITAL, "serial": "NONE", "reason": "  "}}
    )
    yield query(
        "reverse with an over-long reason",
        REVERSE,
        {"input": {"institution": HOSPITAL, "serial": "NONE", "reason": "r" * 501}},
    )
    yield query("reverse naming nothing", REVERSE, {"input": {"reason": "x"}})
    yield query(
        "reverse another institution's serial",
        REVERSE,
        {"input": {"institution": SMALL_HOSPITAL, "serial": "S1", "reason": "x"}},
    )
    yield query(
        "reverse with an over-long serial",
        REVERSE,
        {"input": {"institution": HOSPITAL, "serial": "S" * 101, "reason": "x"}},
    )
    handle = "mutation($i: HandleAnomalyInput!) { handleAnomaly(input: $i) { __typename ... on Error { code } } }"
    yield query("handle a malformed anomaly id", handle, {"i": {"id": "nope", "status": "EXPLAINED", "note": "n"}})
    yield query(
        "handle an unknown anomaly",
        handle,
        {"i": {"id": "00000000-0000-0000-0000-000000000000", "status": "EXPLAINED", "note": "n"}},
    )
    yield query(
        "handle with an over-long note",
        handle,
        {"i": {"id": "00000000-0000-0000-0000-000000000000", "status": "EXPLAINED", "note": "=" * 1001}},
    )
    record = "mutation($i: PrescriptionInput!) { recordPrescription(input: $i) { __typename ... on Error { code } } }"
    yield query(
        "prescription with an over-long id",
        record,
        {"i": {"prescriptionId": "R" * 65, "person": MEMBER, "drugs": [TRASTUZUMAB], "issuedOn": "2026-03-01"}},
    )
    yield query(
        "prescription without drugs",
        record,
        {"i": {"prescriptionId": "R1", "person": MEMBER, "drugs": [], "issuedOn": "2026-03-01"}},
    )
    load = "mutation($d: JSON!) { loadDocument(document: $d) { __typename ... on Error { code field } } }"
    yield post("load a list", {"query": load, "variables": {"d": [1, 2]}}, token="admin")
    yield post("load unknown keys", {"query": load, "variables": {"d": {"surprise": 1}}}, token="admin")
    yield post(
        "load an over-long payer name",
        {"query": load, "variables": {"d": {"payers": [{"code": "X", "name": "n" * 201, "kind": "insurer"}]}}},
        token="admin",
    )
    yield post(
        "load an over-long payer code",
        {"query": load, "variables": {"d": {"payers": [{"code": "X" * 65, "name": "n", "kind": "insurer"}]}}},
        token="admin",
    )
    yield post(
        "load an over-long institution region",
        {
            "query": load,
            "variables": {
                "d": {"institutions": [{"code": "HX", "name": "n", "kind": "hospital", "level": 1, "region": "9" * 17}]}
            },
        },
        token="admin",
    )
    grant = (
        'mutation { grantPrepayment(reference: "R-1", payer: "NHSA-310100", institution: "H310003", amount: "%s") '
        "{ __typename ... on Error { code } } }"
    )
    yield post("grant a negative amount", {"query": grant % "-5.00"}, token="admin")
    yield post("grant three decimals", {"query": grant % "5.001"}, token="admin")
    yield post("grant by a hospital", {"query": grant % "5.00"})
    over_long_reference = (
        'mutation { grantPrepayment(reference: "%s", payer: "NHSA-310100", institution: "H310003", amount: "5.00") '
        "{ __typename ... on Error { code } } }"
    )
    yield post("grant with an over-long reference", {"query": over_long_reference % ("R" * 101)}, token="admin")
    yield query("settlements page too large", "{ settlements(first: 100000) { edges { node { id } } } }")
    yield query("settlements page negative", "{ settlements(first: -1) { edges { node { id } } } }")
    yield query("settlements bad cursor", '{ settlements(first: 5, after: "garbage") { edges { node { id } } } }')


CORPUS: tuple[BadInput, ...] = (*_http(), *_documents(), *_coercion(), *_business())
