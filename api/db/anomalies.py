"""Anomalies for the fund supervisors, as values, and where they are written.

An anomaly is recorded once: its fingerprint names what was found (kind and the record it
concerns), so that the writer and a later scan, which judge alike, never record it twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from adjudication.tracecodes import AnomalyKind
from api.db import models
from api.db.base import table_of
from api.db.statements import insert_missing
from api.db.writes import Mode, Write
from api.ids import uuid7

if TYPE_CHECKING:
    from api.db.unit_of_work import UnitOfWork

_NO_DETAIL: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Something a supervisor should look at: where (`institution`, `region`, the settlement,
    the drug and code when it concerns one), found when, by the writer or a scan, and why.
    """

    kind: AnomalyKind
    fingerprint: str
    institution: str
    region: str
    detected_at: datetime
    detected_by: str
    message: str
    settlement_id: uuid.UUID | None = None
    drug: str | None = None
    code: str | None = None
    detail: Mapping[str, Any] = field(default_factory=lambda: _NO_DETAIL)
    """Beyond the message: what an investigator acts on (ids, the serial of a refused claim)."""
    id: uuid.UUID = field(default_factory=uuid7)

    def row(self) -> dict[str, Any]:
        """The `anomalies` row: open, handled by nobody yet."""
        return {
            "id": self.id,
            "kind": self.kind.value,
            "severity": self.kind.severity,
            "status": "open",
            "fingerprint": self.fingerprint[:200],
            "code": None if self.code is None else self.code[:40],
            "institution_code": self.institution,
            "region": self.region,
            "drug_code": self.drug,
            "settlement_id": self.settlement_id,
            "detected_at": self.detected_at,
            "detected_by": self.detected_by,
            "detail": {"message": self.message, **self.detail},
            "handled_by": None,
            "handled_at": None,
            "note": None,
        }


class Anomalies:
    """Anomalies written with a unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def add(self, anomalies: Sequence[Anomaly]) -> None:
        """Record those not recorded yet (by fingerprint), with the transaction."""
        rows = [anomaly.row() for anomaly in anomalies]
        self.uow.stage(Write.of(table_of(models.Anomaly), rows, Mode.INSERT_MISSING, ("fingerprint",)))


async def record(session: AsyncSession, anomalies: Sequence[Anomaly]) -> None:
    """The same, in a session of a cold path (a scan, the audit sealer)."""
    if anomalies:
        await insert_missing(session, table_of(models.Anomaly), [a.row() for a in anomalies], ["fingerprint"])
