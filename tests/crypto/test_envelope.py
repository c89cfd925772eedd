"""Envelope encryption on a real database: places bind ciphertexts, tenants are apart, keys rotate,
rewrap, retire and are destroyed; the SM suites match their published test vectors.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sqlalchemy import func, select

from api.crypto import management, suites
from api.crypto.envelope import DecryptionError, FieldCipher, Place, ValueUnreadable
from api.crypto.keyring import FileKeyring, KeyringError, KeyState
from api.crypto.suites import Suite
from api.db import models
from api.db.session import create_engine, create_sessionmaker
from api.settings import Mode, Settings
from tests.conftest import BACKENDS, Databases

SUITES = [Suite.AES_256_GCM, Suite.SM4_GCM]


@dataclass
class Vault:
    cipher: FieldCipher
    keyring: FileKeyring

    async def seal(self, place: Place, amount_fen: int) -> bytes:
        async with self.cipher.sessions() as session:
            ciphertext = await self.cipher.encrypt_amount(session, place, amount_fen)
            await session.commit()
        return ciphertext


@pytest.fixture(params=BACKENDS)
async def vault(request: pytest.FixtureRequest, databases: Databases, tmp_path: Path) -> AsyncIterator[Vault]:
    engine = create_engine(await databases.fresh(str(request.param)))
    keyring = FileKeyring(tmp_path / "keyring", Suite.AES_256_GCM, create_missing=True)
    try:
        yield Vault(FieldCipher(keyring, create_sessionmaker(engine), values_per_data_key=10), keyring)
    finally:
        await engine.dispose()


def price(row: uuid.UUID, insurer: str = "INS-A") -> Place:
    return Place("commercial_entries", "settlement_price_ct", row, f"insurer:{insurer}")


async def test_a_value_decrypts_in_its_place_only(vault: Vault) -> None:
    row, other_row = uuid.uuid4(), uuid.uuid4()
    ciphertext = await vault.seal(price(row), 9_800_000)

    assert await vault.cipher.decrypt_amount(price(row), ciphertext) == 9_800_000
    for elsewhere in (
        price(other_row),
        Place("settlement_rebates", "amount_ct", row, "insurer:INS-A"),
        price(row, insurer="INS-B"),
    ):
        with pytest.raises(DecryptionError, match="does not belong here"):
            await vault.cipher.decrypt_amount(elsewhere, ciphertext)


async def test_encryption_is_randomized(vault: Vault) -> None:
    place = price(uuid.uuid4())
    async with vault.cipher.sessions() as session:
        ciphertexts = {await vault.cipher.encrypt_amount(session, place, 9_800_000) for _ in range(1_000)}
        await session.commit()
    assert len(ciphertexts) == 1_000


async def test_ten_thousand_transplanted_ciphertexts_never_decrypt_silently(vault: Vault) -> None:
    """Random ciphertexts moved to another row, column or tenant: every one fails loudly."""
    rows = [uuid.uuid4() for _ in range(40)]
    columns = [
        ("commercial_entries", "settlement_price_ct"),
        ("settlement_rebates", "amount_ct"),
        ("people", "name_ct"),
    ]
    tenants = ["insurer:INS-A", "insurer:INS-B", "people:310100"]
    places = [Place(t, c, r, tenant) for r in rows for (t, c) in columns for tenant in tenants]
    generator = random.Random(20261123)
    sealed = []
    async with vault.cipher.sessions() as session:
        for place in generator.sample(places, 200):
            sealed.append((place, await vault.cipher.encrypt_amount(session, place, generator.randrange(10**9))))
        await session.commit()

    silent = attempts = 0
    while attempts < 10_000:
        origin, ciphertext = generator.choice(sealed)
        target = generator.choice(places)
        if target == origin:
            continue
        attempts += 1
        try:
            await vault.cipher.decrypt_amount(target, ciphertext)
            silent += 1
        except DecryptionError:
            pass
    assert (attempts, silent) == (10_000, 0)


async def test_destroying_one_insurers_key_shreds_its_values_and_no_one_elses(vault: Vault) -> None:
    a_place, b_place = price(uuid.uuid4(), "INS-A"), price(uuid.uuid4(), "INS-B")
    a_value, b_value = await vault.seal(a_place, 9_800_000), await vault.seal(b_place, 9_500_000)
    b_key = vault.keyring.active("insurer:INS-B")
    assert b_key is not None and b_key.key_id != vault.keyring.active("insurer:INS-A").key_id  # type: ignore[union-attr]

    management.destroy(vault.keyring, b_key.key_id)

    assert await vault.cipher.decrypt_amount(a_place, a_value) == 9_800_000
    with pytest.raises(ValueUnreadable, match="destroyed"):
        await vault.cipher.decrypt_amount(b_place, b_value)  # even though its data key was cached
    fresh = FieldCipher(vault.keyring, vault.cipher.sessions)
    with pytest.raises(ValueUnreadable, match="destroyed"):
        await fresh.decrypt_amount(b_place, b_value)


async def test_rotate_rewrap_retire_while_values_keep_decrypting(vault: Vault) -> None:
    places = [price(uuid.uuid4()) for _ in range(200)]
    sealed = [await vault.seal(place, index) for index, place in enumerate(places)]
    old = vault.keyring.active("insurer:INS-A")
    assert old is not None

    (new,) = management.rotate(vault.keyring, ["insurer:INS-A"])
    with pytest.raises(KeyringError, match="still wraps"):
        await management.retire(vault.cipher.sessions, vault.keyring, old.key_id)
    newer_value = await vault.seal(places[0], 424242)  # new data goes under the new master key
    rewrapped = await management.rewrap(vault.cipher.sessions, vault.keyring, batch=7)
    await management.retire(vault.cipher.sessions, vault.keyring, old.key_id)

    assert rewrapped == 20  # 200 values, 10 per data key
    assert vault.keyring.state(old.key_id) is KeyState.RETIRED
    assert await management.dependants(vault.cipher.sessions, new.key_id) == 21
    fresh = FieldCipher(vault.keyring, vault.cipher.sessions)  # nothing cached: every key unwrapped anew
    assert [await fresh.decrypt_amount(place, value) for place, value in zip(places, sealed, strict=True)] == list(
        range(200)
    )
    assert await fresh.decrypt_amount(places[0], newer_value) == 424242


async def test_a_stored_data_key_that_was_altered_is_refused(vault: Vault) -> None:
    place = price(uuid.uuid4())
    value = await vault.seal(place, 100)
    table = models.DataKey.__table__
    async with vault.cipher.sessions() as session:
        row = (await session.execute(select(table))).mappings().one()
        tampered = row["wrapped"][:-1] + bytes([row["wrapped"][-1] ^ 1])
        await session.execute(table.update().where(table.c.id == row["id"]).values(wrapped=tampered))
        await session.commit()
    with pytest.raises(KeyringError, match="altered"):
        await FieldCipher(vault.keyring, vault.cipher.sessions).decrypt_amount(place, value)


async def test_new_data_keys_are_stored_only_with_the_values_they_encrypt(vault: Vault) -> None:
    async with vault.cipher.sessions() as session:
        await vault.cipher.encrypt_amount(session, price(uuid.uuid4()), 1)
        await session.rollback()
    async with vault.cipher.sessions() as session:
        count = (await session.execute(select(func.count()).select_from(models.DataKey))).scalar_one()
    assert count == 0
    assert vault.cipher._active == {}  # the rolled-back key is offered to no one


def test_sm3_and_sm4_match_their_published_test_vectors() -> None:
    if not suites.sm4_gcm_available():
        pytest.skip("this OpenSSL has no SM4-GCM")
    digest = hashes.Hash(hashes.SM3())
    digest.update(b"abc")  # GB/T 32905-2016, example 1
    assert digest.finalize().hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    digest = hashes.Hash(hashes.SM3())
    digest.update(b"abcd" * 16)  # GB/T 32905-2016, example 2
    assert digest.finalize().hex() == "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    block = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    assert (block.update(key) + block.finalize()).hex() == "681edf34d206965e86b3e94f536e4246"  # GB/T 32907-2016
    # RFC 8998, appendix A.1: SM4-GCM
    nonce = bytes.fromhex("00001234567800000000abcd")
    associated = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
    plaintext = bytes.fromhex("".join(c * 16 for c in "abcdefea"))  # AAAA...BBBB...EEEE...AAAA...
    sealed = suites.seal(Suite.SM4_GCM, key, nonce, plaintext, associated)
    assert sealed.hex() == (
        "17f399f08c67d5ee19d0dc9969c4bb7d5fd46fd3756489069157b282bb200735"
        "d82710ca5c22f0ccfa7cbf93d496ac15a56834cbcf98c397b4024a2691233b8d"
        "83de3541e4c2b58177e065a9bf7b62ec"
    )
    assert suites.open_(Suite.SM4_GCM, key, nonce, sealed, associated) == plaintext


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.label)
async def test_each_suite_encrypts_fields_end_to_end(databases: Databases, tmp_path: Path, suite: Suite) -> None:
    if suite is Suite.SM4_GCM and not suites.sm4_gcm_available():
        pytest.skip("this OpenSSL has no SM4-GCM")
    engine = create_engine(await databases.fresh("sqlite"))
    cipher = FieldCipher(FileKeyring(tmp_path, suite, create_missing=True), create_sessionmaker(engine))
    place = Place("people", "name_ct", uuid.uuid4(), "people:310100")
    async with cipher.sessions() as session:
        ciphertext = await cipher.encrypt_text(session, place, "张伟")
        await session.commit()
    assert ciphertext[1] == suite
    assert await cipher.decrypt_text(place, ciphertext) == "张伟"
    assert len(cipher.blind_index("id_number", "X")) == 64
    await engine.dispose()


async def test_a_service_set_for_sm4_refuses_to_start_without_it(
    databases: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.app import create_app

    monkeypatch.setattr(suites, "sm4_gcm_available", lambda: False)
    settings = Settings(
        database_url=await databases.fresh("sqlite"),
        mode=Mode.DEVELOPMENT,
        demo_data=False,
        keys_dir=tmp_path,
        cipher_suite="sm4-gcm",
    )
    app = create_app(settings)
    with pytest.raises(suites.SuiteUnavailable, match="SM4-GCM"):
        async with app.router.lifespan_context(app):
            pass
