"""Key rotation on a running service: rotate every tenant's master key, rewrap 10,000 data keys
in batches while cashiers keep settling, retire the old keys, and read every value back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from api.app import create_app
from api.crypto import management
from api.crypto.envelope import FieldCipher, Place
from api.crypto.keyring import FileKeyring, KeyState
from api.crypto.suites import Suite
from api.crypto.tenants import insurer_tenant, people_tenant
from api.db import models
from api.db.session import create_engine, create_sessionmaker
from tests.api.conftest import Service, running, settings_for
from tests.api.documents import CAR_T, SETTLE, claim
from tests.api.tokens import Tokens

PEOPLE = 5_000  # two encrypted values each, one data key per value: 10,000 data keys


@pytest.fixture
async def small_keys_service(database_url: str, tokens: Tokens) -> AsyncIterator[Service]:
    """The service encrypting one value per data key, so that rewrapping has 10,000 keys to do."""
    from tests.api.documents import REFERENCE_DATA

    settings = settings_for(database_url, tokens).replace(values_per_data_key=1)
    async with running(create_app(settings)) as client:
        service = Service(client, database_url, tokens, tokens.hospital)
        document = dict(REFERENCE_DATA)
        document["people"] = [*REFERENCE_DATA["people"], *crowd()]
        loaded = await service.load(document)
        assert loaded["__typename"] == "LoadSummary", loaded
        yield service
    assert await service.violations() == []


def crowd() -> list[dict[str, Any]]:
    return [
        {
            "psn_no": f"X{n:06d}",
            "id_number": f"31010119900101{n:04d}",
            "name": f"Person {n}",
            "insurance_type": "employee",
            "region": "310100",
        }
        for n in range(PEOPLE)
    ]


async def test_rotate_rewrap_and_retire_while_settlements_continue(small_keys_service: Service) -> None:
    service = small_keys_service
    keyring = FileKeyring(service.tokens.keyring_dir, Suite.AES_256_GCM, create_missing=False)
    engine = create_engine(service.database_url)
    sessions = create_sessionmaker(engine)
    try:
        tenants = await management.tenants(sessions, keyring)
        old = {key.key_id for key in keyring.master_keys() if key.state is KeyState.ACTIVE}
        management.rotate(keyring, tenants)
        keyring._scan(force=True)

        stop = asyncio.Event()

        async def cashier() -> list[str]:
            outcomes = []
            serial = 0
            while not stop.is_set() or serial < 5:
                serial += 1
                car_t = claim(
                    f"K-{serial}",
                    diagnoses=("C83.3",),
                    lines=[{"drug": CAR_T, "quantity": 1, "unitPrice": "120000.00"}],
                )
                outcomes.append((await service.graphql(SETTLE, {"claim": car_t}))["settle"]["__typename"])
            return outcomes

        settling = asyncio.create_task(cashier())
        rewrapped = await management.rewrap(sessions, keyring, batch=500)
        stop.set()
        outcomes = await settling
        rewrapped += await management.rewrap(sessions, keyring, batch=500)  # keys made before the rotation was seen
        for key_id in old:
            await management.retire(sessions, keyring, key_id)

        assert rewrapped >= 2 * PEOPLE
        assert set(outcomes) == {"Settlement"} and len(outcomes) >= 5
        assert all(keyring.state(key_id) is KeyState.RETIRED for key_id in old)

        fresh = FieldCipher(keyring, sessions)  # no cached data key: every value is unwrapped anew
        people = models.Person.__table__
        rebates = models.SettlementRebate.__table__
        async with sessions() as session:
            everyone = (await session.execute(select(people))).mappings().all()
            owed = (await session.execute(select(rebates))).mappings().all()
        names = {
            await fresh.decrypt_text(
                Place("people", "name_ct", row["id"], people_tenant(row["region"])), row["name_ct"]
            )
            for row in everyone
        }
        amounts = {
            await fresh.decrypt_amount(
                Place("settlement_rebates", "amount_ct", row["id"], insurer_tenant(row["insurer_code"])),
                row["amount_ct"],
            )
            for row in owed
        }
        assert len(everyone) == PEOPLE + 4 and f"Person {PEOPLE - 1}" in names and "Zhang Wei" in names
        assert amounts == {2_200_000}  # 120000.00 - 98000.00, on every CAR-T settlement
    finally:
        await engine.dispose()
