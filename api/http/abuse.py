"""Limits against abuse: rate limits per token and per client address, and refused tokens
counted per address and minute instead of one audit row each.

Both live in this process's memory. `settle serve` with several workers has one of each per
worker: a caller spread over N workers may make up to N times the rate, and a flood of bad
tokens is written as up to N rows per address and minute (each with its worker's count). That
bounds the damage, which is their purpose; an exact global limit belongs in front of the
service (the gateway), not in each replica.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import JSONResponse

from api.logs import describe, get_logger
from api.services import audit
from api.settings import Settings

log = get_logger("settle.abuse")

CLAIMED_TOKEN_IDS_MAX = 10
"""Distinct token ids (as claimed, unverified) kept in one minute's row, for the investigator."""
OTHER_SOURCES = "*"
"""Where refusals are counted once `tracked_max` addresses already have a row pending."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """A token bucket per key: `burst` requests at once, refilled at `per_second`. The least
    recently seen keys are forgotten beyond `tracked_max` (a forgotten key starts full again).
    """

    def __init__(self, per_second: float, burst: int, tracked_max: int, clock: Callable[[], float]) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")
        self.per_second = per_second
        self.burst = burst
        self.tracked_max = tracked_max
        self.clock = clock
        self.buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str) -> int | None:
        """Spend one request of `key`'s bucket: None if allowed, else whole seconds until it may retry."""
        now = self.clock()
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = _Bucket(float(self.burst), now)
            if len(self.buckets) > self.tracked_max:
                self.buckets.popitem(last=False)
        else:
            self.buckets.move_to_end(key)
            bucket.tokens = min(float(self.burst), bucket.tokens + max(0.0, now - bucket.at) * self.per_second)
            bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return max(1, math.ceil((1 - bucket.tokens) / self.per_second))


@dataclass(frozen=True, slots=True)
class Limits:
    """The service's rate limits (None: off, `SETTLE_RATE_LIMITS=0`)."""

    per_token: RateLimiter | None
    per_source: RateLimiter | None

    @classmethod
    def of(cls, settings: Settings, clock: Callable[[], datetime]) -> Limits:
        if not settings.rate_limits:
            return cls(None, None)

        def seconds() -> float:
            return clock().timestamp()

        return cls(
            RateLimiter(settings.rate_token_per_second, settings.rate_token_burst, settings.rate_tracked_max, seconds),
            RateLimiter(
                settings.rate_source_per_second, settings.rate_source_burst, settings.rate_tracked_max, seconds
            ),
        )

    def source(self, address: str) -> int | None:
        return None if self.per_source is None else self.per_source.take(address)

    def token(self, token_id: str) -> int | None:
        return None if self.per_token is None else self.per_token.take(token_id)


def rate_limited(retry_after_seconds: int) -> JSONResponse:
    """HTTP 429, shaped like a GraphQL error so that a client reads it where it reads the others."""
    return JSONResponse(
        {
            "errors": [
                {
                    "message": f"too many requests: retry after {retry_after_seconds} seconds",
                    "extensions": {"code": "RATE_LIMITED", "retryable": True, "retryAfterSeconds": retry_after_seconds},
                }
            ]
        },
        status_code=429,
        headers={"Retry-After": str(retry_after_seconds)},
    )


@dataclass(slots=True)
class _Tally:
    count: int = 0
    claimed_token_ids: list[str] = field(default_factory=list)


class RefusalTally:
    """Requests refused for want of a valid token, counted per client address and minute. When
    a minute closes, `flush` appends one audit row per address (outcome `unauthenticated`, the
    count in its detail), so a flood costs one row a minute, not one a request. Rows are
    appended when written (`occurred_at` is then; the minute is in the detail), so the audit
    chain's time order holds.
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], datetime], tracked_max: int
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.tracked_max = tracked_max
        self.pending: dict[tuple[str, datetime], _Tally] = {}

    def count(self, source: str, claimed_token_id: str | None = None) -> None:
        minute = _minute(self.clock())
        key = (source, minute)
        if key not in self.pending and len(self.pending) >= self.tracked_max:
            key = (OTHER_SOURCES, minute)
        tally = self.pending.setdefault(key, _Tally())
        tally.count += 1
        if (
            claimed_token_id is not None
            and claimed_token_id not in tally.claimed_token_ids
            and len(tally.claimed_token_ids) < CLAIMED_TOKEN_IDS_MAX
        ):
            tally.claimed_token_ids.append(claimed_token_id)

    async def flush(self, *, everything: bool = False) -> int:
        """Append the rows of closed minutes (of every minute with `everything`, at shutdown);
        returns how many. Taken out before the write, so concurrent flushes never write one twice;
        put back if the write fails.
        """
        now = self.clock()
        closed = [key for key in self.pending if everything or key[1] < _minute(now)]
        if not closed:
            return 0
        taken = {key: self.pending.pop(key) for key in closed}
        records = [
            audit.AuditRecord(
                actor=audit.Actor(token_id=None),
                action="authenticate",
                outcome="unauthenticated",
                at=now,
                target=source,
                detail={
                    "source": source,
                    "minute": minute.isoformat(),
                    "count": tally.count,
                    "claimedTokenIds": tally.claimed_token_ids,
                },
            )
            for (source, minute), tally in sorted(taken.items())
        ]
        try:
            await audit.append_alone(self.sessions, *records)
        except BaseException:
            for key, tally in taken.items():
                merged = self.pending.setdefault(key, _Tally())
                merged.count += tally.count
                merged.claimed_token_ids = (tally.claimed_token_ids + merged.claimed_token_ids)[:CLAIMED_TOKEN_IDS_MAX]
            raise
        return len(records)

    async def flush_forever(self, every_seconds: float) -> None:
        """The lifespan's background task: a closed minute is written within `every_seconds`."""
        while True:
            await asyncio.sleep(every_seconds)
            try:
                await self.flush()
            except Exception as error:  # the next round retries; the failure must be seen, not kill the service
                log.error("writing the refused requests' audit rows failed", **describe(error))


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)
