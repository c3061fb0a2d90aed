"""The rules of an outbound campaign dialler, without I/O. Pure.

The loop that claims targets and places calls asks this module every question it has: may this
number be called now, and if not, when; when to try a target again; and
how many more calls may start. (The calls-per-second budget is shared by every process, so it
is kept in Postgres: storage.campaigns.take_slot.) Nothing here reads a clock or touches the
network: instants are passed in as aware datetimes (and returned in UTC), so each rule is tested
by handing it the time.

Calling windows are in the target's local time, as the law puts it: the TCPA's rule (47 CFR
64.1200(c)(1)) forbids telemarketing calls before 8 a.m. or after 9 p.m. "local time at the called
party's location", which is the default window here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "CallingWindow",
    "Decision",
    "RetryPolicy",
    "dial_decision",
    "free_slots",
    "is_open",
    "next_attempt",
    "next_opening",
]


# --- Calling windows ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallingWindow:
    """When a target may be called, on the wall clock where the target is.

    Open on the weekdays in `days` (Monday 0) from `start` (inclusive) to `end` (exclusive). A
    window does not cross midnight: one that did would need to say which day its night belongs to,
    and calling hours never need it.
    """

    start: time = time(8, 0)
    end: time = time(21, 0)
    days: frozenset[int] = frozenset(range(7))

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("a calling window's start and end are naive local times")
        if not self.start < self.end:
            raise ValueError(
                f"a calling window must start before it ends (start {self.start}, end "
                f"{self.end}); a window across midnight is not supported"
            )
        if not self.days:
            raise ValueError("a calling window needs at least one day")
        if not self.days <= frozenset(range(7)):
            raise ValueError(f"days are weekday numbers 0 (Monday) to 6, got {sorted(self.days)}")


# Offsets are found by asking the zone at instants this far apart. No time zone has ever changed
# its offset twice within an hour, so a change between two probes is one change, found by halving.
_PROBE: Final = timedelta(hours=1)
_RESOLUTION: Final = timedelta(microseconds=1)
# Each step of next_opening crosses one offset change, and it looks a week ahead from each: two
# changes are the most a real zone has in that time. A bound, not a tuning knob.
_MAX_STEPS: Final = 16


def next_opening(window: CallingWindow, tz: str, now: datetime) -> datetime:
    """The earliest instant at or after `now` at which `window` is open for a target in `tz`
    (an IANA name), in UTC. `now` itself when open; ValueError for an unknown zone.

    The answer is exact across daylight saving, because it is found one stretch of constant UTC
    offset at a time (within a stretch the wall clock runs with UTC, so the first open instant is
    arithmetic), moving to the next stretch when an offset change comes first. Hence:
    - an opening in a spring-forward gap (02:30 on a day that jumps 02:00 → 03:00) is the instant
      of the jump, 03:00 local, the first instant whose wall clock reads 02:30 or later;
    - an opening in a repeated hour is its first occurrence; after it, while the clock repeats
      times before `start`, the window is closed again, as `is_open` says (wall clock semantics);
    - a window that ends inside a repeated hour opens again when the clock falls back into it.
    Usually within 8 days of `now`; later only if a gap swallows a window's only opening in a week.
    """
    zone = _zone(tz)
    since = _utc(now)
    for _ in range(_MAX_STEPS):
        offset = _offset_at(zone, since)
        candidate = _first_open_at_offset(window, since, offset)
        change = _first_change(zone, since, candidate, offset)
        if change is None:
            return candidate
        since = change
    raise RuntimeError(f"no opening found for {window} in {tz} after {now}")  # pragma: no cover


def is_open(window: CallingWindow, tz: str, now: datetime) -> bool:
    """Whether a target in `tz` may be called at `now`: its wall clock reads a day in
    `window.days` and a time in [start, end)."""
    local = _utc(now).astimezone(_zone(tz))
    return local.weekday() in window.days and window.start <= local.time() < window.end


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # ValueError: a malformed key, "../x"
        raise ValueError(f"unknown time zone {tz!r}") from exc


def _utc(now: datetime) -> datetime:
    if now.utcoffset() is None:
        raise ValueError(f"an aware datetime is needed, got naive {now.isoformat()}")
    return now.astimezone(UTC)


def _offset_at(zone: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return offset


def _first_open_at_offset(window: CallingWindow, since: datetime, offset: timedelta) -> datetime:
    """The first open instant at or after `since` if the zone kept `offset` for ever."""
    wall = (since + offset).replace(tzinfo=None)
    for ahead in range(8):  # today, and the same weekday next week if today's window has passed
        day: date = wall.date() + timedelta(days=ahead)
        if day.weekday() not in window.days:
            continue
        begin = max(wall, datetime.combine(day, window.start))
        if begin < datetime.combine(day, window.end):
            return (begin - offset).replace(tzinfo=UTC)
    raise AssertionError("unreachable: a window has at least one day")


def _first_change(
    zone: ZoneInfo, since: datetime, until: datetime, offset: timedelta
) -> datetime | None:
    """The first instant in (since, until] at which the zone's offset is not `offset`."""
    low = since
    while low < until:
        high = min(low + _PROBE, until)
        if _offset_at(zone, high) != offset:
            while high - low > _RESOLUTION:  # offset at low is `offset`, at high it is not
                middle = low + (high - low) // 2
                if _offset_at(zone, middle) == offset:
                    low = middle
                else:
                    high = middle
            return high
        low = high
    return None


# --- Retries -----------------------------------------------------------------------------------

_FINAL: Final = frozenset({"completed", "canceled"})


def _default_backoff() -> Mapping[str, float]:
    return MappingProxyType({"busy": 300.0, "no-answer": 900.0, "failed": 1800.0})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often, and how long apart, a target is called again after a call that did not reach
    anyone.

    `backoff_s` maps a call's final status to the first wait after it; an outcome missing from it
    is not retried. Waits grow by `backoff_growth` with each attempt (a number that is busy at
    every try is better left alone for longer), up to `max_backoff_s`.
    """

    max_attempts: int = 3
    """Attempts in all, the first included."""
    backoff_s: Mapping[str, float] = field(default_factory=_default_backoff)
    backoff_growth: float = 2.0
    max_backoff_s: float = 86_400.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        for outcome, wait in self.backoff_s.items():
            if outcome in _FINAL:
                raise ValueError(f"{outcome!r} always ends a target; it cannot have a backoff")
            if not (math.isfinite(wait) and wait >= 0):
                raise ValueError(f"backoff for {outcome!r} must be a finite wait ≥ 0, got {wait}")
        if not (math.isfinite(self.backoff_growth) and self.backoff_growth >= 1):
            raise ValueError(f"backoff_growth must be ≥ 1, got {self.backoff_growth}")
        if not self.max_backoff_s >= 0:
            raise ValueError(f"max_backoff_s must be ≥ 0, got {self.max_backoff_s}")
        # A copy behind a read-only view: the caller's dict, changed later, cannot change a policy.
        object.__setattr__(self, "backoff_s", MappingProxyType(dict(self.backoff_s)))


def next_attempt(
    policy: RetryPolicy, outcome: str, attempts_made: int, now: datetime
) -> datetime | None:
    """When to call a target again after a call ended with `outcome`, or None when the target is
    done: reached ("completed"), called off ("canceled"), an outcome the policy does not retry, or
    `attempts_made` (this one included) has reached `policy.max_attempts`.

    `outcome` is the call's final SignalWire status (completed, busy, no-answer, failed,
    canceled) or "machine", an answering machine the campaign hung up on, retried like
    "no-answer" unless the policy names "machine" itself. The wait is
    backoff_s[outcome] * backoff_growth ** (attempts_made - 1), at most max_backoff_s; growth
    counts every attempt made, whatever their outcomes, as that is all a caller need keep.

    The answer ignores calling windows: the caller must pass it through `next_opening` (the
    target's time zone is not known here), and call at the later of the two.
    """
    if attempts_made < 1:
        raise ValueError(f"attempts_made counts the call just ended, so ≥ 1; got {attempts_made}")
    since = _utc(now)
    if outcome in _FINAL or attempts_made >= policy.max_attempts:
        return None
    if outcome == "machine" and outcome not in policy.backoff_s:
        outcome = "no-answer"
    base = policy.backoff_s.get(outcome)
    if base is None:
        return None
    try:
        growth = policy.backoff_growth ** (attempts_made - 1)
    except OverflowError:
        growth = math.inf
    wait = min(base * growth, policy.max_backoff_s) if base > 0 else 0.0
    return since + timedelta(seconds=wait)


# --- Pacing ------------------------------------------------------------------------------------


def free_slots(active_in_campaign: int, campaign_cap: int, active_in_org: int, org_cap: int) -> int:
    """How many more calls may start now under both caps (a campaign's own, and its org's across
    all its campaigns and other calls); never negative, as a lowered cap can leave more active
    calls than it allows. Pass by keyword: four ints are easy to swap."""
    for name, value in (
        ("active_in_campaign", active_in_campaign),
        ("campaign_cap", campaign_cap),
        ("active_in_org", active_in_org),
        ("org_cap", org_cap),
    ):
        if value < 0:
            raise ValueError(f"{name} must be ≥ 0, got {value}")
    return max(0, min(campaign_cap - active_in_campaign, org_cap - active_in_org))


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a target now.

    - "call", reason "in_window", `at` None: call now (subject to pacing and caps).
    - "wait", reason "outside_window", `at` the window's next opening: do not call before it.
    - "skip", reason "do_not_call", `at` None: never call this number; the target is done.
    """

    action: Literal["call", "wait", "skip"]
    at: datetime | None
    reason: str

    def __post_init__(self) -> None:
        if (self.action == "wait") != (self.at is not None):
            raise ValueError(f"`at` is set exactly when waiting; got {self.action} at {self.at}")


def dial_decision(
    *, number: str, do_not_call: frozenset[str], window: CallingWindow, tz: str, now: datetime
) -> Decision:
    """Whether a target may be called now: never when its number is on the do-not-call list
    (checked first, so it holds even for a target whose zone is wrong), else when its window is
    open. Numbers are compared exactly, so both sides must be E.164, as storage keeps them."""
    if number in do_not_call:
        return Decision("skip", None, "do_not_call")
    opening = next_opening(window, tz, now)
    if opening > _utc(now):
        return Decision("wait", opening, "outside_window")
    return Decision("call", None, "in_window")
