"""How an anomaly is handled: open → explained (by its institution) → confirmed or dismissed (by a
supervisor of its region, with a reason). Each step is kept as a record of its own, so that an
explanation is still there after the decision; a decision is final.

Pure rules: the service reads the anomaly's status, asks what a step may do, and appends it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Status(StrEnum):
    OPEN = "open"
    EXPLAINED = "explained"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"


class Step(StrEnum):
    """What a step does; after it, the anomaly's status is the step's name."""

    EXPLAINED = "explained"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"


class Handler(StrEnum):
    """Who takes a step, as the rules see them: the institution the anomaly is about, or a fund
    supervisor (which anomalies each may reach is the service's access rule, not this module's).
    """

    INSTITUTION = "institution"
    SUPERVISOR = "supervisor"


STEPS: Mapping[Handler, frozenset[Step]] = {
    Handler.INSTITUTION: frozenset({Step.EXPLAINED}),
    Handler.SUPERVISOR: frozenset({Step.CONFIRMED, Step.DISMISSED}),
}
"""The institution explains (it knows what happened at its window); the supervisor decides (it
judges the explanation): neither takes the other's step."""

DECIDED = frozenset({Status.CONFIRMED, Status.DISMISSED})
"""A supervisor's decision is final: nothing is added after it, so that the decision a risk
figure or a penalty rests on cannot move underneath it."""

EXPLANATIONS_MAX = 20
"""An institution's explanations of one anomaly, at most: each is kept and shown with the anomaly,
so their number is bounded like everything else a caller can make grow."""

COUNTED = (Status.OPEN, Status.EXPLAINED, Status.CONFIRMED)
"""The statuses that count towards an institution's risk: a dismissed anomaly was judged not to
be one."""


def may_take(handler: Handler, step: Step) -> bool:
    return step in STEPS[handler]


def status_after(status: Status, step: Step) -> Status | None:
    """The status `step` leads to, or None when the anomaly is already decided. An institution
    may explain again while it is undecided (the supervisor may have asked for more): each
    explanation is a step of its own, the earlier ones kept.
    """
    if status in DECIDED:
        return None
    return Status(step.value)
