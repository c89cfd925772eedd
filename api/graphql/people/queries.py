"""A person and their accumulators; an institution and its prepayment pools."""

from __future__ import annotations

import uuid
from typing import Any

import strawberry

from api.crypto.envelope import Place
from api.crypto.tenants import people_tenant
from api.graphql.context import Info
from api.graphql.people.types import AccumulatorEntry, PrepaymentPool, UnitsReceived, pool_type
from api.graphql.permissions import MayReadIdNumber, MayReadName, PeopleReaders
from api.services import audit, queries


@strawberry.type
class Person:
    psn_no: str
    insurance_type: str
    region: str
    memberships: list[str]
    flags: list[str]
    _row: strawberry.Private[dict[str, Any]]

    @strawberry.field(description="The person's name (personal data).", permission_classes=[MayReadName])
    async def name(self, info: Info) -> str | None:
        return await self._decrypt(info, "name_ct")

    @strawberry.field(description="The national ID number (personal data).", permission_classes=[MayReadIdNumber])
    async def id_number(self, info: Info) -> str | None:
        return await self._decrypt(info, "id_number_ct")

    async def _decrypt(self, info: Info, column: str) -> str:
        """Personal data in clear, for a caller the field's permission admitted; audited."""
        context = info.context
        place = Place("people", column, self._id, people_tenant(self.region))
        value = await context.runtime.cipher.decrypt_text(place, self._row[column])
        await audit.append_alone(
            context.runtime.sessions,
            audit.AuditRecord(
                audit.Actor.of(context.principal),
                f"decrypt people.{column}",
                "allowed",
                context.runtime.clock(),
                f"person:{self.psn_no}",
            ),
        )
        return value

    @strawberry.field(description="This person's accumulators in a plan year (calendar year, Asia/Shanghai).")
    async def accumulators(self, info: Info, year: int) -> list[AccumulatorEntry]:
        rows = await queries.accumulators(info.context.runtime.sessions, self._id, year)
        return [
            AccumulatorEntry(
                plan=row["plan_code"],
                year=row["year"],
                deductible_met=row["deductible_met_fen"],
                base_spent=row["base_spent_fen"],
                paid=row["paid_fen"],
                claims=row["claims"],
            )
            for row in rows
        ]

    @strawberry.field(description="Units of each drug received in a year (donation programmes count them).")
    async def units_received(self, info: Info, year: int) -> list[UnitsReceived]:
        rows = await queries.units_received(info.context.runtime.sessions, self._id, year)
        return [UnitsReceived(drug=row["drug_code"], year=row["year"], units=row["units"]) for row in rows]

    @property
    def _id(self) -> uuid.UUID:
        value: uuid.UUID = self._row["id"]
        return value


@strawberry.type
class Institution:
    code: str
    name: str
    kind: str
    level: int
    region: str

    @strawberry.field(description="The prepayment pools at this institution that you may see.")
    async def prepayment_pools(self, info: Info) -> list[PrepaymentPool]:
        rows = await queries.pools(info.context.runtime.sessions, info.context.principal, self.code)
        return [pool_type(row) for row in rows]


def _person(row: dict[str, Any] | None) -> Person | None:
    if row is None:
        return None
    return Person(
        psn_no=row["psn_no"],
        insurance_type=row["insurance_type"],
        region=row["region"],
        memberships=list(row["memberships"]),
        flags=list(row["flags"]),
        _row=row,
    )


@strawberry.type
class PeopleQueries:
    @strawberry.field(
        description="An insured person by insurance number (人员编号).", permission_classes=[PeopleReaders]
    )
    async def person(self, info: Info, psn_no: str) -> Person | None:
        return _person(await queries.person(info.context.runtime.sessions, info.context.principal, psn_no))

    @strawberry.field(
        description="An insured person by national ID number, found through its keyed blind index.",
        permission_classes=[PeopleReaders],
    )
    async def person_by_id_number(self, info: Info, id_number: str) -> Person | None:
        return _person(await queries.person_by_id_number(info.context.runtime, info.context.principal, id_number))

    @strawberry.field(description="A designated institution.")
    async def institution(self, info: Info, code: str) -> Institution | None:
        row = await queries.institution(info.context.runtime.sessions, info.context.principal, code)
        if row is None:
            return None
        return Institution(
            code=row["code"], name=row["name"], kind=row["kind"], level=row["level"], region=row["region"]
        )
