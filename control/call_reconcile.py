"""Asking SignalWire how a call left open by a lost process really stands (issue 12, crashes).

A call whose streams all died with their process, and whose final status callback has not come,
is looked up with the REST Call resource: an end there (completed, busy, …) is applied as a
status callback would be (storage.calls.apply_call_status: the real end time and duration, and
the supervisors' feed); a call still live there is left as it is and asked again at a later
sweep, its `unknown` timeout counting from this answer; a 404 or any failure leaves the call to
the timeout rule (storage.processes.close_abandoned_calls).

Bounded: at most `batch` calls per sweep, asked concurrently, all within one deadline, so a slow
or absent SignalWire delays the next lease renewal by at most the budget (and the client's
circuit breaker turns a dead SignalWire into immediate refusals).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from control.deadlines import outcomes_by
from control.metrics import CALL_RECONCILES
from control.signalwire import (
    CallState,
    SignalWireClient,
    SignalWireError,
    SignalWireRejected,
    SignalWireUnavailable,
)
from storage import calls, processes
from storage.db import Pool

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReconcileConfig:
    batch: int = 5
    """Calls asked per sweep."""
    every_s: float = 60.0
    """How long before a call SignalWire said is live (or failed to say) is asked again."""
    budget_s: float = 2.0
    """The most one sweep spends asking; calls not answered by then count as out_of_time."""


async def reconcile_lost_calls(
    pool: Pool, client: SignalWireClient, config: ReconcileConfig
) -> dict[str, int]:
    """Claims and asks SignalWire about up to `config.batch` calls; returns outcome counts
    (CALL_RECONCILES' labels). Raises only for the claim (Postgres away, or out of time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + config.budget_s
    outcomes: dict[str, int] = {}
    async with asyncio.timeout_at(deadline):  # the claim, too, counts against the budget
        call_sids = await processes.claim_calls_to_ask(
            pool, limit=config.batch, every_s=config.every_s
        )
    if not call_sids:
        return outcomes
    work = [(sid, _reconcile_one(pool, client, sid)) for sid in call_sids]
    for outcome in await outcomes_by(deadline, work, "reconciling call"):
        CALL_RECONCILES.labels(outcome).inc()
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


async def _reconcile_one(pool: Pool, client: SignalWireClient, call_sid: str) -> str:
    try:
        state = await client.get_call(call_sid)
    except SignalWireRejected as error:
        return "not_found" if error.status == 404 else "rejected"
    except SignalWireUnavailable:
        return "unavailable"
    except SignalWireError:
        return "malformed"
    return await _apply(pool, call_sid, state)


async def _apply(pool: Pool, call_sid: str, state: CallState) -> str:
    if state.status in calls.TERMINAL_STATUSES:
        async with pool.acquire() as conn:
            applied = await calls.apply_call_status(
                conn,
                call_sid=call_sid,
                status=state.status,
                sequence=None,
                at=state.end_time or datetime.now(UTC),
                duration_seconds=state.duration_seconds,
            )
        if applied == "applied":
            log.info("call %s ended at SignalWire as %s; applied", call_sid, state.status)
        return "applied" if applied == "applied" else "stale"
    if state.status in calls.PROGRESS_STATUSES:
        # Live: only its stream was lost. Left as it is; the timeout counts from now.
        return "live" if await processes.mark_live(pool, call_sid) else "stale"
    log.warning("call %s: SignalWire reports an unknown status %r", call_sid, state.status)
    return "malformed"
