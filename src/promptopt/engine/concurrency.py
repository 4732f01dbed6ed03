"""Bounded gather: run awaitables concurrently, results in input order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def gather_ordered(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Run all at once (the LLM client's semaphore bounds real calls); cancel the rest on failure."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
