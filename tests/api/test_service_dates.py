"""A claim is for care already given, on a date some rule covers: a service date after today
(Asia/Shanghai, one day of tolerance) or before the region's first formulary or plan is refused
with its own code, and writes nothing.

The service runs on a clock that reads 2026-06-15 16:30 UTC, which is already 2026-06-16 00:30
in Shanghai: "today" is the 16th, and a service that took the UTC date would be a day behind.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from api.settings import Settings
from tests.api.conftest import Service, clock_from, loaded_service, settings_for
from tests.api.documents import EMPLOYEE, PRE_SETTLE, REFERENCE_DATA, SETTLE, claim
from tests.api.test_errors import row_counts
from tests.api.tokens import Tokens

SHANGHAI_MIDNIGHT_PAST = datetime(2026, 6, 15, 16, 30, tzinfo=UTC)
TODAY = "2026-06-16"
TOMORROW = "2026-06-17"
DAY_AFTER_TOMORROW = "2026-06-18"


@pytest.fixture
async def window(database_url: str, tokens: Tokens) -> AsyncIterator[Service]:
    """A cashier's window just after midnight in Shanghai; every invariant holds afterwards."""
    async with loaded_service(database_url, tokens, clock_from(SHANGHAI_MIDNIGHT_PAST)) as service:
        yield service


async def submit(service: Service, mutation: str, serial: str, service_date: str) -> dict[str, object]:
    data = await service.graphql(mutation, {"claim": claim(serial, person=EMPLOYEE, service_date=service_date)})
    result: dict[str, object] = next(iter(data.values()))
    return result


@pytest.mark.parametrize("mutation", [SETTLE, PRE_SETTLE], ids=["settle", "preSettle"])
@pytest.mark.parametrize("service_date", [TODAY, TOMORROW], ids=["today", "tomorrow"])
async def test_a_claim_dated_today_or_tomorrow_in_shanghai_is_accepted(
    window: Service, mutation: str, service_date: str
) -> None:
    result = await submit(window, mutation, "D-OK", service_date)

    assert result["__typename"] == "Settlement", result
    assert result["serviceDate"] == service_date


@pytest.mark.parametrize("mutation", [SETTLE, PRE_SETTLE], ids=["settle", "preSettle"])
@pytest.mark.parametrize("service_date", [DAY_AFTER_TOMORROW, "9999-12-31"], ids=["in two days", "year 9999"])
async def test_a_claim_dated_beyond_tomorrow_is_refused_and_writes_nothing(
    window: Service, mutation: str, service_date: str
) -> None:
    before = await row_counts(window)

    result = await submit(window, mutation, "D-FUTURE", service_date)

    assert (result["__typename"], result["code"], result["field"]) == (
        "InvalidInput",
        "SERVICE_DATE_IN_FUTURE",
        "claim.serviceDate",
    )
    assert f"today is {TODAY}" in str(result["message"]) and service_date in str(result["message"])
    assert result["retryable"] is False
    assert await row_counts(window) == before


async def test_a_refused_future_claim_leaves_its_serial_free_for_the_corrected_claim(window: Service) -> None:
    refused = await submit(window, SETTLE, "D-TYPO", "2062-06-16")
    corrected = await submit(window, SETTLE, "D-TYPO", TODAY)

    assert refused["code"] == "SERVICE_DATE_IN_FUTURE"
    assert corrected["__typename"] == "Settlement", corrected


@pytest.mark.parametrize("mutation", [SETTLE, PRE_SETTLE], ids=["settle", "preSettle"])
async def test_a_claim_dated_before_the_regions_first_plan_is_refused_even_under_a_formulary(
    window: Service, mutation: str
) -> None:
    older_formulary = {"region": REFERENCE_DATA["region"], "effective_from": "2025-01-01"}
    older_formulary["formulary"] = copy.deepcopy(REFERENCE_DATA["formulary"])
    assert (await window.load(older_formulary))["formularyVersions"] == 1
    before = await row_counts(window)

    result = await submit(window, mutation, "D-OLD", "2025-06-01")

    assert (result["__typename"], result["code"], result["field"]) == (
        "InvalidInput",
        "SERVICE_DATE_BEFORE_RULES",
        "claim.serviceDate",
    )
    assert "first plan of region 310100, in force from 2026-01-01" in str(result["message"])
    assert await row_counts(window) == before


async def test_a_claim_dated_before_the_regions_first_formulary_names_the_formulary(window: Service) -> None:
    result = await submit(window, SETTLE, "D-OLDER", "1999-12-31")

    assert (result["code"], result["field"]) == ("SERVICE_DATE_BEFORE_RULES", "claim.serviceDate")
    assert "first formulary of region 310100, in force from 2026-01-01" in str(result["message"])


async def test_the_tolerance_is_a_setting_and_zero_refuses_tomorrow(database_url: str, tokens: Tokens) -> None:
    settings = settings_for(database_url, tokens).replace(service_date_tolerance_days=0)
    async with loaded_service(database_url, tokens, clock_from(SHANGHAI_MIDNIGHT_PAST), settings) as strict:
        today = await submit(strict, SETTLE, "D-STRICT-1", TODAY)
        tomorrow = await submit(strict, SETTLE, "D-STRICT-2", TOMORROW)

    assert (today["__typename"], tomorrow["code"]) == ("Settlement", "SERVICE_DATE_IN_FUTURE")


def test_the_tolerance_is_read_from_the_environment_and_may_not_be_negative() -> None:
    assert Settings.from_environment({}).service_date_tolerance_days == 1
    assert Settings.from_environment({"SETTLE_SERVICE_DATE_TOLERANCE_DAYS": "3"}).service_date_tolerance_days == 3
    with pytest.raises(ValueError, match="SETTLE_SERVICE_DATE_TOLERANCE_DAYS"):
        Settings.from_environment({"SETTLE_SERVICE_DATE_TOLERANCE_DAYS": "-1"})
