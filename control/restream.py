"""Restarting the media streams of calls a lost process left unheard (issue 18, node loss),
and of calls a stopping process could not carry to their end (closed `server_shutdown`: its
drain ran out, or it had none), which are found and restarted the same way.

When a process dies with live calls, whichever process sweeps first closes its streams as
`process_lost` (control.process_lease) and wakes this loop; every process also runs it every
`every_s`, so the work is shared by all survivors. Each round claims up to `batch` unheard calls
(storage.restreams: row claims, so each call is asked for by one process at a time) and, for
each, asks SignalWire to start a new stream of the call (`POST …/Calls/{CallSid}/Streams.json`)
to the call's stream URL on the public media URL, the one its `<Stream>` verb got, with a fresh
stream token and `restarted_after=process_lost` among its parameters. SignalWire connects to
whichever node the balancer picks; that node admits the stream on its token and resumes the
call on its clock: the gap counted as lost audio, consent and escalation state as they were
(media.server, server.call_policy). The rules for attempts are control.restreaming's.

Bounded: a round asks concurrently, all within one budget (the client's circuit breaker turns a
dead SignalWire into immediate refusals), and runs in its own task, never in the lease's tick,
so the renewal never waits on SignalWire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass

from control import restreaming
from control.deadlines import outcomes_by
from control.laml import StreamSpec, call_stream_url
from control.metrics import RESTREAMS
from control.restreaming import RestreamPolicy
from control.signalwire import SignalWireClient, SignalWireError
from control.webhooks import StreamTokenIssuer
from media.events import RESTARTED_AFTER
from storage import restreams
from storage.db import UNAVAILABLE_ERRORS, Pool
from storage.restreams import Claimed

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StreamTarget:
    """Where restarted streams go, as a call's `<Stream>` verb says (control.webhooks)."""

    media_url: str
    """The public media URL; a call's stream connects to `<media_url>/<call id>`."""
    status_callback: str
    """The stream status callback (`…/laml/stream-status`)."""
    allow_insecure: bool = False
    """ws:// media URLs, for local development and tests only."""


class Restreamer:
    def __init__(
        self,
        pool: Pool,
        client: SignalWireClient,
        target: StreamTarget,
        issue_token: StreamTokenIssuer,
        policy: RestreamPolicy,
        *,
        every_s: float = 5.0,
    ) -> None:
        """Raises ValueError when the media URL is not one SignalWire could be given."""
        self._pool = pool
        self._client = client
        self._target = target
        self._issue_token = issue_token
        self._policy = policy
        self._every_s = every_s
        self._woken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Checked once here (wss, no query string), rather than failing every request later.
        self._spec(uuid.UUID(int=0), "check", "check", "check")

    def start(self) -> None:
        if self._policy.max_attempts > 0:
            self._task = asyncio.create_task(self._run(), name="restreamer")

    def wake(self) -> None:
        """Streams were just closed as lost: look for calls to restart now, not at the next
        period. Never blocks."""
        self._woken.set()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._every_s):  # a period, or an early wake
                    await self._woken.wait()
            self._woken.clear()
            try:
                # A full round may have left more behind (a node lost with many calls): the
                # next goes at once, each bounded by its own budget.
                while await self.round() >= self._policy.batch:
                    pass
            except UNAVAILABLE_ERRORS as error:
                log.warning("could not claim calls to restream: %r", error)
            except Exception:
                log.exception("restreaming failed; the next period tries again")

    async def round(self) -> int:
        """One round: claims and asks for up to `batch` calls; returns how many it claimed.
        Raises only for the claim (Postgres away, or out of time)."""
        policy = self._policy
        loop = asyncio.get_running_loop()
        deadline = loop.time() + policy.budget_s
        async with asyncio.timeout_at(deadline):  # the claim, too, counts against the budget
            claimed, given_up = await restreams.claim_unheard_calls(
                self._pool,
                limit=policy.batch,
                hold_s=policy.landing_s,
                attempt_of=lambda call: restreaming.attempt_number(call, policy),
            )
        for call in given_up:
            # Its last stream request was accepted but no stream came of it.
            log.warning("call %s: no stream after %d attempts; giving up", call.call_sid,
                        call.attempts)  # fmt: skip
            RESTREAMS.labels("gave_up").inc()
        if not claimed:
            return 0
        work = [(claim.call.call_sid, self._restream(claim)) for claim in claimed]
        # Out of time: held, tried again after landing_s.
        for outcome in await outcomes_by(deadline, work, "restreaming call"):
            RESTREAMS.labels(outcome).inc()
        return len(claimed)

    async def _restream(self, claim: Claimed) -> restreaming.Outcome:
        call, policy = claim.call, self._policy
        token = self._issue_token(call.org_id, call.id, call.call_sid)
        spec = self._spec(call.id, restreaming.stream_name(call, claim.attempt), token, call.reason)
        error: SignalWireError | None = None
        try:
            created = await self._client.start_stream(
                call.call_sid,
                url=spec.url,
                name=spec.name,
                status_callback=spec.status_callback,
                parameters=spec.parameters,
                track=spec.track,
            )
        except SignalWireError as exc:
            error = exc
        outcome = restreaming.outcome_of(error)
        retry = restreaming.retry_in_s(outcome, claim.attempt, policy)
        if outcome == "started":
            log.info("call %s: stream %s started after its process was lost (attempt %d)",
                     call.call_sid, created.sid, claim.attempt)  # fmt: skip
        else:
            log.warning("call %s: restarting its stream: %s (attempt %d): %s", call.call_sid,
                        outcome, claim.attempt, error)  # fmt: skip
        if restreaming.gave_up(outcome, retry):
            RESTREAMS.labels("gave_up").inc()
        if retry != policy.landing_s:  # the claim already holds the call that long
            await restreams.settle(self._pool, call.id, call.lost_at, retry)
        return outcome

    def _spec(self, call_id: uuid.UUID, name: str, token: str, reason: str) -> StreamSpec:
        target = self._target
        return StreamSpec(
            url=call_stream_url(target.media_url, call_id),
            name=name,
            status_callback=target.status_callback,
            parameters={"token": token, RESTARTED_AFTER: reason},
            allow_insecure=target.allow_insecure,
        )
