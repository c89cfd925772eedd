"""Tenants' keys are isolated: settlement decrypts only the prices its claim may need, and one
insurer's master key destroyed (crypto-shredding, an insurer leaving) stops no claim: where that
insurer's rebate cannot be computed the settlement records it as not computable and lists it for
that insurer; a rebate computed before shows KEY_DESTROYED on its own field, and the rest reads.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import date
from typing import Any

from sqlalchemy import select

from api.crypto import management
from api.crypto.keyring import FileKeyring, KeyState
from api.crypto.suites import Suite
from api.crypto.tenants import insurer_tenant
from api.db import models
from api.db.session import create_engine, create_sessionmaker
from tests.api.conftest import Service
from tests.api.documents import (
    CAR_T,
    HOSPITAL,
    OWN_SHARE,
    REFERENCE_DATA,
    REGION,
    SETTLE,
    SETTLEMENT_FIELDS,
    claim,
    in_second_region,
    second_region_data,
)

READ = f"""query($id: ID!) {{ settlement(id: $id) {{ {SETTLEMENT_FIELDS}
  rebates {{ line drug insurer status amount {{ value disclosure }} }} }} }}"""
STATEMENT = """query { rebateStatement(start: "2026-01-01", end: "2026-12-31") {
  insurer drug units amount lost { settlement line units reason } } }"""
PRE_SETTLE = "mutation($c: ClaimInput!) { preSettle(claim: $c) { __typename } }"


def car_t(serial: str) -> dict[str, Any]:
    return claim(serial, diagnoses=("C83.3",), lines=[{"drug": CAR_T, "quantity": 1, "unitPrice": "120000.00"}])


async def rows(service: Service, table: Any, *where: Any) -> list[dict[str, Any]]:
    engine = create_engine(service.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            return [dict(row) for row in (await session.execute(select(table).where(*where))).mappings()]
    finally:
        await engine.dispose()


async def destroy_keys_of(service: Service, insurer: str) -> None:
    """Destroy every master key that wraps a data key of `insurer`, and give the running service
    the time it takes to see the keyring change.
    """
    data_keys = models.DataKey.__table__
    wrapping = {
        row["master_key_id"] for row in await rows(service, data_keys, data_keys.c.tenant == insurer_tenant(insurer))
    }
    assert wrapping, f"{insurer} has no data key to shred"
    keyring = FileKeyring(service.tokens.keyring_dir, Suite.AES_256_GCM, create_missing=False)
    for key_id in sorted(wrapping):
        if keyring.state(key_id) is not KeyState.DESTROYED:
            management.destroy(keyring, key_id)
    keyring.create(insurer_tenant(insurer))  # the keyring is shared by the session's tests: later ones need a key
    await asyncio.sleep(FileKeyring.SCAN_SECONDS + 0.1)


async def settle(caller: Service, request: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = (await caller.graphql(SETTLE, {"claim": request}))["settle"]
    assert result["__typename"] == "Settlement", result
    return result


def paid(settlement: dict[str, Any]) -> list[tuple[str, str]]:
    return [(fund["kind"], fund["amount"]) for fund in settlement["explanation"]["funds"]]


async def test_one_insurer_key_destroyed_stops_no_claim_and_its_lost_rebates_are_listed_for_it(
    service: Service,
) -> None:
    assert (await service.load(second_region_data()))["__typename"] == "LoadSummary"
    elsewhere = service.as_(service.tokens.mint("hospital", in_second_region(HOSPITAL)))
    insurer_a = service.as_(service.tokens.payer("insurer", "INS-A"))
    insurer_b = service.as_(service.tokens.payer("insurer", "INS-B"))
    auditor = service.as_(service.tokens.supervisor(REGION, grants=("price_audit",)))
    await destroy_keys_of(service, "INS-A")  # before any claim: nothing of INS-A's is cached anywhere

    unrelated = await settle(service, claim("K-TRAS"))  # another drug of the same region
    own_share = await settle(
        service, claim("K-OSI", lines=[{"drug": OWN_SHARE, "quantity": 1, "unitPrice": "8000.00"}])
    )
    shredded = await settle(service, car_t("K-CART"))  # INS-A's drug: its rebate cannot be computed
    untouched = await settle(elsewhere, in_second_region(car_t("K-CART")))  # INS-B's, in the other region

    assert paid(shredded) == paid(untouched)  # split on list prices: the lost price changes nothing of it
    assert ("commercial", "84000.00") in paid(shredded)
    read = (await insurer_a.post(READ, {"id": shredded["id"]})).json()
    assert "errors" not in read, read["errors"]
    assert read["data"]["settlement"]["rebates"] == [
        {"line": 0, "drug": CAR_T, "insurer": "INS-A", "status": "NOT_COMPUTABLE", "amount": None}
    ]
    assert (await auditor.graphql(READ, {"id": shredded["id"]}))["settlement"]["rebates"] == read["data"]["settlement"][
        "rebates"
    ]
    for settled in (unrelated, own_share):
        assert (await service.graphql(READ, {"id": settled["id"]}))["settlement"]["rebates"] == []
    lost = [{"settlement": shredded["id"], "line": 0, "units": 1, "reason": "NOT_COMPUTABLE"}]
    assert (await insurer_a.graphql(STATEMENT))["rebateStatement"] == [
        {"insurer": "INS-A", "drug": CAR_T, "units": 0, "amount": "0.00", "lost": lost}
    ]
    assert (await auditor.graphql(STATEMENT))["rebateStatement"] == (await insurer_a.graphql(STATEMENT))[
        "rebateStatement"
    ]
    assert (await insurer_b.graphql(STATEMENT))["rebateStatement"] == [
        {"insurer": "INS-B", "drug": CAR_T, "units": 1, "amount": "25000.00", "lost": []}
    ]
    stored = {row["insurer_code"]: row for row in await rows(service, models.SettlementRebate.__table__)}
    assert (stored["INS-A"]["status"], stored["INS-A"]["amount_ct"]) == ("not_computable", None)
    assert stored["INS-B"]["status"] == "computed" and stored["INS-B"]["amount_ct"]


async def test_a_rebate_computed_before_its_key_was_destroyed_reads_as_key_destroyed_on_its_own_field_only(
    service: Service,
) -> None:
    insurer_a = service.as_(service.tokens.payer("insurer", "INS-A"))
    before = await settle(service, car_t("K-BEFORE"))  # the formulary version and INS-A's data key now cached
    clear = (await insurer_a.graphql(READ, {"id": before["id"]}))["settlement"]["rebates"][0]["amount"]
    assert clear == {"value": "22000.00", "disclosure": "CLEAR"}

    await destroy_keys_of(service, "INS-A")
    after = await settle(service, car_t("K-AFTER"))  # no cached clear price outlives the key

    read = (await insurer_a.post(READ, {"id": before["id"]})).json()
    assert [(error["path"], error["extensions"]["code"]) for error in read["errors"]] == [
        (["settlement", "rebates", 0, "amount"], "KEY_DESTROYED")
    ]
    shown = read["data"]["settlement"]
    assert shown["explanation"] == before["explanation"] and shown["serial"] == "K-BEFORE"
    assert shown["rebates"] == [{"line": 0, "drug": CAR_T, "insurer": "INS-A", "status": "COMPUTED", "amount": None}]
    masked = await service.graphql(READ, {"id": before["id"]})  # the hospital never decrypts it: masked, no error
    assert masked["settlement"]["rebates"][0]["amount"] == {"value": None, "disclosure": "MASKED"}
    listed = (
        await insurer_a.post(f"query {{ settlements(first: 10) {{ edges {{ node {{ {SETTLEMENT_FIELDS} }} }} }} }}")
    ).json()
    assert "errors" not in listed and len(listed["data"]["settlements"]["edges"]) == 2
    after_read = await insurer_a.graphql(READ, {"id": after["id"]})
    assert after_read["settlement"]["rebates"][0]["status"] == "NOT_COMPUTABLE"
    statement = (await insurer_a.graphql(STATEMENT))["rebateStatement"]
    assert [(line["units"], line["amount"]) for line in statement] == [(0, "0.00")]
    assert [(lost["settlement"], lost["reason"]) for lost in statement[0]["lost"]] == [
        (before["id"], "UNREADABLE"),
        (after["id"], "NOT_COMPUTABLE"),
    ]


async def test_settlement_decrypts_only_the_prices_of_the_claims_drugs_under_its_plans_insurers(
    service: Service,
) -> None:
    assert (await service.load(second_region_data()))["__typename"] == "LoadSummary"  # INS-B exists
    formulary = copy.deepcopy(REFERENCE_DATA["formulary"])
    formulary["commercial"] = [
        {"drug": CAR_T, "insurer": "INS-A", "settlement_price": "98000.00"},
        {"drug": CAR_T, "insurer": "INS-B", "settlement_price": "95000.00"},  # no plan of INS-B in this region
        {"drug": OWN_SHARE, "insurer": "INS-A", "settlement_price": "7000.00"},
    ]
    document = {"region": REGION, "effective_from": "2026-02-01", "formulary": formulary}
    assert (await service.load(document))["__typename"] == "LoadSummary"
    entries = models.CommercialEntry.__table__
    versions = models.FormularyVersion.__table__
    (version,) = await rows(
        service, versions, versions.c.region == REGION, versions.c.effective_from == date(2026, 2, 1)
    )
    by_key = {
        (e["drug_code"], e["insurer_code"]): str(e["id"])
        for e in await rows(service, entries, entries.c.formulary_version_id == version["id"])
    }

    assert (await service.graphql(PRE_SETTLE, {"c": car_t("D-PRE")}))["preSettle"]["__typename"] == "Settlement"
    await settle(service, claim("D-TRAS"))
    await settle(service, car_t("D-CART"))

    audit = models.AuditEntry.__table__
    decrypted = [
        row["detail"]["entries"]
        for row in await rows(service, audit, audit.c.action == "decrypt commercial_entries.settlement_price_ct")
    ]
    assert decrypted == [[by_key[(CAR_T, "INS-A")]]]  # the CAR-T settlement's own price; nothing for the others
