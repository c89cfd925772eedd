"""anomaly steps: every step in handling an anomaly kept as its own record; anomalies may be dismissed

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 09:00:00

Before, handling an anomaly overwrote its `status`, `note`, `handled_by` (`role:org:subject`) and
`handled_at`: a supervisor's note replaced the institution's explanation. Now each explanation and
each decision (confirmed, or the new dismissed) is a row of `anomaly_steps`, who took it in three
columns (role, org, subject), and `anomalies.status` is that of its latest step.

The upgrade copies each handled anomaly's last handling into a first step (earlier handlings were
overwritten before this revision and cannot be recovered); an anomaly whose status says handled
but that names no handler (never written by the service) keeps its status and gets no step: who
took it is not known. The three old columns are kept as they were, read-only.

On PostgreSQL the steps are append-only (a trigger refuses UPDATE, DELETE and TRUNCATE; the
application's role gets no such privilege, `api/db/roles.py`), a step on a decided anomaly is
refused, and an anomaly row changes only its status, and only to its latest step's.

The downgrade refuses a database the older schema cannot hold without losing a step: a dismissed
anomaly (it had no such status), or an anomaly with more than one step (it kept one note). An
anomaly with one step gets it back in its old columns.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ANOMALIES = sa.table(
    "anomalies",
    sa.column("id", sa.Uuid()),
    sa.column("status", sa.String()),
    sa.column("handled_by", sa.String()),
    sa.column("handled_at", sa.DateTime(timezone=True)),
    sa.column("note", sa.String()),
)
STEPS = sa.table(
    "anomaly_steps",
    sa.column("id", sa.Uuid()),
    sa.column("anomaly_id", sa.Uuid()),
    sa.column("sequence", sa.Integer()),
    sa.column("kind", sa.String()),
    sa.column("note", sa.String()),
    sa.column("role", sa.String()),
    sa.column("org", sa.String()),
    sa.column("subject", sa.String()),
    sa.column("taken_at", sa.DateTime(timezone=True)),
)

STATUS_BEFORE = "status IN ('open', 'explained', 'confirmed')"
STATUS_AFTER = "status IN ('open', 'explained', 'confirmed', 'dismissed')"


def upgrade() -> None:
    with op.batch_alter_table("anomalies") as batch:
        batch.drop_constraint(op.f("ck_anomalies_status"), type_="check")
        batch.create_check_constraint("status", STATUS_AFTER)
    op.create_table(
        "anomaly_steps",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("anomaly_id", sa.Uuid(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=1000), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("org", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('explained', 'confirmed', 'dismissed')", name=op.f("ck_anomaly_steps_kind")),
        sa.CheckConstraint("sequence >= 1", name=op.f("ck_anomaly_steps_sequence_positive")),
        sa.ForeignKeyConstraint(["anomaly_id"], ["anomalies.id"], name=op.f("fk_anomaly_steps_anomaly_id_anomalies")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anomaly_steps")),
        sa.UniqueConstraint("anomaly_id", "sequence", name=op.f("uq_anomaly_steps_anomaly_id_sequence")),
    )
    _copy_handlings_into_steps()
    if op.get_bind().dialect.name == "postgresql":
        _protect()


def _copy_handlings_into_steps() -> None:
    connection = op.get_bind()
    handled = connection.execute(
        sa.select(ANOMALIES).where(
            ANOMALIES.c.handled_by.is_not(None),
            ANOMALIES.c.handled_at.is_not(None),
            ANOMALIES.c.status.in_(("explained", "confirmed")),
        )
    ).all()
    steps = []
    for row in handled:
        role, org, subject = _who(row.handled_by)
        steps.append(
            {
                "id": _uuid7_at(row.handled_at),
                "anomaly_id": row.id,
                "sequence": 1,
                "kind": row.status,
                "note": row.note or "",
                "role": role,
                "org": org,
                "subject": subject,
                "taken_at": row.handled_at,
            }
        )
    if steps:
        connection.execute(sa.insert(STEPS), steps)


def _who(handled_by: str) -> tuple[str, str, str]:
    """`role:org:subject` as the service wrote it (a subject may hold colons; a role and an
    organisation code do not); anything else is kept whole as the subject, nothing guessed.
    """
    parts = handled_by.split(":", 2)
    if len(parts) == 3 and len(parts[0]) <= 16 and len(parts[1]) <= 64:
        return parts[0], parts[1], parts[2]
    return "", "", handled_by


def _handled_by(role: str, org: str, subject: str) -> str:
    """The inverse of `_who`."""
    return subject if not role and not org else f"{role}:{org}:{subject}"


def _uuid7_at(moment: datetime) -> uuid.UUID:
    """A version-7 UUID for a step taken at `moment`, so that ids still sort in time order (as
    `api/ids.py` makes them; copied here so that the revision does not change with the app).
    """
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    milliseconds = int(aware.timestamp() * 1000)
    random_bits = int.from_bytes(os.urandom(10), "big")
    value = (milliseconds & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (random_bits >> 68 & 0xFFF) << 64
    value |= 0b10 << 62
    value |= random_bits & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def _protect() -> None:
    op.execute(
        "CREATE TRIGGER anomaly_steps_append_only BEFORE UPDATE OR DELETE ON anomaly_steps "
        "FOR EACH ROW EXECUTE FUNCTION settle_append_only()"
    )
    op.execute(
        "CREATE TRIGGER anomaly_steps_no_truncate BEFORE TRUNCATE ON anomaly_steps "
        "FOR EACH STATEMENT EXECUTE FUNCTION settle_append_only()"
    )
    op.execute(
        """
        CREATE FUNCTION settle_anomaly_step_undecided() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            found_status text;
        BEGIN
            SELECT status INTO found_status FROM anomalies WHERE id = NEW.anomaly_id FOR UPDATE;
            IF found_status IN ('confirmed', 'dismissed') THEN
                RAISE EXCEPTION 'anomaly % is already %: a decision is final', NEW.anomaly_id, found_status
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER anomaly_steps_undecided BEFORE INSERT ON anomaly_steps "
        "FOR EACH ROW EXECUTE FUNCTION settle_anomaly_step_undecided()"
    )
    op.execute(
        """
        CREATE FUNCTION settle_anomaly_follows_steps() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            latest text;
        BEGIN
            IF (to_jsonb(NEW) - 'status') IS DISTINCT FROM (to_jsonb(OLD) - 'status') THEN
                RAISE EXCEPTION 'anomaly %: only its status changes, and only by a step', OLD.id
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            IF NEW.status IS DISTINCT FROM OLD.status THEN
                SELECT kind INTO latest FROM anomaly_steps WHERE anomaly_id = NEW.id ORDER BY sequence DESC LIMIT 1;
                IF latest IS DISTINCT FROM NEW.status THEN
                    RAISE EXCEPTION 'anomaly %: its status is its latest step''s (%), not %',
                        NEW.id, coalesce(latest, 'no step'), NEW.status
                        USING ERRCODE = 'check_violation';
                END IF;
            END IF;
            RETURN NEW;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER anomalies_follow_steps BEFORE UPDATE ON anomalies "
        "FOR EACH ROW EXECUTE FUNCTION settle_anomaly_follows_steps()"
    )


def downgrade() -> None:
    connection = op.get_bind()
    dismissed = connection.execute(
        sa.select(sa.func.count()).select_from(ANOMALIES).where(ANOMALIES.c.status == "dismissed")
    ).scalar_one()
    several = connection.execute(
        sa.select(sa.func.count()).select_from(
            sa.select(STEPS.c.anomaly_id).group_by(STEPS.c.anomaly_id).having(sa.func.count() > 1).subquery()
        )
    ).scalar_one()
    if dismissed or several:
        raise RuntimeError(
            f"revision 0009 cannot downgrade (dismissed anomalies: {dismissed}, anomalies handled in more than "
            f"one step: {several}): the older schema has no dismissed status and keeps one note per anomaly, "
            "so steps would be lost"
        )
    if connection.dialect.name == "postgresql":
        op.execute("DROP TRIGGER anomalies_follow_steps ON anomalies")
        op.execute("DROP FUNCTION settle_anomaly_follows_steps()")
        op.execute("DROP TRIGGER anomaly_steps_undecided ON anomaly_steps")
        op.execute("DROP FUNCTION settle_anomaly_step_undecided()")
        op.execute("DROP TRIGGER anomaly_steps_no_truncate ON anomaly_steps")
        op.execute("DROP TRIGGER anomaly_steps_append_only ON anomaly_steps")
    handlings = [
        {
            "anomaly": step.anomaly_id,
            "restored_status": step.kind,
            "restored_note": step.note or None,
            "restored_handled_by": _handled_by(step.role, step.org, step.subject),
            "restored_handled_at": step.taken_at,
        }
        for step in connection.execute(sa.select(STEPS)).all()
    ]
    if handlings:
        connection.execute(
            sa.update(ANOMALIES)
            .where(ANOMALIES.c.id == sa.bindparam("anomaly"))
            .values(
                status=sa.bindparam("restored_status"),
                note=sa.bindparam("restored_note"),
                handled_by=sa.bindparam("restored_handled_by"),
                handled_at=sa.bindparam("restored_handled_at"),
            ),
            handlings,
        )
    op.drop_table("anomaly_steps")
    with op.batch_alter_table("anomalies") as batch:
        batch.drop_constraint(op.f("ck_anomalies_status"), type_="check")
        batch.create_check_constraint("status", STATUS_BEFORE)
