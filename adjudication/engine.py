"""adjudicate(): split one drug claim between the plans and the patient, to the fen, with reasons.

The order of work:
1. in-kind donation programmes take their free units out of the lines;
2. each line's remaining units are split into the four parts (formulary.parts), less what an
   earlier settlement already paid of them (`paid_before`, for a claim after the fact);
3. the other plans meet the claim in the waterfall order of the patient's insuring region (by
   default basic, serious illness, medical assistance, commercial, mutual aid, charity; listed
   order within a kind), each paying a ratio of what is still unpaid of its base parts, after its
   deductible, within its caps, on the lines it covers and is authorized for, if the patient
   consented where it asks that;
4. what no plan paid is the patient's; the personal account pays what it covers of that, up to
   its balance; rebates are derived for commercial-catalogue lines.
Before returning, every line and the whole claim are checked to add up to the fen.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from adjudication.claims import (
    ZERO_ACCUMULATOR,
    Accumulator,
    Claim,
    ClaimLine,
    Institution,
    InstitutionKind,
    Patient,
    Visit,
)
from adjudication.errors import ErrorCode, InputError, InvariantError
from adjudication.formulary import PARTS, Formulary, Part, Scope
from adjudication.money import RATIO_ONE, Fen, format_yuan, round_half_up, spread
from adjudication.plans import (
    DEFAULT_WATERFALL,
    ByLevel,
    Catalogue,
    DeductiblePer,
    Plan,
    PlanKind,
    at_level,
    check_waterfall,
    pay_micro,
    terms_for,
)
from adjudication.results import (
    Adjudication,
    LineResult,
    Parts,
    PayerShare,
    Reason,
    ReasonCode,
    Rebate,
)

DEFAULT_PERSONAL_ACCOUNT_COVERS: tuple[Part, ...] = (Part.IN_SCOPE, Part.SELF_PAY_FIRST)
"""The policy-range self-pay (政策范围内自付): what a personal account pays where the region says nothing."""

_SCOPE_REASONS = {
    Scope.NOT_IN_CATALOGUE: (ReasonCode.NOT_IN_CATALOGUE, "not in the basic formulary"),
    Scope.RESTRICTED_SCOPE: (ReasonCode.RESTRICTED_SCOPE, "outside the drug's restricted scope"),
    Scope.NOT_DUAL_CHANNEL: (ReasonCode.NOT_DUAL_CHANNEL, "not a dual-channel drug at a pharmacy"),
}


def check_claim(
    claim: Claim,
    institution: Institution,
    plans: Sequence[Plan],
    formulary: Formulary,
    patient: Patient,
) -> None:
    """Refuse a claim the engine cannot split: the checks that hold whoever built the values."""
    if not claim.lines:
        raise InputError("claim.lines", "a claim has at least one line", ErrorCode.MISSING_FIELD)
    if patient.personal_account is not None and patient.personal_account < 0:
        raise InputError("patient.personal_account", "must not be negative", ErrorCode.INVALID_AMOUNT)
    donated_drugs = frozenset(plan.in_kind.drug for plan in plans if plan.in_kind is not None)
    for index, line in enumerate(claim.lines):
        path = f"claim.lines[{index}]"
        if line.quantity <= 0:
            raise InputError(
                f"{path}.quantity",
                f"quantity must be a positive integer, not {line.quantity}",
                ErrorCode.INVALID_QUANTITY,
            )
        if line.unit_price < 0:
            raise InputError(f"{path}.unit_price", "must not be negative", ErrorCode.INVALID_AMOUNT)
        for part in PARTS:
            if line.paid_before[part] < 0:
                raise InputError(f"{path}.paid_before.{part.key}", "must not be negative", ErrorCode.INVALID_AMOUNT)
        formulary.check_units(line, path, donated_drugs)
    if (claim.visit is Visit.PHARMACY) != (institution.kind is InstitutionKind.PHARMACY):
        raise InputError(
            "claim.visit",
            f"a {institution.kind} cannot submit a {claim.visit} claim",
            ErrorCode.VISIT_MISMATCH,
        )
    seen: set[str] = set()
    for index, plan in enumerate(plans):
        if plan.id in seen:
            raise InputError(f"plans[{index}].id", f"plan {plan.id} is listed twice", ErrorCode.DUPLICATE)
        seen.add(plan.id)


def adjudicate(
    claim: Claim,
    *,
    patient: Patient,
    institution: Institution,
    formulary: Formulary,
    plans: Sequence[Plan],
    waterfall: Sequence[PlanKind] = DEFAULT_WATERFALL,
    personal_account_covers: Collection[Part] = DEFAULT_PERSONAL_ACCOUNT_COVERS,
) -> Adjudication:
    """Split `claim` between `plans` and the patient. Pure: the same inputs give the same split.

    `waterfall` and `personal_account_covers` are the policies of the patient's insuring region:
    the order in which plan kinds meet the claim, and the parts the personal account pays.
    """
    check_waterfall(waterfall)
    check_claim(claim, institution, plans, formulary, patient)
    lines = claim.lines
    totals = [line.quantity * line.unit_price for line in lines]
    remaining = [line.quantity for line in lines]
    line_reasons: list[list[Reason]] = [[] for _ in lines]
    unauthorized = [False] * len(lines)
    paid: dict[str, list[Fen]] = {}
    payers: list[PayerShare] = []
    rank = {kind: position for position, kind in enumerate(waterfall)}
    in_kind = [plan for plan in plans if plan.in_kind is not None]
    in_order = sorted((plan for plan in plans if plan.in_kind is None), key=lambda p: rank[p.kind])

    for plan in in_kind:
        shares, payer = _donate(plan, claim, patient, institution, remaining, line_reasons, unauthorized)
        paid[plan.id] = shares
        payers.append(payer)

    unpaid: list[list[Fen]] = []
    line_parts: list[Parts] = []
    for index, line in enumerate(lines):
        scope = formulary.scope(line.drug, claim.visit, claim.diagnoses)
        parts = formulary.parts(line, scope, remaining[index])
        if scope is not Scope.IN_SCOPE:
            code, message = _SCOPE_REASONS[scope]
            line_reasons[index].append(Reason(code, f"{line.drug} is {message}"))
        elif parts[Part.ABOVE_STANDARD]:
            line_reasons[index].append(
                Reason(
                    ReasonCode.ABOVE_STANDARD,
                    f"{format_yuan(parts[Part.ABOVE_STANDARD])} above the payment standard",
                )
            )
        line_parts.append((parts[0], parts[1], parts[2], parts[3]))
        for part in PARTS:
            already = line.paid_before[part]
            if already > parts[part]:
                raise InputError(
                    f"claim.lines[{index}].paid_before.{part.key}",
                    f"{format_yuan(already)} is more than the line's {part.key} of {format_yuan(parts[part])}",
                    ErrorCode.INVALID_AMOUNT,
                )
            parts[part] -= already
        unpaid.append(parts)

    accumulators: dict[str, Accumulator] = {}
    changes: dict[str, Accumulator] = {}
    for plan in in_order:
        before = patient.accumulators.get(plan.id, ZERO_ACCUMULATOR)
        payer, shares, after = _apply_plan(plan, claim, patient, institution, formulary, unpaid, before, unauthorized)
        payers.append(payer)
        paid[plan.id] = shares
        accumulators[plan.id] = after
        if after != before:
            changes[plan.id] = after - before
    for plan_id, accumulator in patient.accumulators.items():
        accumulators.setdefault(plan_id, accumulator)
    for index, flagged in enumerate(unauthorized):
        if flagged:
            message = f"{lines[index].drug} needs a pre-authorization this line does not carry"
            line_reasons[index].append(Reason(ReasonCode.NOT_AUTHORIZED, message))

    balance = patient.personal_account or 0
    covered = sorted(set(personal_account_covers))
    account_bases = [sum(parts[part] for part in covered) for parts in unpaid]
    account_paid = min(balance, sum(account_bases))
    account_shares = spread(account_paid, account_bases)

    line_results: list[LineResult] = []
    rebates: list[Rebate] = []
    patient_total = 0
    for index, line in enumerate(lines):
        line_paid = {plan_id: shares[index] for plan_id, shares in paid.items()}
        paid_before = sum(line.paid_before)
        patient_share = totals[index] - paid_before - sum(line_paid.values())
        if patient_share != sum(unpaid[index]) or patient_share < 0:
            raise InvariantError(f"line {index}: the patient's share {patient_share} does not match what is unpaid")
        if not 0 <= account_shares[index] <= account_bases[index]:
            raise InvariantError(f"line {index}: the personal account paid more than it covers")
        patient_total += patient_share
        line_results.append(
            LineResult(
                index=index,
                drug=line.drug,
                quantity=line.quantity,
                donated_units=line.quantity - remaining[index],
                total=totals[index],
                parts=line_parts[index],
                paid=line_paid,
                patient=patient_share,
                reasons=tuple(line_reasons[index]),
                paid_before=paid_before,
                patient_parts=(unpaid[index][0], unpaid[index][1], unpaid[index][2], unpaid[index][3]),
                personal_account=account_shares[index],
            )
        )
        rebate = _rebate(index, line, remaining[index], in_order, paid, formulary)
        if rebate is not None:
            rebates.append(rebate)

    for payer in payers:
        if sum(paid[payer.plan]) != payer.amount:
            raise InvariantError(f"plan {payer.plan}: line shares do not add up to its amount")
    total = sum(totals)
    paid_before_total = sum(line.paid_before for line in line_results)
    if paid_before_total + patient_total + sum(payer.amount for payer in payers) != total:
        raise InvariantError("paid before, payers and patient do not add up to the claim's total")

    units_received = dict(patient.units_received)
    for line in lines:
        # programmes and units_received count packages: a split line's smallest units add none
        units_received[line.drug] = units_received.get(line.drug, 0) + (0 if line.split else line.quantity)
    claim_parts = tuple(sum(parts[part] for parts in line_parts) for part in range(len(PARTS)))
    return Adjudication(
        total=total,
        parts=(claim_parts[0], claim_parts[1], claim_parts[2], claim_parts[3]),
        payers=tuple(payers),
        patient=patient_total,
        lines=tuple(line_results),
        rebates=tuple(rebates),
        accumulators=accumulators,
        accumulator_changes=changes,
        units_received=units_received,
        paid_before=paid_before_total,
        personal_account_paid=account_paid,
        personal_account_balance=balance - account_paid,
    )


def _donate(
    plan: Plan,
    claim: Claim,
    patient: Patient,
    institution: Institution,
    remaining: list[int],
    line_reasons: list[list[Reason]],
    unauthorized: list[bool],
) -> tuple[list[Fen], PayerShare]:
    """Apply a donation programme: take its free units out of `remaining`, pay their full price.

    Units of the programme's drug are numbered in claim order after the units the patient has
    already received this year; those numbered in (after_units, after_units + free_units] are free.
    A line the programme needs an authorization for and does not have gets nothing, yet its
    units are numbered all the same (they were received).
    """
    assert plan.in_kind is not None
    programme = plan.in_kind
    shares = [0] * len(claim.lines)
    failure = plan.eligible.failure(claim, patient, institution)
    if failure is not None:
        return shares, _refused(plan, ReasonCode.NOT_ELIGIBLE, failure)
    if not plan.consented(patient):
        return shares, _refused(plan, ReasonCode.NO_PATIENT_CONSENT, _NO_CONSENT.format(payer=plan.payer))
    first_free = programme.after_units + 1
    last_free = programme.after_units + programme.free_units
    counted = patient.units_received.get(programme.drug, 0)
    donated_units = 0
    lines_of_drug = authorized_lines = 0
    for index, line in enumerate(claim.lines):
        if line.drug != programme.drug:
            continue
        first, last = counted + 1, counted + line.quantity
        counted = last
        lines_of_drug += 1
        if not plan.authorized(line):
            unauthorized[index] = True
            continue
        authorized_lines += 1
        donated = min(max(0, min(last, last_free) - max(first, first_free) + 1), remaining[index])
        if donated:
            donated_units += donated
            remaining[index] -= donated
            shares[index] = donated * line.unit_price
            line_reasons[index].append(Reason(ReasonCode.DONATED, f"{donated} units donated by {plan.id}"))
    if lines_of_drug and not authorized_lines:
        return shares, _refused(plan, ReasonCode.NOT_AUTHORIZED, _NOT_AUTHORIZED.format(plan=plan.id))
    amount = sum(shares)
    reasons = (
        (Reason(ReasonCode.DONATED, f"{donated_units} units of {programme.drug} donated"),) if donated_units else ()
    )
    return shares, PayerShare(plan.id, plan.payer, plan.kind, amount, amount, 0, reasons)


_NO_CONSENT = "the patient has not consented to direct settlement by {payer}: what it would pay is claimable later"
_NOT_AUTHORIZED = "no line it covers carries an authorization for {plan}"


def _apply_plan(
    plan: Plan,
    claim: Claim,
    patient: Patient,
    institution: Institution,
    formulary: Formulary,
    unpaid: list[list[Fen]],
    before: Accumulator,
    unauthorized: list[bool],
) -> tuple[PayerShare, list[Fen], Accumulator]:
    """One step of the waterfall: what `plan` pays of what is still unpaid, taken out of `unpaid`.

    Returns the payer's entry, its share of each line and the plan's accumulator after the claim.
    Lines it needs an authorization for and lacks are left out of its base and flagged in
    `unauthorized`.
    """
    lines = claim.lines
    shares = [0] * len(lines)
    failure = plan.eligible.failure(claim, patient, institution)
    if failure is not None:
        return _refused(plan, ReasonCode.NOT_ELIGIBLE, failure), shares, before
    terms = terms_for(plan, claim, patient, institution)
    level = institution.level
    rule = terms.ratio.at(level) if isinstance(terms.ratio, ByLevel) else terms.ratio
    deductible = terms.deductible
    deductible_amount: Fen | None = 0
    if deductible is not None:
        deductible_amount = at_level(deductible.amount, level)
        if deductible.per is DeductiblePer.CLAIM and before.claims and deductible.subsequent is not None:
            deductible_amount = at_level(deductible.subsequent, level)
    if rule is None or deductible_amount is None:
        message = f"the plan states no terms for level {level} institutions"
        return _refused(plan, ReasonCode.NOT_ELIGIBLE, message), shares, before
    if not plan.consented(patient):
        return _refused(plan, ReasonCode.NO_PATIENT_CONSENT, _NO_CONSENT.format(payer=plan.payer)), shares, before

    drugs = plan.eligible.drugs
    catalogue_only = plan.only_catalogue is Catalogue.COMMERCIAL
    covered = [
        index
        for index, line in enumerate(lines)
        if (not drugs or line.drug in drugs) and (not catalogue_only or (line.drug, plan.payer) in formulary.commercial)
    ]
    if not covered:
        message = f"no drug of the claim is in {plan.payer}'s commercial catalogue"
        return _refused(plan, ReasonCode.NOT_IN_CATALOGUE, message), shares, before
    for index in covered:
        if not plan.authorized(lines[index]):
            unauthorized[index] = True
    covered = [index for index in covered if plan.authorized(lines[index])]
    if not covered:
        return _refused(plan, ReasonCode.NOT_AUTHORIZED, _NOT_AUTHORIZED.format(plan=plan.id)), shares, before

    terms_by_part = plan.base_in_order
    line_bases: list[Fen] = []
    for index in covered:
        parts = unpaid[index]
        if plan.weighted:
            line_bases.append(round_half_up(sum(parts[t.part] * t.weight for t in terms_by_part), RATIO_ONE))
        else:
            line_bases.append(sum(parts[t.part] for t in terms_by_part))
    base = sum(line_bases)

    reasons: list[Reason] = []
    met = before.deductible_met
    if deductible is None:
        applied = 0
    elif deductible.per is DeductiblePer.YEAR:
        applied = min(base, max(0, deductible_amount - met))
        met += applied
        if applied:
            reasons.append(Reason(ReasonCode.DEDUCTIBLE, f"{format_yuan(applied)} of the annual deductible applied"))
    else:
        applied = min(base, deductible_amount)
        if applied:
            reasons.append(Reason(ReasonCode.DEDUCTIBLE, f"{format_yuan(applied)} of the per-claim deductible applied"))
    after_deductible = base - applied

    amount = round_half_up(pay_micro(rule, after_deductible, before.base_spent), RATIO_ONE)
    caps = terms.caps
    if caps.claim is not None and amount > caps.claim:
        amount = caps.claim
        reasons.append(Reason(ReasonCode.CLAIM_CAP, f"limited to the per-claim cap of {format_yuan(caps.claim)}"))
    if caps.annual is not None:
        room = max(0, caps.annual - before.paid)
        if amount > room:
            amount = room
            reasons.append(
                Reason(
                    ReasonCode.ANNUAL_CAP,
                    f"limited by the annual cap of {format_yuan(caps.annual)}: {format_yuan(room)} left",
                )
            )

    parts_in_base = [term.part for term in terms_by_part]
    for index, share in zip(covered, spread(amount, line_bases), strict=True):
        shares[index] = share
        parts = unpaid[index]
        for part in parts_in_base:
            if not share:
                break
            taken = min(share, parts[part])
            parts[part] -= taken
            share -= taken
        if share:
            raise InvariantError(f"plan {plan.id} was given more than is unpaid on line {index}")

    after = Accumulator(
        deductible_met=met,
        base_spent=before.base_spent + after_deductible,
        paid=before.paid + amount,
        claims=before.claims + (1 if base > 0 else 0),
    )
    payer = PayerShare(plan.id, plan.payer, plan.kind, amount, base, applied, tuple(reasons))
    return payer, shares, after


def _refused(plan: Plan, code: ReasonCode, message: str) -> PayerShare:
    return PayerShare(plan.id, plan.payer, plan.kind, 0, 0, 0, (Reason(code, message),))


def _rebate(
    index: int,
    line: ClaimLine,
    units: int,
    waterfall: Sequence[Plan],
    paid: dict[str, list[Fen]],
    formulary: Formulary,
) -> Rebate | None:
    """The manufacturer's rebate on a line, owed to the first insurer in waterfall order that paid
    on it and lists the drug in its commercial catalogue (see `Formulary.rebate`); not computable
    (None) when that insurer's settlement price is unknown. Nothing else depends on the price.
    """
    for plan in waterfall:
        if not paid[plan.id][index]:
            continue
        if (line.drug, plan.payer) in formulary.commercial:
            amount = formulary.rebate(line, plan.payer, units)
            return Rebate(line=index, drug=line.drug, insurer=plan.payer, amount=amount)
    return None
