"""How an anomaly is handled, on plain values: who takes which step, and that a decision is final."""

from __future__ import annotations

import itertools

from adjudication.anomaly_handling import COUNTED, Handler, Status, Step, may_take, status_after


def test_the_institution_only_explains_and_the_supervisor_only_decides() -> None:
    allowed = {(handler, step) for handler, step in itertools.product(Handler, Step) if may_take(handler, step)}

    assert allowed == {
        (Handler.INSTITUTION, Step.EXPLAINED),
        (Handler.SUPERVISOR, Step.CONFIRMED),
        (Handler.SUPERVISOR, Step.DISMISSED),
    }


def test_an_undecided_anomaly_takes_the_status_of_its_step_and_a_decided_one_takes_no_step() -> None:
    after = {(status, step): status_after(status, step) for status, step in itertools.product(Status, Step)}

    assert after == {
        (Status.OPEN, Step.EXPLAINED): Status.EXPLAINED,
        (Status.OPEN, Step.CONFIRMED): Status.CONFIRMED,
        (Status.OPEN, Step.DISMISSED): Status.DISMISSED,
        (Status.EXPLAINED, Step.EXPLAINED): Status.EXPLAINED,  # explained again, beside the first
        (Status.EXPLAINED, Step.CONFIRMED): Status.CONFIRMED,
        (Status.EXPLAINED, Step.DISMISSED): Status.DISMISSED,
        **{(decided, step): None for decided in (Status.CONFIRMED, Status.DISMISSED) for step in Step},
    }


def test_a_dismissed_anomaly_is_the_only_one_that_does_not_count_towards_a_risk() -> None:
    assert set(Status) - set(COUNTED) == {Status.DISMISSED}
