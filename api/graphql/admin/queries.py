"""Plans, the commercial catalogue, and an insurer's rebate statement, as each caller may see them."""

from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum

import strawberry
from strawberry.scalars import JSON

from api.crypto.envelope import Place
from api.crypto.tenants import insurer_tenant
from api.graphql.confidential import ConfidentialAmount
from api.graphql.context import Info
from api.graphql.permissions import CatalogueReaders, PlanReaders, RebateReaders
from api.graphql.scalars import Yuan
from api.services import access, audit, queries


@strawberry.type(description="One version of a payer's plan; `definition` is the plan object of SCENARIO.md.")
class PlanVersion:
    plan: str
    payer: str
    kind: str
    region: str
    priority: int
    effective_from: date
    definition: JSON


@strawberry.type(description="A drug of the commercial innovative-drug catalogue under one insurer.")
class CatalogueEntry:
    drug: str
    insurer: str
    _id: strawberry.Private[uuid.UUID]
    _ciphertext: strawberry.Private[bytes]

    @strawberry.field(description="The negotiated settlement price per unit: clear for its insurer and price auditors.")
    async def settlement_price(self, info: Info) -> ConfidentialAmount | None:
        context = info.context
        if not access.may_read_price(context.principal, self.insurer):
            return ConfidentialAmount.of(None)
        place = Place("commercial_entries", "settlement_price_ct", self._id, insurer_tenant(self.insurer))
        amount = await context.runtime.cipher.decrypt_amount(place, self._ciphertext)
        await audit.append_alone(
            context.runtime.sessions,
            audit.AuditRecord(
                audit.Actor.of(context.principal),
                "decrypt commercial_entries.settlement_price_ct",
                "allowed",
                context.runtime.clock(),
                f"commercial_entry:{self._id}",
            ),
        )
        return ConfidentialAmount.of(amount)


@strawberry.enum(description="Why a rebate is missing from a statement's amount.")
class LostRebateReason(StrEnum):
    NOT_COMPUTABLE = "not_computable"
    UNREADABLE = "unreadable"


@strawberry.type(description="A rebate a statement could not count, and on which claim: the insurer sees what it lost.")
class LostRebate:
    settlement: strawberry.ID
    line: int
    units: int
    reason: LostRebateReason = strawberry.field(
        description="NOT_COMPUTABLE: the insurer's price was unreadable when the claim settled (its key destroyed); "
        "UNREADABLE: computed then, but its key has since been destroyed."
    )


@strawberry.type(description="What a manufacturer owes an insurer for one drug in one month of service.")
class RebateStatementLine:
    insurer: str
    manufacturer: str
    drug: str
    period: str = strawberry.field(description="The month of service, YYYY-MM.")
    units: int = strawberry.field(description="The units whose rebates make `amount`.")
    amount: Yuan
    lost: list[LostRebate] = strawberry.field(description="Rebates of this drug and month that could not be counted.")


def _plan(version: queries.PlanVersionView) -> PlanVersion:
    return PlanVersion(
        plan=version.plan,
        payer=version.payer,
        kind=version.kind,
        region=version.region,
        priority=version.priority,
        effective_from=version.effective_from,
        definition=JSON(version.definition),
    )


@strawberry.type
class CatalogueQueries:
    @strawberry.field(
        description="Plan versions you may see; with onDate, the version of each plan in force that day.",
        permission_classes=[PlanReaders],
    )
    async def plans(
        self, info: Info, region: str | None = None, on_date: date | None = None
    ) -> list[PlanVersion] | None:
        versions = await queries.plans(info.context.runtime.sessions, info.context.principal, region, on_date)
        return [_plan(version) for version in versions]

    @strawberry.field(
        description="The commercial catalogue in force in a region on a day, as you may see it.",
        permission_classes=[CatalogueReaders],
    )
    async def commercial_catalogue(self, info: Info, region: str, on_date: date) -> list[CatalogueEntry] | None:
        entries = await queries.catalogue(info.context.runtime.sessions, info.context.principal, region, on_date)
        return [
            CatalogueEntry(drug=entry.drug, insurer=entry.insurer, _id=entry.id, _ciphertext=entry.settlement_price_ct)
            for entry in entries
        ]

    @strawberry.field(
        description="What manufacturers owe insurers, per insurer, drug and month: an insurer its own; a price "
        "auditor the insurers of the claims of its regions (all of them without `insurer`, one with it).",
        permission_classes=[RebateReaders],
    )
    async def rebate_statement(
        self, info: Info, start: date, end: date, insurer: str | None = None
    ) -> list[RebateStatementLine] | None:
        context = info.context
        lines = await queries.rebate_statement(context.runtime, context.principal, insurer, start, end)
        return [
            RebateStatementLine(
                insurer=line.insurer,
                manufacturer=line.manufacturer,
                drug=line.drug,
                period=line.period,
                units=line.units,
                amount=Yuan(line.amount_fen),
                lost=[
                    LostRebate(
                        settlement=strawberry.ID(str(lost.settlement_id)),
                        line=lost.line,
                        units=lost.units,
                        reason=LostRebateReason(lost.reason),
                    )
                    for lost in line.lost
                ],
            )
            for line in lines
        ]
