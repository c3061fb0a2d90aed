"""The campaign dialler: places the calls of running campaigns through SignalWire.

Every process runs one. Each tick it claims the due targets of running campaigns (storage:
the claims and caps make one process call each target, within the campaign's and the org's
concurrency caps), then for each: skips a number on the do-not-call list, defers one outside
its calling hours (control.dialling), waits for its slot in the project's calls-per-second
budget (shared through Postgres), and asks SignalWire to call, with the attempt's id in the
call's webhook URLs. So the call's voice webhook and final status callback name the attempt,
whichever process hears them, even if the one that placed the call has died:

- the voice webhook links the call, and plays the campaign's flow (control.webhooks);
- the final status (or SignalWire refusing the call) ends the attempt: tried again after a
  wait that grows with each attempt (busy, no-answer, failed, an answering machine hung up
  on), moved into the target's calling hours, or done;
- an attempt still `dialing` after `stale_after_s` (longer than any call rings, with no
  webhook of it) was never placed: its process died first. It is released, not counted;
- a call going longer than `unfinished_after_s` with no final status heard (its callback
  lost) is looked up at SignalWire, and its attempt ended if the call has.

Without SignalWire credentials nothing is claimed (and a warning is logged once).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from control import dialling
from control.metrics import CAMPAIGN_CALLS
from control.periodic import Periodic
from control.signalwire import (
    SignalWireClient,
    SignalWireError,
    SignalWireRejected,
    SignalWireUnavailable,
)
from storage import calls, campaigns, targets
from storage.db import Pool

log = logging.getLogger(__name__)

CAMPAIGN_ATTEMPT = "campaign_attempt"
"""The query parameter naming a campaign's attempt in its call's webhook URLs."""
SWEEP_EVERY_TICKS = 60
"""How often (in ticks) `sweep` runs: calls whose end was never heard, finished campaigns."""
PACING_KEY = "signalwire"
"""One calls-per-second budget for the SignalWire project, whichever campaign calls."""


@dataclass(frozen=True, slots=True)
class DiallerConfig:
    public_url: str
    """Where SignalWire sends the calls' webhooks."""
    calls_per_second: float = 1.0
    """The project's outbound rate (SignalWire queues calls beyond it)."""
    every_s: float = 1.0
    batch: int = 20
    """Targets one campaign's claim takes at most per tick."""
    unfinished_after_s: float = 3600.0
    """A call going this long with no final status heard is asked about at SignalWire."""
    stale_after_s: float = 180.0
    """An attempt still `dialing` this long (no webhook of it) was never placed: longer than a
    call rings (SignalWire's create Timeout, 60 s) plus the time to ask."""


class Dialler:
    def __init__(
        self, pool: Pool, client: SignalWireClient | None, config: DiallerConfig,
        process_id: uuid.UUID,
    ) -> None:  # fmt: skip
        self._pool = pool
        self._client = client
        self._config = config
        self._process_id = process_id
        self._calls: set[asyncio.Task[None]] = set()
        self._periodic = Periodic("dialler", config.every_s, self.tick)
        self._warned = False
        self._ticks = 0

    def start(self) -> None:
        self._periodic.start()

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Stops claiming; calls being placed get `timeout_s` to finish asking SignalWire (one
        cut short stays `dialing` and is released by whichever process sweeps after it)."""
        await self._periodic.aclose()
        if self._calls:
            _done, pending = await asyncio.wait(set(self._calls), timeout=timeout_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    async def tick(self) -> int:
        """One round: releases attempts left by dead processes, claims due targets and starts
        placing their calls (without waiting for them), completes finished campaigns. Returns
        how many targets were claimed."""
        if self._client is None:
            if not self._warned:
                self._warned = True
                log.warning("SignalWire REST credentials are not configured: campaigns wait")
            return 0
        async with self._pool.acquire() as conn:
            if released := await campaigns.release_stale(conn, self._config.stale_after_s):
                log.warning("dialler: %d attempts left by a lost process released", released)
            due_now = await campaigns.due(conn)
        claimed = 0
        for campaign in due_now:
            async with self._pool.acquire() as conn, conn.transaction():
                room = await campaigns.lock_room(conn, campaign.id)
                if room is None:
                    continue
                free = dialling.free_slots(
                    active_in_campaign=room.active_in_campaign, campaign_cap=room.campaign_cap,
                    active_in_org=room.active_in_org, org_cap=room.org_cap,
                )  # fmt: skip
                due = await campaigns.claim(
                    conn, campaign.id, self._process_id, min(free, self._config.batch)
                )
            claimed += len(due)
            for target in due:
                task = asyncio.create_task(self._place(campaign, target), name="dialler-call")
                self._calls.add(task)
                task.add_done_callback(self._calls.discard)
        self._ticks += 1
        if self._ticks % SWEEP_EVERY_TICKS == 0:
            await self.sweep()
        return claimed

    async def sweep(self) -> None:
        """What the webhooks did not settle: calls whose final status was never heard are asked
        about at SignalWire, and ended if they have; and campaigns with nothing left complete
        (each attempt's end completes its campaign: this catches a campaign started with no
        targets, or a process that died between the two)."""
        assert self._client is not None
        async with self._pool.acquire() as conn:
            unfinished = await campaigns.unfinished_calls(
                conn, self._config.unfinished_after_s, self._config.batch
            )
        for attempt_id, call_sid, status in unfinished:
            if status not in calls.TERMINAL_STATUSES:
                try:
                    status = (await self._client.get_call(call_sid)).status
                except SignalWireError as exc:
                    log.warning("dialler: call %s not looked up: %s", call_sid, exc)
                    continue
            if status in calls.TERMINAL_STATUSES:
                log.warning("dialler: call %s ended (%s) unheard: ending its attempt",
                            call_sid, status)  # fmt: skip
                await self._call_ended(attempt_id, status)
        async with self._pool.acquire() as conn:
            await campaigns.complete_finished(conn)

    async def wait_idle(self) -> None:
        """Returns once no call is being placed (for tests; wrap it in a timeout)."""
        while self._calls:
            await asyncio.wait(set(self._calls))

    async def _place(self, campaign: campaigns.Running, target: campaigns.Claimed) -> None:
        try:
            await self._try_place(campaign, target)
        except Exception:
            # Left `dialing`: if SignalWire has the call its webhooks will say so, and if not
            # the attempt is released once stale.
            CAMPAIGN_CALLS.labels("error").inc()
            log.exception("dialler: placing attempt %s failed", target.attempt_id)

    async def _try_place(self, campaign: campaigns.Running, target: campaigns.Claimed) -> None:
        assert self._client is not None
        window = _window(campaign)
        async with self._pool.acquire() as conn:
            barred = await targets.on_do_not_call(conn, campaign.org_id, [target.number])
        decision = dialling.dial_decision(
            number=target.number, do_not_call=frozenset(barred), window=window,
            tz=target.time_zone, now=datetime.now(UTC),
        )  # fmt: skip
        async with self._pool.acquire() as conn:
            if decision.action == "skip":
                if await campaigns.skip(conn, target.attempt_id, decision.reason):
                    await campaigns.complete_finished(conn, campaign.id)
                CAMPAIGN_CALLS.labels("do_not_call").inc()
                return
            if decision.action == "wait":
                assert decision.at is not None
                await campaigns.defer(conn, target.attempt_id, decision.at)
                CAMPAIGN_CALLS.labels("outside_window").inc()
                return
            slot = await campaigns.take_slot(conn, PACING_KEY, 1.0 / self._config.calls_per_second)
        wait = (slot - datetime.now(UTC)).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)  # the slot in the shared budget: a time, not an event
        base = self._config.public_url
        query = f"?{CAMPAIGN_ATTEMPT}={target.attempt_id}"
        try:
            created = await self._client.create_call(
                to=target.number, from_=campaign.from_number, url=f"{base}/laml/voice{query}",
                status_callback=f"{base}/laml/status{query}",
                # To leave a message, the flow must start after the greeting's beep.
                machine_detection="DetectMessageEnd" if campaign.on_machine == "message"
                else "Enable",
            )  # fmt: skip
        except SignalWireRejected as exc:
            CAMPAIGN_CALLS.labels("rejected").inc()
            log.warning("dialler: SignalWire refused to call %s: %s", target.number, exc)
            await self._end(
                target.attempt_id, target.time_zone, _window(campaign), _policy(campaign),
                "failed", target.attempts,
            )  # fmt: skip
            return
        except SignalWireUnavailable:
            # Perhaps placed (a timeout after sending): its webhooks will tell; if not, the
            # attempt is released once stale and tried again.
            CAMPAIGN_CALLS.labels("unavailable").inc()
            raise
        async with self._pool.acquire() as conn, conn.transaction():
            ref = await calls.open_call(
                conn, org_id=campaign.org_id, call_sid=created.sid, account_sid=None,
                direction="outbound-api", from_number=campaign.from_number,
                to_number=target.number, status=created.status or "queued",
            )  # fmt: skip
            await campaigns.placed(conn, target.attempt_id, ref.id)
        CAMPAIGN_CALLS.labels("placed").inc()

    def call_ended(self, attempt_id: uuid.UUID, status: str) -> None:
        """A campaign call's final status came (its status callback, on any process)."""
        task = asyncio.create_task(self._call_ended(attempt_id, status), name="dialler-ended")
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _call_ended(self, attempt_id: uuid.UUID, status: str) -> None:
        try:
            async with self._pool.acquire() as conn:
                attempt = await campaigns.attempt_of(conn, attempt_id)
            if attempt is None or attempt["state"] not in ("dialing", "in_call"):
                return  # ended already (a repeated callback)
            machine = (attempt["answered_by"] or "").startswith("machine")
            outcome = "machine" if machine and attempt["on_machine"] == "hangup" else status
            window = dialling.CallingWindow(
                start=attempt["window_start"], end=attempt["window_end"],
                days=frozenset(attempt["window_days"]),
            )  # fmt: skip
            policy = _retry_policy(attempt["max_attempts"], attempt["retry_s"])
            await self._end(attempt_id, attempt["time_zone"], window, policy, outcome,
                            attempt["attempts"])  # fmt: skip
        except Exception:
            log.exception("dialler: the end of attempt %s was not stored", attempt_id)

    async def _end(
        self, attempt_id: uuid.UUID, time_zone: str, window: dialling.CallingWindow,
        policy: dialling.RetryPolicy, outcome: str, made: int,
    ) -> None:  # fmt: skip
        """Ends the attempt: another later (in the target's calling hours), or done."""
        retry_at = dialling.next_attempt(policy, outcome, made, datetime.now(UTC))
        if retry_at is not None:
            retry_at = dialling.next_opening(window, time_zone, retry_at)
        async with self._pool.acquire() as conn:
            campaign_id = await campaigns.finished(conn, attempt_id, outcome, retry_at)
            if campaign_id is not None and retry_at is None:
                await campaigns.complete_finished(conn, campaign_id)
        CAMPAIGN_CALLS.labels("retry" if retry_at else "done").inc()


def _policy(campaign: campaigns.Running) -> dialling.RetryPolicy:
    return _retry_policy(campaign.max_attempts, campaign.retry_s)


def _retry_policy(max_attempts: int, retry_s: Mapping[str, float]) -> dialling.RetryPolicy:
    """The campaign's retries; a machine hung up on waits as a call nobody answered."""
    return dialling.RetryPolicy(
        max_attempts=max_attempts,
        backoff_s={**retry_s, "machine": retry_s.get("no-answer", 900.0)},
    )


def _window(campaign: campaigns.Running) -> dialling.CallingWindow:
    return dialling.CallingWindow(
        start=campaign.window_start, end=campaign.window_end, days=campaign.window_days
    )
