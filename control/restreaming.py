"""The rules of restarting a lost call's media stream, without I/O. Pure.

When a process dies mid-call, SignalWire keeps the call up but its stream is gone: nobody hears
it. A surviving process asks SignalWire to start a new stream of each such call (Streams REST)
with a fresh token, to the same public media URL a `<Stream>` verb gets, so the call is heard
again on whichever node takes the connection. The loop that does it (control.restream) asks
this module every question it has: which attempt this is, what SignalWire's answer means, and
when to try again. Storage finds the calls and holds the claims (storage.restreams).

Attempts count per loss. A request SignalWire accepted holds the call for `landing_s`, the time
its stream has to arrive: once it does the call is heard and no longer claimed; if it never
does, the call is tried again. A refusal or an unreachable SignalWire is tried again after
`retry_s`, doubling. After `max_attempts` the loss is given up: the call is left to the rules
that already cover a call nobody hears (SignalWire asked about it, then `unknown` after a
timeout). A call SignalWire says is over or does not know is never tried again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from control.signalwire import SignalWireError, SignalWireRejected, SignalWireUnavailable
from storage.restreams import UnheardCall

Outcome: TypeAlias = Literal[
    "started", "ended", "rejected", "unavailable", "malformed", "error", "out_of_time"
]
"""What one attempt came to (RESTREAMS' labels, with `gave_up`)."""

NOT_IN_PROGRESS = "21220"
"""SignalWire's code for a stream asked of a call in the wrong state (docs/protocols.md e)."""
MAX_RETRY_S = 60.0


@dataclass(frozen=True, slots=True)
class RestreamPolicy:
    batch: int = 10
    """Calls claimed per round (a round runs again at once while it finds a full batch)."""
    max_attempts: int = 3
    """Requests per loss before it is given up; 0: calls are never restarted."""
    landing_s: float = 10.0
    """How long a claimed call is held: for the request, then for the stream it started to
    arrive (a few hundred milliseconds); one that has not by then is tried again."""
    retry_s: float = 2.0
    """The wait after a failed attempt, doubled for each attempt made."""
    budget_s: float = 4.0
    """The most one round spends on SignalWire; attempts unanswered by then are out_of_time."""

    def __post_init__(self) -> None:
        if self.batch < 1 or self.max_attempts < 0:
            raise ValueError("batch must be at least 1, max_attempts not negative")
        if min(self.landing_s, self.retry_s, self.budget_s) <= 0:
            raise ValueError("landing_s, retry_s and budget_s must be positive")


def attempt_number(call: UnheardCall, policy: RestreamPolicy) -> int | None:
    """This attempt's number for the call's loss, or None when its attempts ran out."""
    return call.attempts + 1 if call.attempts < policy.max_attempts else None


def outcome_of(error: SignalWireError | None) -> Outcome:
    """What SignalWire's answer to a Streams request means (None: it started the stream)."""
    if error is None:
        return "started"
    if isinstance(error, SignalWireRejected):
        # Unknown there, or not in progress: the call is over, whatever our row says (its
        # final callback is on its way or lost; the reconcile asks SignalWire for its end).
        gone = error.status == 404 or error.code == NOT_IN_PROGRESS
        return "ended" if gone else "rejected"
    if isinstance(error, SignalWireUnavailable):
        return "unavailable"
    return "malformed"  # a 2xx that was not a stream: it may have started one all the same


def retry_in_s(outcome: Outcome, attempt: int, policy: RestreamPolicy) -> float | None:
    """After attempt number `attempt` came to `outcome`: how long until the call may be
    claimed again for the same loss, or None never (given up, or over)."""
    if outcome == "ended":
        return None
    if outcome in ("started", "out_of_time", "malformed"):
        # A stream may be on its way: wait as long as a stream takes to land. If none does,
        # the next claim counts this attempt (and may give the loss up).
        return policy.landing_s
    if attempt >= policy.max_attempts:
        return None
    return min(policy.retry_s * 2.0 ** (attempt - 1), MAX_RETRY_S)


def gave_up(outcome: Outcome, retry: float | None) -> bool:
    """Whether the attempt ended the call's tries with the call still live at SignalWire."""
    return retry is None and outcome != "ended"


def stream_name(call: UnheardCall, attempt: int) -> str:
    """Unique among the call's streams (SignalWire refuses a duplicate name): the loss, by
    its time, and the attempt."""
    return f"voxsouth-{call.id}-restart-{call.lost_at.strftime('%H%M%S%f')}-{attempt}"
