"""Bounded gather: run awaitables concurrently, results in input order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TypeVar

from promptopt.errors import BudgetExceeded

T = TypeVar("T")


async def gather_ordered(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Run all at once (the LLM client's semaphore bounds real calls); results in input order.

    On a budget stop, calls already started were within budget: let them finish so their
    answers reach the cache instead of being paid for and thrown away. On any other failure,
    cancel the siblings at once.
    """
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BudgetExceeded:
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
