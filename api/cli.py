"""The `settle` command.

    settle serve [--host H] [--port P] [--workers N]
                                    run the service (uvicorn); with no configuration: SQLite + demo data;
                                    exits non-zero when a worker fails
    settle schema                   print the GraphQL SDL (for client code generation)
    settle db upgrade [REVISION]    migrate the database (DATABASE_URL) to REVISION (default: head)
    settle db downgrade REVISION    migrate down (`base` empties it)
    settle db current               print the database's revision
    settle load FILE                load a document (payers, institutions, drugs, people, formulary,
                                    plans, grants; see api/services/loading.py); `-` reads stdin
    settle adjudicate FILE.json     split one scenario (SCENARIO.md) and print the result; `-` reads stdin
    settle token --role ROLE --org ORG [--region R ...] [--grant G ...] [--ttl SECONDS]
                                    mint a bearer token from the development issuer (keys/dev/)
    settle keys list                the master keys, their tenants and states, and their data keys
    settle keys rotate [--tenant T ...]   a new active master key per tenant (default: every tenant)
    settle keys rewrap [--batch N]  re-wrap data keys under their tenant's active master key
    settle keys retire KEY_ID       mark a master key retired (refused while data keys depend on it)
    settle keys destroy KEY_ID      destroy a master key for good: what it wrapped becomes unreadable
    settle keys rotate-audit        new audit MAC and checkpoint-signing keys; the old ones verify only
    settle audit seal               seal committed audit entries into the hash chain now
    settle audit verify [--witness FILE|URL ...]
                                    recompute the chain, hold it against the witnesses (default: the
                                    configured ones); exit 1 and name the first bad sequence if broken
    settle audit witness URL --file FILE [--every SECONDS] [--once]
                                    a supervisor's witness: pull URL/audit/checkpoints with the bearer
                                    token in SETTLE_WITNESS_TOKEN and append them to FILE
    settle anomalies scan           detect traceability anomalies in everything recorded
    settle db grant ROLE            (PostgreSQL) grant the application role its rights: no DELETE,
                                    no UPDATE of the append-only tables

Exit status: 0 on success, 2 on malformed input (one line on stderr naming the field, nothing on
stdout), 1 on other failures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from api.services.runtime import Runtime
    from api.settings import Settings

EXIT_FAILURE = 1
EXIT_INPUT = 2
"""Malformed input, and a setting whose value is not accepted."""


def _settings() -> Settings:
    """This command's settings; what an operator should know about them goes to stderr."""
    from api.settings import Settings

    settings = Settings.from_environment()
    for notice in settings.notices:
        print(f"settle: note: {notice}", file=sys.stderr)
    return settings


def _database_missing(settings: Settings) -> bool:
    """Only `settle db upgrade` (and the service, in development) may create the SQLite file: any
    other command that finds none says so, instead of working on a new, empty database.
    """
    file = settings.sqlite_file
    if file is None or file.exists():
        return False
    print(
        f"settle: no database at {file} (DATABASE_URL, relative to SETTLE_HOME={settings.home}); "
        "`settle db upgrade` creates it",
        file=sys.stderr,
    )
    return True


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _adjudicate(args: argparse.Namespace) -> int:
    from adjudication import InputError
    from adjudication.scenario import loads, read_scenario, render

    try:
        text = _read(args.file)
    except OSError as error:
        print(f"settle: cannot read {args.file}: {error.strerror}", file=sys.stderr)
        return EXIT_INPUT
    try:
        result = read_scenario(loads(text)).adjudicate()
    except InputError as error:
        print(f"settle: invalid input: {error}", file=sys.stderr)
        return EXIT_INPUT
    sys.stdout.write(json.dumps(render(result), ensure_ascii=False, indent=2) + "\n")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from api.logs import get_logger, install
    from api.serve import serve
    from api.settings import Settings

    # the command line's --host, --port and --workers over the environment's (argparse checked them)
    overrides = {name: getattr(args, name) for name in ("host", "port", "workers") if getattr(args, name) is not None}
    settings = Settings.from_environment().replace(**overrides)
    install(settings)  # JSON lines on stderr; each worker's app factory installs the same, and logs the notices
    log = get_logger("settle")
    if settings.development:
        log.warning(
            "development mode: GraphiQL is served, the schema is migrated and demo data loaded on start; "
            "set SETTLE_MODE=production for a real deployment"
        )
    if settings.workers > 1 and not settings.postgresql:
        log.warning("SQLite has one writer: serving with one worker")
        settings = settings.replace(workers=1)
    return serve(settings)


def _setting(name: str) -> Callable[[str], object]:
    """An argparse type that checks a command-line value as the setting `name` is checked."""

    def check(text: str) -> object:
        from api.settings import accepts, setting_value

        try:
            return setting_value(name, text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {accepts(name)}") from None

    return check


def _settings_command(args: argparse.Namespace) -> int:
    from api.settings import settings_table, values_in_force

    if not args.values:
        sys.stdout.write(settings_table())
        return 0
    for variable, value in values_in_force(_settings()).items():
        print(f"{variable}={value}")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from api.graphql.schema import build_schema

    sys.stdout.write(build_schema().as_str() + "\n")
    return 0


def _db(args: argparse.Namespace) -> int:
    from api.db import migrate
    from api.db.session import create_engine

    settings = _settings()
    if args.action != "upgrade" and _database_missing(settings):
        return EXIT_FAILURE

    async def run() -> None:
        engine = create_engine(settings.database_url)
        try:
            if args.action == "grant":
                from api.db.roles import grant_application_role

                await grant_application_role(engine, args.revision)
                print(f"granted {args.revision}")
                return
            if args.action == "upgrade":
                await migrate.upgrade(engine, settings.migrations, args.revision or "head")
            elif args.action == "downgrade":
                await migrate.downgrade(engine, settings.migrations, args.revision or "base")
            print(await migrate.current_revision(engine) or "base")
        finally:
            await engine.dispose()

    asyncio.run(run())
    return 0


def _load(args: argparse.Namespace) -> int:
    from adjudication import InputError
    from adjudication.scenario import loads
    from api.db.session import create_engine
    from api.errors import ServiceError
    from api.services.access import SYSTEM
    from api.services.loading import load_document

    settings = _settings()
    if _database_missing(settings):
        return EXIT_FAILURE
    try:
        document = loads(_read(args.file))
    except (OSError, InputError) as error:
        print(f"settle: cannot load {args.file}: {error}", file=sys.stderr)
        return EXIT_INPUT

    async def run() -> int:
        engine = create_engine(settings.database_url)
        try:
            summary = await load_document(_runtime(settings, engine), SYSTEM, document)
        except ServiceError as error:
            print(f"settle: refused: {error.code} {error.field or ''}: {error.message}", file=sys.stderr)
            return EXIT_INPUT
        finally:
            await engine.dispose()
        print(json.dumps(asdict(summary)))
        return 0

    return asyncio.run(run())


def _runtime(settings: Settings, engine: AsyncEngine) -> Runtime:
    from datetime import UTC, datetime, timedelta

    from api.crypto.envelope import FieldCipher
    from api.crypto.management import open_keyring
    from api.db.references import VersionCache
    from api.db.session import create_sessionmaker
    from api.services import audit
    from api.services.runtime import Runtime

    sessions = create_sessionmaker(engine)
    cipher = FieldCipher(open_keyring(settings), sessions, settings.values_per_data_key)
    audit.bind(sessions, cipher.keyring, probe=False)  # verifying needs no active MAC key; writing will say
    return Runtime(
        sessions,
        VersionCache.bounded(),
        cipher,
        lambda: datetime.now(UTC),
        settings.key_wait_ms,
        timedelta(days=settings.reuse_window_days),
        service_date_tolerance_days=settings.service_date_tolerance_days,
    )


def _keys(args: argparse.Namespace) -> int:
    from api.crypto import management
    from api.crypto.keyring import KeyringError
    from api.db.session import create_engine, create_sessionmaker
    from api.services import audit

    settings = _settings()
    if _database_missing(settings):
        return EXIT_FAILURE

    async def run() -> int:
        engine = create_engine(settings.database_url)
        sessions = create_sessionmaker(engine)
        try:
            keyring = management.open_keyring(settings)
            audit.bind(sessions, keyring, probe=False)  # `rotate-audit` may be what makes the key
            if args.action == "rotate":
                tenants = args.tenant or await management.tenants(sessions, keyring)
                for key in management.rotate(keyring, tenants):
                    print(f"{key.key_id}\t{key.tenant}\t{key.state}")
            elif args.action == "rewrap":
                print(f"rewrapped {await management.rewrap(sessions, keyring, args.batch)} data keys")
            elif args.action == "retire":
                await management.retire(sessions, keyring, args.key_id)
                print(f"{args.key_id}\tretired")
            elif args.action == "destroy":
                management.destroy(keyring, args.key_id)
                print(f"{args.key_id}\tdestroyed")
            elif args.action == "rotate-audit":
                for audit_key in management.rotate_audit(keyring):
                    print(f"{audit_key.key_id}\t{audit_key.purpose}\t{audit_key.state}\t{audit_key.algorithm}")
            else:
                for key in keyring.master_keys():
                    print(
                        f"{key.key_id}\t{key.tenant}\t{key.state}\t{await management.dependants(sessions, key.key_id)}"
                    )
                for audit_key in keyring.audit_keys():
                    print(f"{audit_key.key_id}\t{audit_key.purpose}\t{audit_key.state}\t{audit_key.algorithm}")
            if args.action != "list":
                await _audit_local(sessions, f"keys {args.action}", getattr(args, "key_id", None) or args.action)
        except KeyringError as error:
            print(f"settle: {error}", file=sys.stderr)
            return 1
        finally:
            await engine.dispose()
        return 0

    return asyncio.run(run())


async def _audit_local(
    sessions: async_sessionmaker[AsyncSession], action: str, target: str, detail: Mapping[str, object] | None = None
) -> None:
    """The operator's writes from this command line are audited like any other."""
    from datetime import UTC, datetime

    from api.services import audit
    from api.services.access import SYSTEM

    record = audit.AuditRecord(audit.Actor.of(SYSTEM), action, "allowed", datetime.now(UTC), target, detail or {})
    await audit.append_alone(sessions, record)


def _audit(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from api.db.session import create_engine
    from api.services import audit_chain, audit_witness, supervision

    if args.command == "audit" and args.action == "witness":
        return _witness(args)  # a supervisor's client: it reads none of the service's settings
    settings = _settings()
    if _database_missing(settings):
        return EXIT_FAILURE

    async def run() -> int:
        engine = create_engine(settings.database_url)
        try:
            runtime = _runtime(settings, engine)
            now = datetime.now(UTC)
            keyring = runtime.cipher.keyring
            if args.command == "anomalies":
                found = await supervision.scan(runtime)
                await _audit_local(runtime.sessions, "anomalies scan", "anomalies", {"new": found})
                print(f"{found} new anomalies")
                return 0
            if args.action == "seal":
                interval = timedelta(seconds=settings.audit_checkpoint_seconds)
                sealer = audit_chain.Sealer(runtime.sessions, keyring, interval, audit_witness.file_witness(settings))
                print(f"sealed {await sealer.seal(now)} entries")
                return 0
            witnesses = audit_witness.sources(settings, args.witness)
            result = await audit_chain.verify(runtime.sessions, keyring, now, witnesses)
            witnessed = "none" if result.witnessed is None else f"up to sequence {result.witnessed}"
            print(
                f"{result.entries} entries, {result.sealed} sealed, {result.pending} waiting to be sealed, "
                f"{result.forged} forged, {result.checkpoints} signed checkpoints; "
                f"{len(witnesses)} witnesses read, vouching {witnessed}"
            )
            for problem in result.problems:
                print(f"BROKEN at sequence {problem.sequence} entry {problem.entry_id}: {problem.problem}")
            if result.problem_count > len(result.problems):
                print(f"... and {result.problem_count - len(result.problems)} more problems")
            return 0 if result.intact else 1
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except audit_witness.WitnessError as error:
        print(f"settle: {error}", file=sys.stderr)
        return 1


def _witness(args: argparse.Namespace) -> int:
    """A supervisor's witness: pull signed checkpoints and keep them (see api/services/audit_witness.py)."""
    import os
    import time
    from pathlib import Path

    from api.services import audit_witness

    token = os.environ.get("SETTLE_WITNESS_TOKEN", "").strip()
    if not token:
        print("settle: set SETTLE_WITNESS_TOKEN to a supervisor's bearer token", file=sys.stderr)
        return EXIT_INPUT
    witness = audit_witness.FileWitness(Path(args.file))
    while True:
        try:
            added = audit_witness.pull(args.url, token, witness)
        except audit_witness.WitnessError as error:
            print(f"settle: witness: {error}", file=sys.stderr)
            if args.once:
                return 1
        else:
            if args.once:
                print(f"{added} checkpoints added, up to sequence {witness.last_sequence()}")
                return 0
        time.sleep(args.every)


def _token(args: argparse.Namespace) -> int:
    from api.auth import DevIssuer, Role

    settings = _settings()
    if not settings.development:
        print("settle: the development issuer mints tokens in development mode only", file=sys.stderr)
        return 1
    issuer = DevIssuer.load_or_create(settings.keys_dir)
    token = issuer.mint(
        role=Role(args.role),
        org=args.org,
        audience=settings.token_audience,
        subject=args.subject,
        regions=args.region,
        grants=args.grant,
        ttl_seconds=args.ttl,
    )
    print(token)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="settle", description="Multi-payer settlement of innovative drugs.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the service")
    serve.add_argument("--host", type=_setting("host"), help="the address to listen on (over SETTLE_HOST; 127.0.0.1)")
    serve.add_argument("--port", type=_setting("port"), help="the port to listen on (over SETTLE_PORT; 8000)")
    serve.add_argument(
        "--workers", type=_setting("workers"), help="worker processes (over SETTLE_WORKERS; 1; PostgreSQL only beyond)"
    )
    serve.set_defaults(run=_serve)
    settings = commands.add_parser("settings", help="every setting: its variable, default, what it accepts")
    settings.add_argument(
        "--values", action="store_true", help="the values in force here instead (secrets hidden), after checking them"
    )
    settings.set_defaults(run=_settings_command)
    schema = commands.add_parser("schema", help="print the GraphQL SDL")
    schema.set_defaults(run=_schema)
    db = commands.add_parser("db", help="migrate the database")
    db.add_argument("action", choices=["upgrade", "downgrade", "current", "grant"])
    db.add_argument("revision", nargs="?")
    db.set_defaults(run=_db)
    load = commands.add_parser("load", help="load a reference-data document")
    load.add_argument("file", help="document JSON file, or - for standard input")
    load.set_defaults(run=_load)
    from api.auth import Role

    token = commands.add_parser("token", help="mint a development bearer token")
    token.add_argument("--role", required=True, choices=[role.value for role in Role])
    token.add_argument("--org", required=True, help="institution or payer code, or the bureau for supervisors")
    token.add_argument("--region", action="append", default=[], help="a region a supervisor oversees (repeatable)")
    token.add_argument("--grant", action="append", default=[], help="an extra grant, e.g. price_audit (repeatable)")
    token.add_argument("--subject", help="who holds the token (default: ROLE:ORG)")
    token.add_argument("--ttl", type=int, default=8 * 3600, help="seconds until it expires (default 8 hours)")
    token.set_defaults(run=_token)
    keys = commands.add_parser("keys", help="manage the field-encryption keyring")
    key_actions = keys.add_subparsers(dest="action", required=True)
    key_actions.add_parser("list")
    rotate = key_actions.add_parser("rotate")
    rotate.add_argument("--tenant", action="append", default=[], help="e.g. insurer:INS-A (repeatable)")
    rewrap = key_actions.add_parser("rewrap")
    rewrap.add_argument("--batch", type=int, default=500)
    for action in ("retire", "destroy"):
        key_actions.add_parser(action).add_argument("key_id")
    key_actions.add_parser("rotate-audit", help="new audit MAC and signing keys; the old ones verify only")
    keys.set_defaults(run=_keys)
    audit_log = commands.add_parser("audit", help="the audit log's hash chain")
    audit_actions = audit_log.add_subparsers(dest="action", required=True)
    audit_actions.add_parser("seal", help="seal committed entries now")
    verify = audit_actions.add_parser("verify", help="recompute the chain and hold it against the witnesses")
    verify.add_argument(
        "--witness", action="append", default=[], help="a witness's file or URL (repeatable; default: the configured)"
    )
    witness = audit_actions.add_parser("witness", help="pull checkpoints from a service into a file, as a witness")
    witness.add_argument("url", help="the service, e.g. https://settle.example")
    witness.add_argument("--file", required=True, help="the witness's append-only file")
    witness.add_argument("--every", type=float, default=5.0, help="seconds between pulls (5)")
    witness.add_argument("--once", action="store_true", help="pull once and exit")
    audit_log.set_defaults(run=_audit)
    anomalies = commands.add_parser("anomalies", help="traceability anomalies")
    anomalies.add_argument("action", choices=["scan"])
    anomalies.set_defaults(run=_audit)
    adjudicate = commands.add_parser("adjudicate", help="split one scenario (SCENARIO.md) and print the result")
    adjudicate.add_argument("file", help="scenario JSON file, or - for standard input")
    adjudicate.set_defaults(run=_adjudicate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from api.settings import InvalidSetting

    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except InvalidSetting as error:
        for line in str(error).splitlines():
            print(f"settle: {line}", file=sys.stderr)
        return EXIT_INPUT
    return status


if __name__ == "__main__":
    sys.exit(main())
