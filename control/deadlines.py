"""Several pieces of work run at once within one budget (restreaming lost calls, asking
SignalWire about them): whatever has not finished when the budget runs out is stopped and
counted, never left running into the next round."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Sequence
from typing import Any, Literal, TypeAlias, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
Unfinished: TypeAlias = Literal["out_of_time", "error"]


async def outcomes_by(
    deadline: float, work: Sequence[tuple[str, Coroutine[Any, Any, T]]], doing: str
) -> list[T | Unfinished]:
    """Runs every `(about, coroutine)` of `work` at once until `deadline` (the event loop's
    clock); what is still running then, or when the caller is cancelled, is cancelled. Each
    one's outcome, in order: its result, "out_of_time" when it was cancelled, or "error" when it
    raised (logged as `doing` `about` failed)."""
    tasks = [asyncio.create_task(coroutine) for _, coroutine in work]
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await asyncio.wait(tasks)
    finally:
        for task in tasks:
            task.cancel()  # the budget ran out (or we were cancelled): stop the rest
        await asyncio.gather(*tasks, return_exceptions=True)
    outcomes: list[T | Unfinished] = []
    for (about, _), task in zip(work, tasks, strict=True):
        if task.cancelled():
            outcomes.append("out_of_time")
        elif (error := task.exception()) is not None:
            log.warning("%s %s failed: %r", doing, about, error)
            outcomes.append("error")
        else:
            outcomes.append(task.result())
    return outcomes
