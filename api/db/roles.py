"""The application's database role on PostgreSQL: it reads and writes rows, never the schema.

It may select, insert and update the business tables, and only select and insert the
append-only ones (the ledger, the audit log with its seals, checkpoints and rejections, the
trace events, the steps in handling anomalies): nothing is deleted, and what is appended
cannot be changed. (The migrations' triggers refuse UPDATE, DELETE and TRUNCATE on the
append-only tables for every role besides, and stamp each audit entry with its writing
transaction whatever the inserter sends.) It needs no right on the audit log's identity
sequence: inserting is enough.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

APPEND_ONLY = (
    "ledger_entries",
    "audit_log",
    "audit_seals",
    "audit_checkpoints",
    "audit_rejections",
    "trace_events",
    "anomaly_steps",
)


async def grant_application_role(engine: AsyncEngine, role: str) -> None:
    """Run as the schema's owner after `settle db upgrade`."""
    if not role.replace("_", "").isalnum():
        raise ValueError(f"{role!r} is not a plain role name")
    async with engine.begin() as connection:
        database = connection.engine.url.database
        await connection.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO {role}'))
        await connection.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
        await connection.execute(text(f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}"))
        await connection.execute(text(f"REVOKE UPDATE ON {', '.join(APPEND_ONLY)} FROM {role}"))
        await connection.execute(text(f"REVOKE DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public FROM {role}"))
