"""The adjudication engine: a pure calculator that splits a drug claim between payers.

No I/O, no clock, no environment, no ORM, no GraphQL: frozen facts in, an `Adjudication` out.
"""

from adjudication.claims import (
    Accumulator,
    Claim,
    ClaimLine,
    Institution,
    InstitutionKind,
    InsuranceType,
    Patient,
    Visit,
    check_service_date,
)
from adjudication.engine import DEFAULT_PERSONAL_ACCOUNT_COVERS, adjudicate
from adjudication.errors import AdjudicationError, ErrorCode, InputError, InvariantError
from adjudication.formulary import BasicEntry, Category, CommercialEntry, Formulary, Part, StandardPer
from adjudication.funding import Funding, PlanFunding, PoolDraw, fund, shares_by_payer
from adjudication.plans import (
    DEFAULT_WATERFALL,
    Band,
    Bands,
    BaseTerm,
    ByLevel,
    Caps,
    Catalogue,
    Criteria,
    Deductible,
    DeductiblePer,
    InKind,
    Plan,
    PlanKind,
    Rate,
    Variant,
)
from adjudication.results import Adjudication, LineResult, PayerShare, Reason, ReasonCode, Rebate, covered

__all__ = [
    "DEFAULT_PERSONAL_ACCOUNT_COVERS",
    "DEFAULT_WATERFALL",
    "Accumulator",
    "Adjudication",
    "AdjudicationError",
    "Band",
    "Bands",
    "BaseTerm",
    "BasicEntry",
    "ByLevel",
    "Caps",
    "Catalogue",
    "Category",
    "Claim",
    "ClaimLine",
    "CommercialEntry",
    "Criteria",
    "Deductible",
    "DeductiblePer",
    "ErrorCode",
    "Formulary",
    "Funding",
    "InKind",
    "InputError",
    "Institution",
    "InstitutionKind",
    "InsuranceType",
    "InvariantError",
    "LineResult",
    "Part",
    "Patient",
    "PayerShare",
    "Plan",
    "PlanFunding",
    "PlanKind",
    "PoolDraw",
    "Rate",
    "Reason",
    "ReasonCode",
    "Rebate",
    "StandardPer",
    "Variant",
    "Visit",
    "adjudicate",
    "check_service_date",
    "covered",
    "fund",
    "shares_by_payer",
]
