"""Who may see which rows: one filter per kind of object, applied in the data-access layer.

Every query the service runs for a caller goes through these filters, so that a resolver that
forgets a check still cannot leak a row: an object outside the caller's tenant or region is
simply not found, exactly like one that does not exist.

    hospital, pharmacy      their own institution: its settlements, its pools; people of its region
    insurer, mutual aid,    settlements their plans paid on; their own plans, catalogue entries,
    charity                 pools and rebates
    supervisor              everything in their regions (prices and rebates only with the
                            price-audit grant, and still only those of their regions); and the
                            settlements of the people their regions insure, wherever treated
                            (异地就医)
    admin                   reference data: institutions, people, plans, catalogues, pools; no claims
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, FromClause, exists, false, select, true

from api.auth import INSTITUTION_ROLES, PAYER_ROLES, Grant, Principal, Role
from api.db import models

SYSTEM = Principal(
    subject="system:local",
    role=Role.ADMIN,
    org="SYSTEM",
    regions=frozenset(),
    grants=frozenset(),
    token_id="local",
    issuer="local",
)
"""The operator at the machine (`settle load`, the demo loader): an admin, audited as `system:local`."""

ALL_REGIONS = "*"
"""The region of what concerns the whole service rather than one region (a forged audit entry:
the audit log is one for every region): every supervisor sees it."""


def _institution_region(principal: Principal) -> ColumnElement[str]:
    institutions = models.Institution.__table__
    return select(institutions.c.region).where(institutions.c.code == principal.org).scalar_subquery()


def settlements(principal: Principal, table: FromClause | None = None) -> ColumnElement[bool]:
    """A supervisor sees a settlement from either of its regions: the treating institution's,
    which watches its institutions, and the patient's insuring region, whose funds paid (and owe
    the institution what its pools there did not cover) wherever the patient was treated.
    """
    table = models.Settlement.__table__ if table is None else table
    if principal.role in INSTITUTION_ROLES:
        return table.c.institution_code == principal.org
    if principal.role in PAYER_ROLES:
        payers = models.SettlementPayer.__table__
        return exists().where(
            payers.c.settlement_id == table.c.id, payers.c.payer_code == principal.org, payers.c.amount_fen > 0
        )
    if principal.role is Role.SUPERVISOR:
        regions = sorted(principal.regions)
        return table.c.region.in_(regions) | table.c.insured_region.in_(regions)
    return false()


def people(principal: Principal) -> ColumnElement[bool]:
    table = models.Person.__table__
    if principal.role in INSTITUTION_ROLES:
        return table.c.region == _institution_region(principal)
    if principal.role is Role.SUPERVISOR:
        return table.c.region.in_(sorted(principal.regions))
    return true() if principal.role is Role.ADMIN else false()


def institutions(principal: Principal) -> ColumnElement[bool]:
    table = models.Institution.__table__
    if principal.role in INSTITUTION_ROLES:
        return table.c.code == principal.org
    if principal.role is Role.SUPERVISOR:
        return table.c.region.in_(sorted(principal.regions))
    return true()  # the register of designated institutions is known to every payer and the admin


def pools(principal: Principal) -> ColumnElement[bool]:
    table = models.PrepaymentPool.__table__
    if principal.role in INSTITUTION_ROLES:
        return table.c.institution_code == principal.org
    if principal.role in PAYER_ROLES:
        return table.c.payer_code == principal.org
    if principal.role is Role.SUPERVISOR:
        institutions_table = models.Institution.__table__
        return exists().where(
            institutions_table.c.code == table.c.institution_code,
            institutions_table.c.region.in_(sorted(principal.regions)),
        )
    return true()


def plans(principal: Principal) -> ColumnElement[bool]:
    table = models.PlanVersion.__table__
    if principal.role in PAYER_ROLES:
        return table.c.payer_code == principal.org
    if principal.role is Role.SUPERVISOR:
        return table.c.region.in_(sorted(principal.regions))
    return true() if principal.role is Role.ADMIN else false()


def catalogue(principal: Principal) -> ColumnElement[bool]:
    table = models.CommercialEntry.__table__
    if principal.role is Role.INSURER:
        return table.c.insurer_code == principal.org
    if principal.role is Role.SUPERVISOR:
        versions = models.FormularyVersion.__table__
        return exists().where(
            versions.c.id == table.c.formulary_version_id, versions.c.region.in_(sorted(principal.regions))
        )
    return true() if principal.role is Role.ADMIN else false()


def rebates(principal: Principal) -> ColumnElement[bool]:
    """A manufacturer's rebate: its insurer's; a price auditor's (the price-audit grant) of the
    claims treated in its regions, for a supervisor (see `may_read_rebate`); every one for the
    admin holding the grant.
    """
    table = models.SettlementRebate.__table__
    if principal.role is Role.INSURER:
        return table.c.insurer_code == principal.org
    if not principal.has(Grant.PRICE_AUDIT):
        return false()
    if principal.role is Role.SUPERVISOR:
        settlements = models.Settlement.__table__.alias("rebate_settlement")  # the caller may join settlements too
        return exists().where(
            settlements.c.id == table.c.settlement_id, settlements.c.region.in_(sorted(principal.regions))
        )
    return true() if principal.role is Role.ADMIN else false()


def anomalies(principal: Principal) -> ColumnElement[bool]:
    """An institution sees (and explains) its own anomalies; a supervisor those of its regions,
    and those of the whole service (ALL_REGIONS).
    """
    table = models.Anomaly.__table__
    if principal.role in INSTITUTION_ROLES:
        return table.c.institution_code == principal.org
    if principal.role is Role.SUPERVISOR:
        return table.c.region.in_([*sorted(principal.regions), ALL_REGIONS])
    return false()


def trace_events(principal: Principal) -> ColumnElement[bool]:
    table = models.TraceEvent.__table__
    if principal.role in INSTITUTION_ROLES:
        return table.c.institution_code == principal.org
    if principal.role is Role.SUPERVISOR:
        return table.c.region.in_(sorted(principal.regions))
    return false()


def may_read_price(principal: Principal, insurer: str) -> bool:
    """A confidential settlement price: its insurer, or an auditor holding the price-audit grant."""
    if principal.role is Role.INSURER:
        return principal.org == insurer
    return principal.role in (Role.SUPERVISOR, Role.ADMIN) and principal.has(Grant.PRICE_AUDIT)


def may_read_rebate(principal: Principal, insurer: str, settlement_region: str) -> bool:
    """A rebate on a settlement the caller sees: as a price (`may_read_price`), and for a price
    auditor only where the settlement was treated in its regions. The rebate is the list price
    less the treating region's confidential catalogue price, so the insuring region's auditor,
    who sees the settlement, would otherwise learn another region's price from it.
    """
    if not may_read_price(principal, insurer):
        return False
    return principal.role is not Role.SUPERVISOR or settlement_region in principal.regions


def may_read_identity(principal: Principal) -> bool:
    """A person's name: the institutions that serve them, supervisors, the admin."""
    return principal.role in INSTITUTION_ROLES or principal.role in (Role.SUPERVISOR, Role.ADMIN)


def may_read_name_of(principal: Principal, *, served_by: str, person_region: str) -> bool:
    """A patient's name on a settlement slip: the institution that served them (the slip is
    handed to the patient at its window, wherever they are insured), and the supervisors who may
    read the person (those of the person's region). A supervisor of the treating region sees
    the settlement of a patient insured elsewhere, but that person is not of its regions.
    """
    if not may_read_identity(principal):
        return False
    if principal.role in INSTITUTION_ROLES:
        return principal.org == served_by
    if principal.role is Role.SUPERVISOR:
        return person_region in principal.regions
    return principal.role is Role.ADMIN


def may_read_id_number(principal: Principal) -> bool:
    """A national ID number is returned in clear only to supervisors and the admin."""
    return principal.role in (Role.SUPERVISOR, Role.ADMIN)


def may_settle_at(principal: Principal, institution: str) -> bool:
    return principal.role in INSTITUTION_ROLES and principal.org == institution


def may_administer(principal: Principal) -> bool:
    return principal.role is Role.ADMIN
