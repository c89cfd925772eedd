"""Alembic environment. Run through `settle db upgrade` (api/db/migrate.py), which hands over an
open connection; run standalone, it connects to DATABASE_URL with the async driver.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Literal

from alembic import context
from sqlalchemy.engine import Connection

from api.db.base import UtcDateTime
from api.db.models import Base
from api.db.session import create_engine
from api.settings import DEFAULT_DATABASE_URL

config = context.config
target_metadata = Base.metadata


def render_item(kind: str, item: Any, autogen_context: Any) -> str | Literal[False]:
    """Render the app's UtcDateTime as the column type it is stored as."""
    if kind == "type" and isinstance(item, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async() -> None:
    engine = create_engine(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    async with engine.connect() as connection:
        await connection.run_sync(run_with)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run `settle db upgrade`")

given = config.attributes.get("connection")
if given is not None:
    run_with(given)
else:
    asyncio.run(run_async())
