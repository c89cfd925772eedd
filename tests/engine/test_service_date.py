"""A claim's service date may run ahead of today by the tolerance, and no further."""

from __future__ import annotations

from datetime import date

import pytest

from adjudication import ErrorCode, InputError, check_service_date

TODAY = date(2026, 6, 16)


@pytest.mark.parametrize("service_date", [date(2026, 1, 1), TODAY, date(2026, 6, 17)])
def test_a_date_up_to_the_tolerance_after_today_passes(service_date: date) -> None:
    check_service_date(service_date, today=TODAY, tolerance_days=1)


@pytest.mark.parametrize(
    ("service_date", "tolerance_days"), [(date(2026, 6, 18), 1), (date(2026, 6, 17), 0), (date.max, 30)]
)
def test_a_date_beyond_the_tolerance_is_refused_on_the_service_date(service_date: date, tolerance_days: int) -> None:
    with pytest.raises(InputError) as refused:
        check_service_date(service_date, today=TODAY, tolerance_days=tolerance_days)

    assert (refused.value.code, refused.value.field) == (ErrorCode.SERVICE_DATE_IN_FUTURE, "serviceDate")
    assert str(TODAY) in refused.value.message


def test_a_tolerance_reaching_past_the_calendar_accepts_the_last_day_without_overflow() -> None:
    check_service_date(date.max, today=date(9999, 12, 30), tolerance_days=10**6)


def test_a_negative_tolerance_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="negative"):
        check_service_date(TODAY, today=TODAY, tolerance_days=-1)
