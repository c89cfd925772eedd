"""A person and their accumulators; an institution and its prepayment pools."""

from __future__ import annotations

import strawberry

from api.crypto.envelope import Place
from api.crypto.tenants import people_tenant
from api.graphql.context import Info
from api.graphql.people.types import AccumulatorEntry, PrepaymentPool, UnitsReceived, pool_type
from api.graphql.permissions import MayReadIdNumber, MayReadName, PeopleReaders
from api.graphql.scalars import Yuan
from api.services import audit, queries


@strawberry.type
class Person:
    psn_no: str
    insurance_type: str
    region: str
    memberships: list[str]
    flags: list[str]
    _person: strawberry.Private[queries.PersonView]

    @strawberry.field(description="The person's name (personal data).", permission_classes=[MayReadName])
    async def name(self, info: Info) -> str | None:
        return await self._decrypt(info, "name_ct", self._person.name_ct)

    @strawberry.field(description="The national ID number (personal data).", permission_classes=[MayReadIdNumber])
    async def id_number(self, info: Info) -> str | None:
        return await self._decrypt(info, "id_number_ct", self._person.id_number_ct)

    async def _decrypt(self, info: Info, column: str, ciphertext: bytes) -> str:
        """Personal data in clear, for a caller the field's permission admitted; audited."""
        context = info.context
        place = Place("people", column, self._person.id, people_tenant(self.region))
        value = await context.runtime.cipher.decrypt_text(place, ciphertext)
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
        found = await queries.accumulators(info.context.runtime.sessions, self._person.id, year)
        return [
            AccumulatorEntry(
                plan=accumulator.plan,
                year=accumulator.year,
                deductible_met=Yuan(accumulator.deductible_met_fen),
                base_spent=Yuan(accumulator.base_spent_fen),
                paid=Yuan(accumulator.paid_fen),
                claims=accumulator.claims,
            )
            for accumulator in found
        ]

    @strawberry.field(description="Units of each drug received in a year (donation programmes count them).")
    async def units_received(self, info: Info, year: int) -> list[UnitsReceived]:
        found = await queries.units_received(info.context.runtime.sessions, self._person.id, year)
        return [UnitsReceived(drug=units.drug, year=units.year, units=units.units) for units in found]


@strawberry.type
class Institution:
    code: str
    name: str
    kind: str
    level: int
    region: str

    @strawberry.field(description="The prepayment pools at this institution that you may see.")
    async def prepayment_pools(self, info: Info) -> list[PrepaymentPool]:
        found = await queries.pools(info.context.runtime.sessions, info.context.principal, self.code)
        return [pool_type(pool) for pool in found]


def _person(person: queries.PersonView | None) -> Person | None:
    if person is None:
        return None
    return Person(
        psn_no=person.psn_no,
        insurance_type=person.insurance_type,
        region=person.region,
        memberships=list(person.memberships),
        flags=list(person.flags),
        _person=person,
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
        found = await queries.institution(info.context.runtime.sessions, info.context.principal, code)
        if found is None:
            return None
        return Institution(code=found.code, name=found.name, kind=found.kind, level=found.level, region=found.region)
