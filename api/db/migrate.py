"""Schema migrations through alembic's API, on an async engine (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from api.db.statements import advisory_key


def alembic_config(migrations: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    return config


async def upgrade(engine: AsyncEngine, migrations: Path, revision: str = "head") -> None:
    await _run(engine, migrations, lambda config: command.upgrade(config, revision))


async def downgrade(engine: AsyncEngine, migrations: Path, revision: str = "base") -> None:
    await _run(engine, migrations, lambda config: command.downgrade(config, revision))


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(read)


def head_revision(migrations: Path) -> str | None:
    return ScriptDirectory.from_config(alembic_config(migrations)).get_current_head()


async def _run(engine: AsyncEngine, migrations: Path, step: object) -> None:
    config = alembic_config(migrations)

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        step(config)  # type: ignore[operator]

    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # One migration at a time, however many workers start at once: the others wait here,
            # then find the schema at the head and do nothing (SQLite is served by one worker).
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key("migrations")})
        await connection.run_sync(run)
