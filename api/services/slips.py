"""The one-stop settlement slip (一站式结算单): what the patient takes from the window, read on
behalf of a caller.

A `Slip` is the renderer's whole input: plain values, in fen, built from the settlement as the
read path shows it by one function (`slip_of`), so that a change of that shape is one function
to adapt. Who may fetch one: the institution that settled it and the supervisors who see it
(the treating and the insuring regions'), through the same row filter as every read
(`access.settlements`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from types import MappingProxyType

from sqlalchemy import select

from adjudication import PlanKind
from api.auth import INSTITUTION_ROLES, Principal, Role
from api.crypto.envelope import DecryptionError, Place
from api.crypto.tenants import people_tenant
from api.db import models
from api.services import access, audit, queries
from api.services.runtime import Runtime
from api.settlement import Settlement, SettlementStatus


@dataclass(frozen=True, slots=True)
class SlipFund:
    """One plan's payment, with the codes of its reasons (a deductible, a cap, not eligible)."""

    plan: str
    payer: str
    kind: PlanKind
    amount_fen: int
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SlipLine:
    index: int
    drug: str
    generic_name: str | None
    quantity: int
    donated_units: int
    unit_price_fen: int
    total_fen: int
    out_of_scope_fen: int
    above_standard_fen: int
    self_pay_first_fen: int
    in_scope_fen: int
    paid_by: tuple[tuple[str, int], ...]
    """(plan, amount) in waterfall order: who paid what of this line."""
    patient_fen: int
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Slip:
    settlement_id: uuid.UUID
    institution: str
    institution_name: str | None
    serial: str
    person: str
    """The insurance number (人员编号): never the ID number."""
    name: str | None
    """The patient's name, where the caller may read it (`access.may_read_name_of`)."""
    service_date: date
    visit: str
    reversed: bool
    settled_at: datetime
    reversed_at: datetime | None
    reversal_reason: str | None
    treating_region: str | None
    insured_region: str | None
    total_fen: int
    out_of_scope_fen: int
    above_standard_fen: int
    self_pay_first_fen: int
    in_scope_fen: int
    paid_fen: Mapping[PlanKind, int]
    """What the plans of each kind paid; every kind is present (0 where none paid)."""
    personal_account_fen: int
    cash_fen: int
    funds: tuple[SlipFund, ...]
    lines: tuple[SlipLine, ...]


@dataclass(frozen=True, slots=True)
class SlipFacts:
    """What the slip shows beyond the settlement itself."""

    institution_name: str | None
    treating_region: str | None
    insured_region: str | None
    name: str | None
    generic_names: Mapping[str, str]


class SlipDoesNotAddUp(AssertionError):
    """A settlement whose parts do not sum to its total: a broken invariant, never printed."""


def personal_account_fen(view: Settlement) -> int:
    """What the personal account (个人账户) paid: the one place that reads it. The settlement
    carries no such figure yet (the personal account is coming), so 0 until it does.
    """
    paid: int = getattr(view, "personal_account_fen", 0)
    return paid


def slip_of(view: Settlement, facts: SlipFacts) -> Slip:
    """The slip of a settlement as the read path shows it: the one function that knows its shape.

    The patient's share is what the personal account paid and the cash; with the plans' amounts
    it makes the total, to the fen, or the slip is refused (`SlipDoesNotAddUp`).
    """
    paid = dict.fromkeys(PlanKind, 0)
    for fund in view.funds:
        paid[fund.kind] += fund.amount_fen
    account = personal_account_fen(view)
    cash = view.patient_fen - account
    settled_at = view.settled_at
    if settled_at is None:  # a slip is of a stored settlement, never of a pre-settlement
        raise SlipDoesNotAddUp(f"settlement {view.id} was never settled")
    if sum(paid.values()) + account + cash != view.total_fen or cash < 0:
        raise SlipDoesNotAddUp(f"settlement {view.id}: the payments do not make its total")
    return Slip(
        settlement_id=view.id,
        institution=view.institution,
        institution_name=facts.institution_name,
        serial=view.serial,
        person=view.person,
        name=facts.name,
        service_date=view.service_date,
        visit=view.visit.value,
        reversed=view.status is SettlementStatus.REVERSED,
        settled_at=settled_at,
        reversed_at=view.reversed_at,
        reversal_reason=view.reversal_reason,
        treating_region=facts.treating_region,
        insured_region=facts.insured_region,
        total_fen=view.total_fen,
        out_of_scope_fen=view.out_of_scope_fen,
        above_standard_fen=view.above_standard_fen,
        self_pay_first_fen=view.self_pay_first_fen,
        in_scope_fen=view.in_scope_fen,
        paid_fen=MappingProxyType(paid),
        personal_account_fen=account,
        cash_fen=cash,
        funds=tuple(
            SlipFund(
                fund.plan,
                fund.payer,
                fund.kind,
                fund.amount_fen,
                tuple(reason.code.value for reason in fund.reasons),
            )
            for fund in view.funds
        ),
        lines=tuple(
            SlipLine(
                index=line.index,
                drug=line.drug,
                generic_name=facts.generic_names.get(line.drug),
                quantity=line.quantity,
                donated_units=line.donated_units,
                unit_price_fen=line.unit_price_fen,
                total_fen=line.total_fen,
                out_of_scope_fen=line.out_of_scope_fen,
                above_standard_fen=line.above_standard_fen,
                self_pay_first_fen=line.self_pay_first_fen,
                in_scope_fen=line.in_scope_fen,
                paid_by=tuple((payment.plan, payment.amount_fen) for payment in line.payments),
                patient_fen=line.patient_fen,
                reasons=tuple(reason.code.value for reason in line.reasons),
            )
            for line in view.lines
        ),
    )


def may_fetch_slips(principal: Principal) -> bool:
    """Institutions (their own settlements) and supervisors (their regions'); payers read the
    settlements they paid on through the API, but the patient's slip is not theirs to print.
    """
    return principal.role in INSTITUTION_ROLES or principal.role is Role.SUPERVISOR


async def slip(runtime: Runtime, principal: Principal, settlement_id: uuid.UUID) -> Slip | None:
    """The slip of a settlement the caller sees; None when it does not exist or is not visible.
    Printing the patient's name decrypts it: that read is audited, as the `name` field's is.
    """
    view = await queries.settlement(runtime, principal, settlement_id)
    if view is None:
        return None
    settlements = models.Settlement.__table__
    institutions = models.Institution.__table__
    people = models.Person.__table__
    drugs = models.Drug.__table__
    async with runtime.sessions() as session:
        row = (
            await session.execute(
                select(
                    settlements.c.region,
                    settlements.c.insured_region,
                    institutions.c.name.label("institution_name"),
                    people.c.id.label("person_id"),
                    people.c.region.label("person_region"),
                    people.c.name_ct,
                )
                .join(people, people.c.id == settlements.c.person_id)
                .outerjoin(institutions, institutions.c.code == settlements.c.institution_code)
                .where(settlements.c.id == settlement_id, access.settlements(principal))
            )
        ).one_or_none()
        if row is None:  # the same filter as the read above: not visible
            return None
        generic_names = dict(
            (
                await session.execute(
                    select(drugs.c.code, drugs.c.generic_name).where(
                        drugs.c.code.in_(sorted({line.drug for line in view.lines}))
                    )
                )
            ).all()
        )
        name: str | None = None
        if access.may_read_name_of(principal, served_by=view.institution, person_region=row.person_region):
            place = Place("people", "name_ct", row.person_id, people_tenant(row.person_region))
            try:
                name = await runtime.cipher.decrypt_text(place, row.name_ct, session)
            except DecryptionError:  # the region's key destroyed: the slip prints without the name
                name = None
    if name is not None:
        await audit.append_alone(
            runtime.sessions,
            audit.AuditRecord(
                audit.Actor.of(principal),
                "decrypt people.name_ct",
                "allowed",
                runtime.clock(),
                f"person:{view.person}",
                {"for": f"slip:{view.id}"},
            ),
        )
    facts = SlipFacts(row.institution_name, row.region, row.insured_region, name, generic_names)
    return slip_of(view, facts)
