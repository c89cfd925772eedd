"""Witnesses: copies of the audit log's signed checkpoints kept outside the database.

Whoever can rewrite the database can delete entries with their seals and checkpoints, empty
the log, or restore an older copy, and the database alone would still look consistent. A
checkpoint already handed to a witness cannot be taken back, so verification compares the
database with what the witnesses hold.

    file witness    the sealer appends each checkpoint, after its commit, to
                    SETTLE_AUDIT_WITNESS_DIR/checkpoints.jsonl (opened for appending only, under
                    a lock, fsynced; lines stay in ascending sequence). Put the folder where the
                    database's administrators cannot write: another volume, or `chattr +a`.
    HTTP witnesses  a supervisor runs `settle audit witness https://settle.example --file F`
                    with a supervisor's bearer token (SETTLE_WITNESS_TOKEN): it pulls
                    `GET /audit/checkpoints?after=N` every few seconds and appends what it gets
                    to F, refusing lines that do not verify, go backwards, or change a key.
                    It serves F read-only over HTTPS with any static web server; our
                    verification reads it at the URLs in SETTLE_AUDIT_WITNESS_URLS.

Reading a witness needs no secret: a line holds only a sequence number, a hash, a time, a key
id, that key's public half and a signature, and it proves itself (the signature covers the
rest). Verification checks the signature against our own keyring, never against the key the
line carries; HTTPS keeps a third party from serving us an older copy.

A line: {"format": "settle-audit-checkpoint/2", "sequence": N, "head": HEX, "signed_at": ISO,
"key_id": ID, "public_key": BASE64, "signature": BASE64}.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.crypto.keyring import MasterKeyProvider, verify_signature
from api.db import models
from api.services.audit_chain import Checkpoint, CheckpointSource, WitnessUnreadable, checkpoint_message, moment
from api.settings import Settings

FORMAT = "settle-audit-checkpoint/2"
FILE_NAME = "checkpoints.jsonl"
PAGE = 1_000
LINES_PER_READ = 1_000
TIMEOUT_SECONDS = 30.0


class WitnessError(Exception):
    """The witness configuration, or a copy offered to a witness, cannot be used."""


# --- the line -------------------------------------------------------------------------------------


def to_line(checkpoint: Checkpoint, public_key: bytes) -> str:
    record = {
        "format": FORMAT,
        "sequence": checkpoint.sequence,
        "head": checkpoint.entry_hash,
        "signed_at": moment(checkpoint.signed_at),
        "key_id": checkpoint.key_id,
        "public_key": base64.b64encode(public_key).decode(),
        "signature": base64.b64encode(checkpoint.signature).decode(),
    }
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class WitnessedCheckpoint:
    checkpoint: Checkpoint
    public_key: bytes

    def proves_itself(self) -> bool:
        """The signature verifies under the public key the line carries (what a witness can check)."""
        c = self.checkpoint
        return verify_signature(self.public_key, checkpoint_message(c.sequence, c.entry_hash, c.signed_at), c.signature)


def from_line(text: str) -> WitnessedCheckpoint:
    """A line read back; ValueError says what is wrong with it."""
    try:
        record = json.loads(text)
        if record.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} line")
        sequence = record["sequence"]
        head = record["head"]
        if not isinstance(sequence, int) or sequence < 1 or not isinstance(head, str) or len(head) != 64:
            raise ValueError("sequence or head malformed")
        checkpoint = Checkpoint(
            sequence,
            head,
            str(record["key_id"]),
            base64.b64decode(record["signature"], validate=True),
            datetime.fromisoformat(record["signed_at"]),
        )
        return WitnessedCheckpoint(checkpoint, base64.b64decode(record["public_key"], validate=True))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"unreadable checkpoint line ({error})") from None


# --- what the service hands out -------------------------------------------------------------------


async def signed_checkpoints(
    sessions: async_sessionmaker[AsyncSession], keyring: MasterKeyProvider, after: int
) -> AsyncIterator[Checkpoint]:
    """The database's checkpoints after `after` that verify under our keys, a page at a time.

    One that does not verify (inserted by hand) is never handed to a witness: verification
    reports it from the database itself.
    """
    table = models.AuditCheckpoint.__table__
    while True:
        async with sessions() as session:
            rows = (
                await session.execute(
                    select(table).where(table.c.sequence > after).order_by(table.c.sequence).limit(PAGE)
                )
            ).mappings()
            page = [
                Checkpoint(row["sequence"], row["entry_hash"], row["key_id"], row["signature"], row["signed_at"])
                for row in rows
            ]
        for checkpoint in page:
            if checkpoint.verifies(keyring):
                yield checkpoint
        if len(page) < PAGE:
            return
        after = page[-1].sequence


async def checkpoint_lines(
    sessions: async_sessionmaker[AsyncSession], keyring: MasterKeyProvider, after: int
) -> AsyncIterator[str]:
    """`GET /audit/checkpoints?after=N`: JSON lines, ascending."""
    async for checkpoint in signed_checkpoints(sessions, keyring, after):
        public_key = keyring.audit_public_key(checkpoint.key_id)
        if public_key is not None:
            yield to_line(checkpoint, public_key) + "\n"


# --- the file witness -----------------------------------------------------------------------------


def _last_sequence(handle: IO[bytes]) -> int:
    """The sequence of the last readable complete line of an open file (0 if none): a line torn
    by a crash, or damaged, is passed over.
    """
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    read = min(size, 64 * 1024)
    handle.seek(size - read)
    tail = handle.read(read)
    complete = tail.split(b"\n")[:-1]  # what follows the last newline is torn, or nothing
    for line in reversed(complete):
        try:
            return from_line(line.decode()).checkpoint.sequence
        except (ValueError, UnicodeDecodeError):
            continue
    return 0


class FileWitness:
    """Checkpoints appended to a file (`checkpoints.jsonl` in the witness folder): never
    rewritten, strictly ascending.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def last_sequence(self) -> int:
        if not self.path.exists():
            return 0
        with open(self.path, "rb") as handle:
            return _last_sequence(handle)

    def append(self, lines: Sequence[WitnessedCheckpoint]) -> int:
        """Append the lines newer than the file's last, under an exclusive lock (several sealers
        may share the folder); returns how many were written.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        with os.fdopen(descriptor, "r+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                last = _last_sequence(handle)
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                torn = False
                if size > 0:  # a line torn by a crash stays on its own line, unread
                    handle.seek(size - 1)
                    torn = handle.read(1) != b"\n"
                fresh: list[WitnessedCheckpoint] = []
                for line in lines:
                    if line.checkpoint.sequence > (fresh[-1].checkpoint.sequence if fresh else last):
                        fresh.append(line)
                if not fresh:
                    return 0
                text = "".join(to_line(line.checkpoint, line.public_key) + "\n" for line in fresh)
                handle.write((b"\n" if torn else b"") + text.encode())
                handle.flush()
                os.fsync(handle.fileno())
                return len(fresh)
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    async def record(self, sessions: async_sessionmaker[AsyncSession], keyring: MasterKeyProvider) -> None:
        """Append the database's verified checkpoints newer than the file's last: after each
        checkpoint, and once at start (catching up what a crash between commit and write missed).
        """
        last = await asyncio.to_thread(self.last_sequence)
        lines: list[WitnessedCheckpoint] = []
        async for checkpoint in signed_checkpoints(sessions, keyring, last):
            public_key = keyring.audit_public_key(checkpoint.key_id)
            if public_key is not None:
                lines.append(WitnessedCheckpoint(checkpoint, public_key))
            if len(lines) >= PAGE:
                await asyncio.to_thread(self.append, lines)
                lines = []
        if lines:
            await asyncio.to_thread(self.append, lines)


def file_witness(settings: Settings) -> FileWitness | None:
    """The configured file witness; production must name its folder, or `off` explicitly."""
    configured = settings.audit_witness_dir
    if configured == "off":
        return None
    if configured:
        return FileWitness(Path(configured) / FILE_NAME)
    if not settings.development:
        raise WitnessError(
            "production needs SETTLE_AUDIT_WITNESS_DIR: a folder outside the database's reach for the audit "
            "log's checkpoints (or `off`, when supervisors' witnesses pull them over HTTP)"
        )
    return FileWitness(development_witness_dir(settings) / FILE_NAME)


def development_witness_dir(settings: Settings) -> Path:
    """var/audit-witness/<the database>: a witness holds the checkpoints of one log, and a
    developer may point the service at several databases.
    """
    url = make_url(settings.database_url)
    where = url.database if url.get_backend_name() == "sqlite" else f"{url.host}:{url.port or ''}/{url.database}"
    name = re.sub(r"[^A-Za-z0-9.]+", "-", f"{url.get_backend_name()}-{where}").strip("-")
    return settings.var_dir / "audit-witness" / name


# --- reading witnesses back -----------------------------------------------------------------------


async def _lines(open_lines: Callable[[], Iterator[bytes]]) -> AsyncIterator[bytes]:
    """Lines from a blocking reader, LINES_PER_READ at a time in a worker thread."""
    iterator = await asyncio.to_thread(open_lines)

    def more() -> list[bytes]:
        chunk: list[bytes] = []
        for line in iterator:
            chunk.append(line)
            if len(chunk) >= LINES_PER_READ:
                break
        return chunk

    while True:
        chunk = await asyncio.to_thread(more)
        for line in chunk:
            yield line
        if len(chunk) < LINES_PER_READ:
            return


async def _checkpoints(lines: AsyncIterator[bytes]) -> AsyncIterator[Checkpoint | str]:
    number = 0
    async for raw in lines:
        number += 1
        if not raw.strip():
            continue
        try:
            yield from_line(raw.decode()).checkpoint
        except (ValueError, UnicodeDecodeError) as error:
            yield f"line {number}: {error}"


@dataclass(slots=True)
class FileSource:
    path: Path
    required: bool = True
    external: bool = True

    @property
    def name(self) -> str:
        return f"the witness file {self.path}"

    def checkpoints(self) -> AsyncIterator[Checkpoint | str]:
        def open_lines() -> Iterator[bytes]:
            if not self.path.exists():
                if self.required:
                    raise WitnessUnreadable(f"{self.path} does not exist")
                return iter(())
            try:
                handle = open(self.path, "rb")  # noqa: SIM115 (closed by _closing_lines when read to the end)
            except OSError as error:
                raise WitnessUnreadable(str(error)) from None
            return _closing_lines(handle)

        return _checkpoints(_lines(open_lines))


def _closing_lines(handle: IO[bytes]) -> Iterator[bytes]:
    with handle:
        yield from handle


@dataclass(slots=True)
class UrlSource:
    url: str
    external: bool = True

    @property
    def name(self) -> str:
        return f"the witness at {self.url}"

    def checkpoints(self) -> AsyncIterator[Checkpoint | str]:
        def open_lines() -> Iterator[bytes]:
            request = urllib.request.Request(self.url, headers={"accept": "application/x-ndjson"})
            try:
                response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
            except (urllib.error.URLError, OSError, ValueError) as error:
                raise WitnessUnreadable(str(error)) from None
            return _closing_lines(response)

        return _checkpoints(_lines(open_lines))


def sources(settings: Settings, given: Sequence[str] | None = None) -> list[CheckpointSource]:
    """What verification reads: the witnesses named (`--witness FILE|URL`), or else the
    configured ones (the file witness, if it has been written, and SETTLE_AUDIT_WITNESS_URLS).
    """
    if given:
        return [UrlSource(item) if _is_url(item) else FileSource(Path(item)) for item in given]
    found: list[CheckpointSource] = []
    configured = settings.audit_witness_dir
    if configured != "off" and (configured or settings.development):
        directory = Path(configured) if configured else development_witness_dir(settings)
        found.append(FileSource(directory / FILE_NAME, required=False))
    found.extend(UrlSource(url) for url in settings.audit_witness_urls)
    return found


def _is_url(item: str) -> bool:
    return urllib.parse.urlsplit(item).scheme in ("http", "https")


# --- a supervisor's witness -----------------------------------------------------------------------


def _known_keys(witness: FileWitness) -> dict[str, bytes]:
    """key id → public key, as first seen in the witness's file (a key never changes)."""
    keys: dict[str, bytes] = {}
    if not witness.path.exists():
        return keys
    with open(witness.path, "rb") as handle:
        for raw in handle:
            try:
                line = from_line(raw.decode())
            except (ValueError, UnicodeDecodeError):
                continue
            keys.setdefault(line.checkpoint.key_id, line.public_key)
    return keys


def pull(source: str, token: str, witness: FileWitness) -> int:
    """Fetch the checkpoints newer than the file's last from a service and append them; returns
    how many. Refuses (WitnessError) a line that does not prove itself, goes backwards, or
    names a known key id with another public key: the file keeps only what the service signed.
    """
    last = witness.last_sequence()
    url = f"{source.rstrip('/')}/audit/checkpoints?{urllib.parse.urlencode({'after': last})}"
    request = urllib.request.Request(
        url, headers={"authorization": f"Bearer {token}", "accept": "application/x-ndjson"}
    )
    keys = _known_keys(witness)
    fresh: list[WitnessedCheckpoint] = []
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            for raw in response:
                if not raw.strip():
                    continue
                line = from_line(raw.decode())
                checkpoint = line.checkpoint
                if checkpoint.sequence <= (fresh[-1].checkpoint.sequence if fresh else last):
                    raise WitnessError(f"checkpoint {checkpoint.sequence} does not come after {last}")
                if keys.setdefault(checkpoint.key_id, line.public_key) != line.public_key:
                    raise WitnessError(f"key {checkpoint.key_id} came with another public key than before")
                if not line.proves_itself():
                    raise WitnessError(f"checkpoint {checkpoint.sequence}'s signature does not verify")
                fresh.append(line)
    except urllib.error.HTTPError as error:
        raise WitnessError(f"{url} answered {error.code}") from None
    except (urllib.error.URLError, OSError) as error:
        raise WitnessError(f"{url}: {error}") from None
    except ValueError as error:
        raise WitnessError(str(error)) from None
    return witness.append(fresh)
