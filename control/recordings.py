"""Recording control: a call is recorded (through SignalWire's REST API) only where consent
allows, and its recording is stopped when consent is refused.

Every process hears the same feed events (a stream started, consent decided) and calls
`stream_started` / `consent_decided`, which return at once and leave the work to a task. The
claims in `storage.recordings` make exactly one process act on each: the one whose claim moves
the call's `recording_state`. The task reads consent from the call's row, not from the
notification, so a late or repeated notification does no harm:

- stream started, or consent granted → claim_start → SignalWire start → started;
  on failure start_failed (back to 'none');
- consent refused → claim_stop → SignalWire stop → stopped; on failure stop_failed (back to
  'recording', so a later refusal or an operator may try again). A refusal that lands while
  the start is in flight finds nothing to claim; `started` then reports that consent no longer
  allows the recording, and the starting task stops it itself;
- SignalWire reports a recording in progress (its status callback) → account_for: one that no
  start accounted for (its answer lost to a timeout, or its process died) becomes the call's
  if consent allows and the call has none, and is stopped otherwise.

- secure mode turned on or off (the API, which waits for it) → `follow_secure_mode`: a running
  recording is paused (claim_pause → SignalWire → paused); if the pause fails it is stopped
  instead and an alert raised, for no card number may reach a recording; once secure mode is
  off it is resumed, or started if secure mode kept it from starting.

With no SignalWire REST client (credentials not configured) nothing is claimed, so that a
process with credentials may still act; a warning is logged once and every skipped action is
counted (`outcome="unconfigured"`). No recording SID is ever made up.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Literal

from control.metrics import RECORDING_ACTIONS
from control.periodic import Periodic
from control.signalwire import SignalWireClient, SignalWireError, SignalWireRejected
from media.events import EscalationRaised
from storage import recordings
from storage.db import Pool
from storage.event_writer import write_events

log = logging.getLogger(__name__)

Action = Literal["start", "stop"]
SecureRecording = Literal["none", "paused", "stopped", "not_paused", "resumed", "not_resumed"]
"""What following a call's secure mode did to its recording: nothing to do; paused; stopped
because the pause failed; neither (the worst case: alerted); resumed; left paused because the
resume failed."""

STALE_START_S = 60.0
"""A start claim older than this belongs to a dead process: a start is one SignalWire request
with a 20 s deadline (`SignalWireConfig.total_timeout_s`) and one row update."""
SWEEP_EVERY_S = 30.0
MAX_SECURE_TURNS = 4
"""Pauses and resumes one follow of secure mode makes at most, however often it is toggled."""

GONE_CODES = frozenset({"21220"})
"""SignalWire error codes saying the recording (or its call) is no longer in progress: a stop
that gets one has nothing left to stop."""


class RecordingController:
    """Starts and stops call recordings on the feed's notifications; one per process."""

    def __init__(
        self,
        pool: Pool,
        client: SignalWireClient | None,
        callback_url: str,
        *,
        max_pending: int = 1000,
    ) -> None:
        self._pool = pool
        self._client = client
        self._callback_url = callback_url
        self._max_pending = max_pending
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: Periodic | None = None
        self._closed = False
        self._warned_unconfigured = False

    def stream_started(self, call_id: uuid.UUID) -> None:
        """A media stream of the call started (on any process): record it if consent allows."""
        self._schedule("start", f"call {call_id}", lambda client: self._start(client, call_id))

    def consent_decided(self, call_id: uuid.UUID, verdict: str) -> None:
        """The call's consent verdict became "granted" or "refused" (on any process)."""
        if verdict == "granted":
            self._schedule("start", f"call {call_id}", lambda client: self._start(client, call_id))
        elif verdict == "refused":
            self._schedule("stop", f"call {call_id}", lambda client: self._stop(client, call_id))
        else:
            log.warning("consent verdict %r for call %s ignored: unknown", verdict[:32], call_id)

    def recording_in_progress(self, call_sid: str, recording_sid: str) -> None:
        """SignalWire reports a recording of the call in progress (its status callback, heard by
        this process). One no claim accounts for, whose start's answer was lost to a timeout or
        a crash, becomes the call's if consent allows and the call has none; otherwise it is
        stopped, so that no recording runs which a refusal could not stop."""
        subject = f"recording {recording_sid} of call {call_sid}"
        self._schedule(
            "stop", subject, lambda client: self._account_for(client, call_sid, recording_sid)
        )

    async def sweep(self, stale_after_s: float = STALE_START_S) -> None:
        """Tries again the starts, pauses and resumes whose claiming process died mid-request
        (claimed longer ago than any request takes); the claims make one process of all those
        sweeping act."""
        if self._client is None or self._closed:
            return
        for call_id in await recordings.release_stale_starts(self._pool, stale_after_s):
            log.warning("recording start for call %s was left unfinished: trying again", call_id)
            self.stream_started(call_id)
        for call_id in await recordings.release_stale_pauses(self._pool, stale_after_s):
            log.warning("recording pause of call %s was left unfinished: trying again", call_id)
            await self.follow_secure_mode(call_id)

    async def follow_secure_mode(self, call_id: uuid.UUID) -> SecureRecording:
        """Brings the call's recording in line with its secure mode now: paused while it is on
        (stopped, with an alert, if the pause fails), going again once it is off (resumed, or
        started if secure mode kept it from starting)."""
        done = await self._follow(call_id)
        if done == "none":
            self.stream_started(call_id)  # the claim checks consent and secure mode
        return done

    async def _follow(self, call_id: uuid.UUID) -> SecureRecording:
        """Pauses or resumes the call's recording until it matches the call's secure mode,
        which may be turned on and off meanwhile, here or elsewhere."""
        done: SecureRecording = "none"
        for _ in range(MAX_SECURE_TURNS):
            if (pause := await recordings.claim_pause(self._pool, call_id)) is not None:
                done = await self._pause(call_id, pause)
            elif (resume := await recordings.claim_resume(self._pool, call_id)) is not None:
                done = await self._resume(call_id, *resume)
            else:
                break
            if done in ("not_paused", "not_resumed"):
                break
        return done

    async def _pause(self, call_id: uuid.UUID, claim: recordings.PauseClaim) -> SecureRecording:
        call_sid, recording_sid = claim.call_sid, claim.recording_sid
        try:
            await self._configured().pause_recording(call_sid, recording_sid, claim.behavior)
        except Exception as exc:
            RECORDING_ACTIONS.labels("pause", "failed").inc()
            log.error("recording %s of call %s not paused (%s): stopping it", recording_sid,
                      call_id, exc)  # fmt: skip
        else:
            await recordings.settle(self._pool, call_id, "pausing", "paused")
            RECORDING_ACTIONS.labels("pause", "ok").inc()
            return "paused"
        # No card number may reach a recording: stop it instead.
        await recordings.settle(self._pool, call_id, "pausing", "stopping")
        try:
            await _stop_at_signalwire(self._configured(), call_sid, recording_sid)
        except Exception as exc:
            await recordings.stop_failed(self._pool, call_id)
            RECORDING_ACTIONS.labels("stop", "failed").inc()
            log.critical("recording %s of call %s in secure mode is neither paused nor stopped:"
                         " %s", recording_sid, call_id, exc)  # fmt: skip
            await self._alert(call_id, claim, "critical", "neither paused nor stopped")
            return "not_paused"
        await recordings.stopped(self._pool, call_id)
        RECORDING_ACTIONS.labels("stop", "ok").inc()
        await self._alert(call_id, claim, "high", "stopped because it could not be paused")
        return "stopped"

    async def _resume(
        self, call_id: uuid.UUID, call_sid: str, recording_sid: str
    ) -> SecureRecording:
        try:
            await self._configured().resume_recording(call_sid, recording_sid)
        except Exception as exc:
            # Left paused: the side that records nothing it should not.
            await recordings.settle(self._pool, call_id, "resuming", "paused")
            RECORDING_ACTIONS.labels("resume", "failed").inc()
            log.error("recording %s of call %s not resumed: %s", recording_sid, call_id, exc)
            return "not_resumed"
        await recordings.settle(self._pool, call_id, "resuming", "recording")
        RECORDING_ACTIONS.labels("resume", "ok").inc()
        return "resumed"

    def _configured(self) -> SignalWireClient:
        if self._client is None:
            raise SignalWireError("SignalWire REST credentials are not configured")
        return self._client

    async def _alert(
        self, call_id: uuid.UUID, claim: recordings.PauseClaim, severity: str, what: str
    ) -> None:
        """An escalation on the call, for supervisors' screens and the alert rules: its
        recording in secure mode was not paused."""
        alert = EscalationRaised(
            org_id=claim.org_id,
            call_id=call_id,
            stream_sid="",
            rule_id=None,
            rule_name="Recording not paused in secure mode",
            kind="secure_recording",
            severity=severity,
            track=None,
            start_ms=claim.at_ms,
            end_ms=claim.at_ms,
            evidence=f"Recording {claim.recording_sid} was {what}.",
        )
        async with self._pool.acquire() as conn, conn.transaction():
            await write_events(conn, [alert])

    def start_sweeping(self, every_s: float = SWEEP_EVERY_S) -> None:
        """Runs `sweep` every `every_s` until `aclose`."""
        self._sweeper = Periodic("recording-sweeper", every_s, self.sweep)
        self._sweeper.start()

    async def wait_idle(self) -> None:
        """Returns once no action is in flight (for tests; wrap it in a timeout)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Stops taking notifications and waits up to `timeout_s` for the actions in flight;
        the rest are cancelled. A start cancelled mid-request leaves the call 'starting' (the
        request may have landed) until the recording's status callback reports it or another
        process's sweep releases the claim."""
        self._closed = True
        if self._sweeper is not None:
            await self._sweeper.aclose()
        tasks = set(self._tasks)
        if not tasks:
            return
        try:
            await asyncio.wait(tasks, timeout=timeout_s)
        finally:
            pending = {task for task in tasks if not task.done()}
            for task in pending:
                task.cancel()
            if pending:
                log.warning("recording control: %d actions cancelled at shutdown", len(pending))
                await asyncio.wait(pending, timeout=timeout_s)

    def _schedule(
        self, action: Action, subject: str, work: Callable[[SignalWireClient], Awaitable[bool]]
    ) -> None:
        """Runs `work` (True when it made SignalWire act) in a task, counted as `action`."""
        if self._closed:
            log.info("recording %s for %s not taken: shutting down", action, subject)
            return
        if self._client is None:
            RECORDING_ACTIONS.labels(action, "unconfigured").inc()
            if not self._warned_unconfigured:
                self._warned_unconfigured = True
                log.warning(
                    "SignalWire REST credentials are not configured: calls are not recorded"
                    " (nor recordings stopped) by this process"
                )
            return
        if action == "start" and len(self._tasks) >= self._max_pending:
            # Overflow: a start is dropped (the call goes unrecorded, the side consent allows);
            # a stop never is, since it may be all that honours a refusal.
            RECORDING_ACTIONS.labels("start", "failed").inc()
            log.warning("recording start for %s dropped: too many in flight", subject)
            return
        task = asyncio.create_task(
            self._act(self._client, action, subject, work), name=f"recording-{action}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _act(
        self,
        client: SignalWireClient,
        action: Action,
        subject: str,
        work: Callable[[SignalWireClient], Awaitable[bool]],
    ) -> None:
        """One action, counted once: ok when SignalWire did it, failed when it raised."""
        try:
            acted = await work(client)
        except Exception as exc:
            RECORDING_ACTIONS.labels(action, "failed").inc()
            if isinstance(exc, SignalWireError):
                log.error("recording %s for %s failed: %s", action, subject, exc)
            else:
                log.exception("recording %s for %s failed", action, subject)
            return
        if acted:
            RECORDING_ACTIONS.labels(action, "ok").inc()

    async def _start(self, client: SignalWireClient, call_id: uuid.UUID) -> bool:
        """True when this process started the recording; False when it was not its to start."""
        call_sid = await recordings.claim_start(self._pool, call_id)
        if call_sid is None:
            return False  # consent does not allow it, or it is claimed or over already
        try:
            recording_sid = await client.start_recording(call_sid, self._callback_url)
        except Exception:
            # Not started (or, after a timeout, perhaps started without our knowing its SID:
            # see SignalWireClient.start_recording); a later trigger may try again.
            await recordings.start_failed(self._pool, call_id)
            raise
        try:
            allowed = await recordings.started(self._pool, call_id, recording_sid)
        except Exception:
            # The recording runs but its SID is not stored, so no refusal could stop it: stop
            # it now. The call stays 'starting', so nothing starts another.
            log.error(
                "recording %s of call %s started but could not be stored: stopping it",
                recording_sid,
                call_id,
            )
            await client.stop_recording(call_sid, recording_sid)
            raise
        if not allowed:
            log.info("consent for call %s was refused while its recording started", call_id)
            RECORDING_ACTIONS.labels("start", "ok").inc()
            await self._act(client, "stop", f"call {call_id}", lambda c: self._stop(c, call_id))
            return False  # counted above, before the stop
        # Secure mode may have begun while the start was in flight: pause what just started.
        await self._follow(call_id)
        return True

    async def _stop(self, client: SignalWireClient, call_id: uuid.UUID) -> bool:
        """True when this process stopped the recording; False when it was not its to stop."""
        claim = await recordings.claim_stop(self._pool, call_id)
        if claim is None:
            return False  # nothing recording, or another process is stopping it
        call_sid, recording_sid = claim
        try:
            await _stop_at_signalwire(client, call_sid, recording_sid)
        except Exception:
            await recordings.stop_failed(self._pool, call_id)
            raise
        await recordings.stopped(self._pool, call_id)
        return True

    async def _account_for(
        self, client: SignalWireClient, call_sid: str, recording_sid: str
    ) -> bool:
        """True when this process stopped the reported recording."""
        fate = await recordings.account_for(self._pool, call_sid, recording_sid)
        if fate == "adopted":
            log.warning(
                "recording %s of call %s was started unanswered: now the call's",
                recording_sid,
                call_sid,
            )
        if fate != "stop":
            return False
        log.warning(
            "recording %s of call %s is not the call's to keep: stopping it",
            recording_sid,
            call_sid,
        )
        await _stop_at_signalwire(client, call_sid, recording_sid)
        return True


async def _stop_at_signalwire(client: SignalWireClient, call_sid: str, recording_sid: str) -> None:
    """Stops a recording; one that is already over (the call ended, or a retried stop found
    the first had landed) counts as stopped."""
    try:
        await client.stop_recording(call_sid, recording_sid)
    except SignalWireRejected as exc:
        if exc.status != 404 and exc.code not in GONE_CODES:
            raise
        log.info("recording %s of call %s was already over: %s", recording_sid, call_sid, exc)
