"""What `/metrics` reads from the database when it is scraped: pool balances and the audit
sealer's lag. Read-only, a few bounded queries in one short transaction.

A deployment has thousands of prepayment pools. Each payer's total (and how many pools it
has) is always reported; pool by pool, only the `pools_max` lowest balances, since a pool
running dry is what an operator watches (what it cannot cover becomes a receivable).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.db import models
from api.services import audit_chain


@dataclass(frozen=True, slots=True)
class PoolBalance:
    payer: str
    institution: str
    balance_fen: int


@dataclass(frozen=True, slots=True)
class PayerBalance:
    """All of one payer's pools together."""

    payer: str
    pools: int
    balance_fen: int


@dataclass(frozen=True, slots=True)
class SealerLag:
    unsealed_entries: int
    oldest_unsealed_age_seconds: float
    """0 when every entry is sealed."""


@dataclass(frozen=True, slots=True)
class Readings:
    pools: tuple[PoolBalance, ...]
    """The `pools_max` lowest balances, lowest first."""
    payers: tuple[PayerBalance, ...]
    sealer: SealerLag


async def read(sessions: async_sessionmaker[AsyncSession], now: datetime, pools_max: int) -> Readings:
    async with sessions() as session:
        return Readings(
            await lowest_pools(session, pools_max),
            await payer_balances(session),
            await sealer_lag(session, now),
        )


async def lowest_pools(session: AsyncSession, limit: int) -> tuple[PoolBalance, ...]:
    if limit <= 0:
        return ()
    pools = models.PrepaymentPool.__table__
    rows = await session.execute(
        select(pools.c.payer_code, pools.c.institution_code, pools.c.balance_fen)
        .order_by(pools.c.balance_fen, pools.c.payer_code, pools.c.institution_code)
        .limit(limit)
    )
    return tuple(PoolBalance(payer, institution, int(balance)) for payer, institution, balance in rows)


async def payer_balances(session: AsyncSession) -> tuple[PayerBalance, ...]:
    pools = models.PrepaymentPool.__table__
    rows = await session.execute(
        select(pools.c.payer_code, func.count(), func.coalesce(func.sum(pools.c.balance_fen), 0))
        .group_by(pools.c.payer_code)
        .order_by(pools.c.payer_code)
    )
    return tuple(PayerBalance(payer, int(count), int(total)) for payer, count, total in rows)


async def sealer_lag(session: AsyncSession, now: datetime) -> SealerLag:
    """Entries not yet in the hash chain, and how long the oldest has waited (the sealer's own
    account of its work: `audit_chain.waiting`)."""
    count, oldest = await audit_chain.waiting(session)
    age_seconds = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return SealerLag(count, age_seconds)
