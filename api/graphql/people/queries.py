"""A person's accumulators and units; an institution and its prepayment pools."""

from __future__ import annotations

import uuid

import strawberry

from api.graphql.context import Info
from api.graphql.people.types import AccumulatorEntry, PrepaymentPool, UnitsReceived, pool_type
from api.services import queries


@strawberry.type
class Person:
    psn_no: str
    insurance_type: str
    region: str
    memberships: list[str]
    flags: list[str]
    _id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="This person's accumulators in a plan year (calendar year, Asia/Shanghai).")
    async def accumulators(self, info: Info, year: int) -> list[AccumulatorEntry]:
        rows = await queries.accumulators(info.context.sessions, self._id, year)
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
        rows = await queries.units_received(info.context.sessions, self._id, year)
        return [UnitsReceived(drug=row["drug_code"], year=row["year"], units=row["units"]) for row in rows]


@strawberry.type
class Institution:
    code: str
    name: str
    kind: str
    level: int
    region: str

    @strawberry.field(description="The prepayment pools of every payer at this institution.")
    async def prepayment_pools(self, info: Info) -> list[PrepaymentPool]:
        return [pool_type(row) for row in await queries.pools(info.context.sessions, self.code)]


@strawberry.type
class PeopleQueries:
    @strawberry.field(description="An insured person by insurance number (人员编号).")
    async def person(self, info: Info, psn_no: str) -> Person | None:
        found = await queries.person(info.context.sessions, psn_no)
        if found is None:
            return None
        return Person(
            psn_no=found.psn_no,
            insurance_type=found.insurance_type,
            region=found.region,
            memberships=list(found.memberships),
            flags=list(found.flags),
            _id=found.id,
        )

    @strawberry.field
    async def institution(self, info: Info, code: str) -> Institution | None:
        row = await queries.institution(info.context.sessions, code)
        if row is None:
            return None
        return Institution(
            code=row["code"], name=row["name"], kind=row["kind"], level=row["level"], region=row["region"]
        )
