"""Answers handed from the inference thread to the event loop: every request a graph run finished, in one
wake-up per loop (``call_soon_threadsafe`` writes to the loop's self-pipe: one write per request was one
system call and one loop iteration each)."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class Waiting(Protocol):
    future: asyncio.Future[list[Any]]
    loop: asyncio.AbstractEventLoop


Done = tuple[Waiting, "list[Any] | None", "BaseException | None"]  # a request, its values or its error


def hand_over(ready: list[Done]) -> None:
    """Resolve the finished requests' futures on their loops, one wake-up per loop; ``ready`` is emptied."""
    if not ready:
        return
    by_loop: dict[asyncio.AbstractEventLoop, list[Done]] = {}
    for item in ready:
        by_loop.setdefault(item[0].loop, []).append(item)
    ready.clear()
    for loop, items in by_loop.items():
        loop.call_soon_threadsafe(_resolve_all, items)


def _resolve_all(items: list[Done]) -> None:
    for job, values, error in items:  # on the event loop
        resolve(job.future, values, error)


def resolve(future: asyncio.Future[list[Any]], values: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(values)
