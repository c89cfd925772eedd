"""The migration chain creates the whole schema, removes it, and creates it again, on SQLite and
PostgreSQL; and the models match the migrations (autogenerate finds nothing to add).
"""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from api.db.migrate import current_revision, downgrade, head_revision, upgrade
from api.db.models import Base
from api.db.session import create_engine
from tests.conftest import BACKENDS, MIGRATIONS, Databases

TABLES = set(Base.metadata.tables)


def tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


def differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_upgrade_from_empty_downgrade_to_empty_and_upgrade_again(databases: Databases, backend: str) -> None:
    engine = create_engine(await databases.empty(backend))
    try:
        await upgrade(engine, MIGRATIONS)
        async with engine.connect() as connection:
            assert await connection.run_sync(tables) == TABLES
        assert await current_revision(engine) == head_revision(MIGRATIONS)

        await downgrade(engine, MIGRATIONS)
        async with engine.connect() as connection:
            assert await connection.run_sync(tables) == set()
        assert await current_revision(engine) is None

        await upgrade(engine, MIGRATIONS)
        async with engine.connect() as connection:
            assert await connection.run_sync(tables) == TABLES
            assert await connection.run_sync(differences) == []
    finally:
        await engine.dispose()
