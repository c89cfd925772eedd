"""`settle serve`: one uvicorn worker in this process, or several under a supervisor of our own.

uvicorn's own supervisor restarts a worker that dies, so a worker whose start fails (a migration
it could not run, a keyring it could not open) would leave the service half up, answering on the
survivors, silently. Ours stops everything instead: the first worker to exit ends the service
with a non-zero status, and until every worker has started (and after one has failed) the
workers' `/readyz` answers 503, so a load balancer sends nothing to a service that is not whole.

The workers tell their state through files in a folder the supervisor makes for the run
(`SETTLE_SERVE_STATE`): `<pid>.ready` when a worker's start-up completed, `failed` when one died.
Their Prometheus metrics live in that folder's `metrics/` (`PROMETHEUS_MULTIPROC_DIR`), so that
the worker that answers a scrape reports the whole service; the folder goes when the run ends.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from pathlib import Path
from types import FrameType

import uvicorn

from api.settings import Settings

log = logging.getLogger("settle.serve")

FACTORY = "api.app:create_app_from_environment"
STATE_VARIABLE = "SETTLE_SERVE_STATE"
WORKERS_VARIABLE = "SETTLE_SERVE_WORKERS"
METRICS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's: set by the supervisor for its workers, never by hand (files of another
run in it would be counted as this one's)."""
GRACE_SECONDS = 10.0
"""How long workers get to finish their requests when the service stops."""
EXIT_WORKER_FAILED = 1


@dataclass(frozen=True, slots=True)
class Readiness:
    """What a worker knows of its siblings (absent when it runs alone)."""

    folder: Path
    workers: int

    @classmethod
    def from_environment(cls) -> Readiness | None:
        folder = os.environ.get(STATE_VARIABLE)
        return None if not folder else cls(Path(folder), int(os.environ.get(WORKERS_VARIABLE, "1")))

    def started(self) -> None:
        (self.folder / f"{os.getpid()}.ready").touch()

    def problem(self) -> str | None:
        """Why the service as a whole is not ready, or None."""
        if (self.folder / "failed").exists():
            return "a worker failed; the service is stopping"
        ready = sum(1 for _ in self.folder.glob("*.ready"))
        if ready < self.workers:
            return f"{ready} of {self.workers} workers have started"
        return None


def serve(settings: Settings) -> int:
    """Run the service on `settings.host`, `.port` with `.workers` until it is stopped (0) or a
    worker fails (non-zero); `settle serve --host --port --workers` have already overridden them.
    """
    workers = settings.workers
    config = uvicorn.Config(
        FACTORY,
        factory=True,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
    )
    if workers <= 1:
        os.environ.pop(METRICS_VARIABLE, None)  # one process: its metrics in its own memory
        server = uvicorn.Server(config)
        server.run()
        return 0 if server.started else EXIT_WORKER_FAILED
    return _supervise(config, workers)


def _supervise(config: uvicorn.Config, workers: int) -> int:
    listening = config.bind_socket()
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    with tempfile.TemporaryDirectory(prefix="settle-serve-") as folder:
        os.environ[STATE_VARIABLE] = folder
        os.environ[WORKERS_VARIABLE] = str(workers)
        (Path(folder) / "metrics").mkdir()
        os.environ[METRICS_VARIABLE] = str(Path(folder) / "metrics")
        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        processes = [_start(config, listening) for _ in range(workers)]
        status = 0
        try:
            while not stopping:
                dead = [process for process in processes if not process.is_alive()]
                if dead:
                    (Path(folder) / "failed").touch()
                    log.error(
                        "a worker exited (status %s); stopping the service", ", ".join(str(p.exitcode) for p in dead)
                    )
                    status = EXIT_WORKER_FAILED
                    break
                time.sleep(0.2)
        finally:
            _stop(processes)
            listening.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return status


def _start(config: uvicorn.Config, listening: socket.socket) -> SpawnProcess:
    process = multiprocessing.get_context("spawn").Process(target=_worker, args=(config, listening))
    process.start()
    return process


def _worker(config: uvicorn.Config, listening: socket.socket) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[listening])
    if not server.started:
        raise SystemExit(EXIT_WORKER_FAILED)


def _stop(processes: list[SpawnProcess]) -> None:
    for process in processes:
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
