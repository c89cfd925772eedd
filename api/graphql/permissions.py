"""Field-level permissions: which roles may use a root field, and who may read a sensitive field.

A denied field answers FORBIDDEN (the field is null, the error carries `extensions.code`), and
the attempt is written to the audit log. Which rows a caller sees is decided elsewhere, once, in
the data-access layer (api/services/access.py).
"""

from __future__ import annotations

from typing import Any, ClassVar

from strawberry.permission import BasePermission

from api.auth import INSTITUTION_ROLES, PAYER_ROLES, Grant, Principal, Role
from api.graphql.context import Info
from api.services import access, audit


class Rule(BasePermission):
    message = "FORBIDDEN: your role may not read this field"
    roles: ClassVar[frozenset[Role]] = frozenset()

    def __init__(self) -> None:
        super().__init__()
        self.error_extensions = {"code": "FORBIDDEN"}

    def allows(self, principal: Principal, source: Any) -> bool:
        return principal.role in self.roles

    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        context = info.context
        if self.allows(context.principal, source):
            return True
        await audit.append_alone(
            context.runtime.sessions,
            audit.AuditRecord(
                audit.Actor.of(context.principal),
                f"read {info.path.typename}.{info.field_name}",
                "denied",
                context.runtime.clock(),
                detail={"code": "FORBIDDEN"},
            ),
        )
        return False


class ClaimReaders(Rule):
    """Settlements: institutions (their own), payers (what they paid), supervisors (their regions)."""

    roles = INSTITUTION_ROLES | PAYER_ROLES | {Role.SUPERVISOR}


class PeopleReaders(Rule):
    roles = INSTITUTION_ROLES | {Role.SUPERVISOR, Role.ADMIN}


class PlanReaders(Rule):
    roles = PAYER_ROLES | {Role.SUPERVISOR, Role.ADMIN}


class CatalogueReaders(Rule):
    roles = frozenset({Role.INSURER, Role.SUPERVISOR, Role.ADMIN})


class RebateReaders(Rule):
    """Rebate statements: insurers (their own), and auditors holding the price-audit grant."""

    def allows(self, principal: Principal, source: Any) -> bool:
        return principal.role is Role.INSURER or (
            principal.role in (Role.SUPERVISOR, Role.ADMIN) and principal.has(Grant.PRICE_AUDIT)
        )


class AnomalyReaders(Rule):
    """Anomalies and code histories: institutions (their own) and supervisors (their regions)."""

    roles = INSTITUTION_ROLES | {Role.SUPERVISOR}


class SupervisorsOnly(Rule):
    roles = frozenset({Role.SUPERVISOR})


class AuditVerifiers(Rule):
    roles = frozenset({Role.SUPERVISOR, Role.ADMIN})


class MayReadName(Rule):
    def allows(self, principal: Principal, source: Any) -> bool:
        return access.may_read_identity(principal)


class MayReadIdNumber(Rule):
    def allows(self, principal: Principal, source: Any) -> bool:
        return access.may_read_id_number(principal)
