"""`settle serve` starts whole or not at all: several workers migrate a fresh database once, a
worker that dies stops the service with a non-zero status, and `/readyz` says 503 until every
worker has started and once one has failed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from api.app import create_app
from api.db import models
from api.db.migrate import current_revision, head_revision
from api.db.session import create_engine, create_sessionmaker
from api.serve import STATE_VARIABLE, WORKERS_VARIABLE, Readiness
from api.settings import PROJECT_ROOT
from tests.api.conftest import running, settings_for
from tests.api.tokens import Tokens
from tests.conftest import Databases

STARTUP_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(database_url: str, keys: Path, port: int, workers: int, **environment: str) -> subprocess.Popen[bytes]:
    """`settle serve` in a child process; its log goes to `keys`' sibling file `serve.log`."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": database_url,
        "SETTLE_KEYS_DIR": str(keys),
        "SETTLE_AUDIT_SEAL_SECONDS": "0",
        **environment,
    }
    with open(keys.parent / "serve.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--workers", str(workers)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )


def wait_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> httpx.Response:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail("serve did not become ready")


def workers_of(process: subprocess.Popen[bytes]) -> list[int]:
    """The worker processes of `settle serve` (multiprocessing's resource tracker left out)."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    return [
        int(pid)
        for pid in children
        if "resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    ]


@pytest.fixture
def stopped() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


async def test_two_workers_on_a_fresh_database_migrate_and_load_the_demo_once(
    databases: Databases, tmp_path: Path, stopped: list[subprocess.Popen[bytes]]
) -> None:
    url = await databases.empty("postgresql")
    port = free_port()
    serve = start(url, tmp_path / "keys", port, workers=2)
    stopped.append(serve)

    ready = wait_ready(port, serve, tmp_path / "serve.log")

    assert ready.json()["status"] == "ready"
    assert len(workers_of(serve)) == 2
    engine = create_engine(url)
    try:
        assert await current_revision(engine) == head_revision(PROJECT_ROOT / "migrations")
        async with create_sessionmaker(engine)() as session:
            versions = (await session.execute(select(func.count()).select_from(models.FormularyVersion))).scalar_one()
    finally:
        await engine.dispose()
    assert versions == 1  # the demo's formulary, loaded by one worker only


async def test_a_worker_that_dies_stops_the_service_with_a_non_zero_status(
    databases: Databases, tmp_path: Path, stopped: list[subprocess.Popen[bytes]]
) -> None:
    url = await databases.empty("postgresql")
    port = free_port()
    serve = start(url, tmp_path / "keys", port, workers=2)
    stopped.append(serve)
    wait_ready(port, serve, tmp_path / "serve.log")

    os.kill(workers_of(serve)[0], signal.SIGKILL)

    assert serve.wait(30) != 0


def test_a_service_whose_workers_cannot_start_exits_non_zero(
    tmp_path: Path, stopped: list[subprocess.Popen[bytes]]
) -> None:
    # production mode without a keyring folder: every worker's start-up fails
    serve = start(
        f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite3'}", tmp_path / "keys", free_port(), 1, SETTLE_MODE="production"
    )
    stopped.append(serve)
    assert serve.wait(STARTUP_SECONDS) != 0


def test_readiness_waits_for_every_worker_and_fails_with_one(tmp_path: Path) -> None:
    readiness = Readiness(tmp_path, workers=2)
    assert readiness.problem() == "0 of 2 workers have started"
    (tmp_path / "101.ready").touch()
    assert readiness.problem() == "1 of 2 workers have started"
    (tmp_path / "102.ready").touch()
    assert readiness.problem() is None
    (tmp_path / "failed").touch()
    assert readiness.problem() == "a worker failed; the service is stopping"


async def test_readyz_answers_503_while_a_sibling_worker_has_not_started(
    databases: Databases, tokens: Tokens, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATE_VARIABLE, str(tmp_path))
    monkeypatch.setenv(WORKERS_VARIABLE, "2")
    async with running(create_app(settings_for(await databases.fresh("sqlite"), tokens))) as client:
        alone = await client.get("/readyz")
        (tmp_path / "99999.ready").touch()  # the sibling starts
        together = await client.get("/readyz")

    assert alone.status_code == 503 and alone.json()["reason"] == "1 of 2 workers have started"
    assert together.status_code == 200
