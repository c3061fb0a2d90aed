"""The campaign dialler's rules: calling windows, retries, pacing, caps. Time is passed in."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.dialling import (
    CallingWindow,
    Decision,
    RetryPolicy,
    dial_decision,
    free_slots,
    is_open,
    next_attempt,
    next_opening,
)

NEW_YORK = "America/New_York"
DAY = CallingWindow()  # 08:00 to 21:00, every day
US = ZoneInfo(NEW_YORK)
MICRO = timedelta(microseconds=1)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)


def local(
    tz: str,
    y: int,
    mo: int,
    d: int,
    h: int = 0,
    mi: int = 0,
    s: int = 0,
    us: int = 0,
    fold: int = 0,
) -> datetime:
    """A wall-clock time in `tz`, as a UTC instant."""
    return datetime(y, mo, d, h, mi, s, us, tzinfo=ZoneInfo(tz), fold=fold).astimezone(UTC)


def first_open_by_scan(window: CallingWindow, tz: str, now: datetime, step: timedelta) -> datetime:
    """The first grid point from `now` at which the window is open: a slow, obvious reference."""
    at = now
    while not is_open(window, tz, at):
        at += step
    return at


# --- CallingWindow --------------------------------------------------------------------------------


def test_window_defaults_are_the_tcpa_hours_every_day() -> None:
    assert (DAY.start, DAY.end, DAY.days) == (time(8), time(21), frozenset(range(7)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": time(21), "end": time(8)}, "start before it ends"),
        ({"start": time(9), "end": time(9)}, "start before it ends"),
        ({"days": frozenset()}, "at least one day"),
        ({"days": frozenset({0, 7})}, "0 \\(Monday\\) to 6"),
        ({"days": frozenset({-1})}, "0 \\(Monday\\) to 6"),
        ({"start": time(8, tzinfo=UTC)}, "naive"),
    ],
)
def test_window_rejects(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CallingWindow(**kwargs)  # type: ignore[arg-type]


# --- is_open / next_opening -----------------------------------------------------------------------


def test_open_inside_returns_now_in_utc() -> None:
    now = local(NEW_YORK, 2027, 6, 1, 12, 34, 56, 789)
    assert is_open(DAY, NEW_YORK, now)
    assert next_opening(DAY, NEW_YORK, now) == now
    eastern = now.astimezone(US)  # any aware datetime is accepted, and UTC comes back
    assert next_opening(DAY, NEW_YORK, eastern).tzinfo is UTC
    assert next_opening(DAY, NEW_YORK, eastern) == now


def test_exactly_at_start_is_open() -> None:
    opening = local(NEW_YORK, 2027, 6, 1, 8, 0)
    assert is_open(DAY, NEW_YORK, opening)
    assert not is_open(DAY, NEW_YORK, opening - MICRO)
    assert next_opening(DAY, NEW_YORK, opening) == opening
    assert next_opening(DAY, NEW_YORK, opening - MICRO) == opening


def test_exactly_at_end_is_closed_until_the_next_morning() -> None:
    closing = local(NEW_YORK, 2027, 6, 1, 21, 0)
    assert is_open(DAY, NEW_YORK, closing - MICRO)
    assert not is_open(DAY, NEW_YORK, closing)
    assert next_opening(DAY, NEW_YORK, closing) == local(NEW_YORK, 2027, 6, 2, 8, 0)


def test_early_morning_waits_for_the_same_day() -> None:
    assert next_opening(DAY, NEW_YORK, local(NEW_YORK, 2027, 6, 1, 0, 0)) == local(
        NEW_YORK, 2027, 6, 1, 8, 0
    )


def test_weekend_only_window() -> None:
    weekend = CallingWindow(start=time(10), end=time(16), days=frozenset({5, 6}))
    tuesday = local(NEW_YORK, 2027, 6, 1, 12, 0)
    assert tuesday.astimezone(US).weekday() == 1
    assert not is_open(weekend, NEW_YORK, tuesday)
    saturday = local(NEW_YORK, 2027, 6, 5, 10, 0)
    assert next_opening(weekend, NEW_YORK, tuesday) == saturday
    assert next_opening(weekend, NEW_YORK, local(NEW_YORK, 2027, 6, 5, 16, 0)) == local(
        NEW_YORK, 2027, 6, 6, 10, 0
    )
    # After Sunday's close: the next Saturday, six days on.
    assert next_opening(weekend, NEW_YORK, local(NEW_YORK, 2027, 6, 6, 16, 0)) == local(
        NEW_YORK, 2027, 6, 12, 10, 0
    )


def test_single_weekday_passed_today_is_a_week_away() -> None:
    tuesdays = CallingWindow(days=frozenset({1}))
    assert next_opening(tuesdays, NEW_YORK, local(NEW_YORK, 2027, 6, 1, 21, 0)) == local(
        NEW_YORK, 2027, 6, 8, 8, 0
    )


def test_the_day_is_the_targets_not_utcs() -> None:
    # 00:30 UTC on a Saturday is still Friday evening (20:30) in New York.
    friday_evening = utc(2027, 6, 5, 0, 30)
    weekdays = CallingWindow(days=frozenset(range(5)))
    assert is_open(weekdays, NEW_YORK, friday_evening)
    assert not is_open(weekdays, "UTC", friday_evening)
    assert next_opening(weekdays, "UTC", friday_evening) == utc(2027, 6, 7, 8, 0)


def test_half_hour_zone_kolkata() -> None:
    # +05:30: 02:00 UTC is 07:30 in India, half an hour before opening.
    now = utc(2027, 6, 1, 2, 0)
    assert not is_open(DAY, "Asia/Kolkata", now)
    assert next_opening(DAY, "Asia/Kolkata", now) == utc(2027, 6, 1, 2, 30)
    assert is_open(DAY, "Asia/Kolkata", utc(2027, 6, 1, 15, 29))
    assert not is_open(DAY, "Asia/Kolkata", utc(2027, 6, 1, 15, 30))  # 21:00 IST


def test_quarter_hour_zone_chatham_across_the_date_line() -> None:
    # +12:45 in the southern winter: 12:00 UTC on 1 June is 00:45 on 2 June at Chatham.
    now = utc(2027, 6, 1, 12, 0)
    assert now.astimezone(ZoneInfo("Pacific/Chatham")).utcoffset() == timedelta(
        hours=12, minutes=45
    )
    assert next_opening(DAY, "Pacific/Chatham", now) == utc(2027, 6, 1, 19, 15)
    # +13:45 in the southern summer.
    assert next_opening(DAY, "Pacific/Chatham", utc(2027, 12, 1, 12, 0)) == utc(2027, 12, 1, 18, 15)


def test_spring_forward_ordinary_window_opens_an_hour_earlier_in_utc() -> None:
    # 2027-03-14: New York jumps from 02:00 EST to 03:00 EDT (07:00 UTC).
    saturday_close = local(NEW_YORK, 2027, 3, 13, 21, 0)
    assert next_opening(DAY, NEW_YORK, saturday_close) == utc(2027, 3, 14, 12, 0)  # 08:00 EDT
    assert next_opening(DAY, NEW_YORK, local(NEW_YORK, 2027, 3, 12, 21, 0)) == utc(
        2027, 3, 13, 13, 0
    )  # 08:00 EST


def test_spring_forward_opening_inside_the_gap_opens_at_the_jump() -> None:
    # 02:30 does not exist on 2027-03-14 in New York: the clock reads 01:59:59.999999 EST, then
    # 03:00 EDT. The first instant whose clock reads 02:30 or later is the jump itself.
    window = CallingWindow(start=time(2, 30))
    jump = utc(2027, 3, 14, 7, 0)
    assert jump.astimezone(US).time() == time(3, 0)
    midnight = local(NEW_YORK, 2027, 3, 14, 0, 0)
    assert next_opening(window, NEW_YORK, midnight) == jump
    assert not is_open(window, NEW_YORK, jump - MICRO)
    assert is_open(window, NEW_YORK, jump)
    # The naive conversion of 02:30 (fold 0, the offset before the gap) would give 03:30 EDT,
    # half an hour late; an obvious minute-by-minute scan agrees with the jump.
    assert first_open_by_scan(window, NEW_YORK, midnight, timedelta(minutes=1)) == jump


def test_spring_forward_window_inside_the_gap_is_skipped_to_the_next_day() -> None:
    window = CallingWindow(start=time(2, 15), end=time(2, 45))  # wholly inside the missing hour
    midnight = local(NEW_YORK, 2027, 3, 14, 0, 0)
    assert next_opening(window, NEW_YORK, midnight) == local(NEW_YORK, 2027, 3, 15, 2, 15)


def test_fall_back_ordinary_window_opens_an_hour_later_in_utc() -> None:
    # 2027-11-07: New York falls back from 02:00 EDT to 01:00 EST (06:00 UTC).
    assert next_opening(DAY, NEW_YORK, local(NEW_YORK, 2027, 11, 6, 21, 0)) == utc(
        2027, 11, 7, 13, 0
    )  # 08:00 EST
    assert not is_open(DAY, NEW_YORK, utc(2027, 11, 7, 12, 59))


def test_fall_back_opening_inside_the_repeated_hour() -> None:
    window = CallingWindow(start=time(1, 30))
    first = local(NEW_YORK, 2027, 11, 7, 1, 30)  # 01:30 EDT, 05:30 UTC
    second = local(NEW_YORK, 2027, 11, 7, 1, 30, fold=1)  # 01:30 EST, 06:30 UTC
    assert (first, second) == (utc(2027, 11, 7, 5, 30), utc(2027, 11, 7, 6, 30))
    assert next_opening(window, NEW_YORK, local(NEW_YORK, 2027, 11, 7, 0, 0)) == first
    # Wall-clock semantics: once the clock falls back to 01:00 EST it reads before 01:30 again.
    assert is_open(window, NEW_YORK, utc(2027, 11, 7, 5, 59))
    assert not is_open(window, NEW_YORK, utc(2027, 11, 7, 6, 0))
    assert next_opening(window, NEW_YORK, utc(2027, 11, 7, 6, 10)) == second


def test_fall_back_window_ending_in_the_repeated_hour_opens_again() -> None:
    window = CallingWindow(start=time(0, 30), end=time(1, 30))
    assert not is_open(window, NEW_YORK, utc(2027, 11, 7, 5, 30))  # 01:30 EDT: closed
    # At 06:00 UTC the clock reads 01:00 EST, inside the window again, until 01:30 EST.
    assert next_opening(window, NEW_YORK, utc(2027, 11, 7, 5, 45)) == utc(2027, 11, 7, 6, 0)
    assert not is_open(window, NEW_YORK, utc(2027, 11, 7, 6, 30))
    start = utc(2027, 11, 7, 5, 30)
    assert first_open_by_scan(window, NEW_YORK, start, timedelta(minutes=1)) == utc(
        2027, 11, 7, 6, 0
    )


def test_a_zone_that_skipped_a_whole_day() -> None:
    # Samoa went from -10 to +14 at the end of 2011-12-29: 30 December never happened there.
    apia = "Pacific/Apia"
    thursday_close = local(apia, 2011, 12, 29, 21, 0)
    fridays = CallingWindow(days=frozenset({4}))
    assert next_opening(DAY, apia, thursday_close) == local(apia, 2011, 12, 31, 8, 0)
    assert next_opening(fridays, apia, thursday_close) == local(apia, 2012, 1, 6, 8, 0)


@pytest.mark.parametrize(
    "tz", ["Mars/Olympus_Mons", "", "america/new_york", "../etc/passwd", "UTC "]
)
def test_unknown_time_zone(tz: str) -> None:
    now = utc(2027, 6, 1, 12, 0)
    with pytest.raises(ValueError, match="unknown time zone"):
        next_opening(DAY, tz, now)
    with pytest.raises(ValueError, match="unknown time zone"):
        is_open(DAY, tz, now)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_opening(DAY, NEW_YORK, datetime(2027, 6, 1, 12, 0))
    with pytest.raises(ValueError, match="aware"):
        is_open(DAY, NEW_YORK, datetime(2027, 6, 1, 12, 0))


# Offsets since 1980 are whole quarter hours and these windows' edges whole 5 minutes, so every
# edge between open and closed falls on a 5-minute UTC grid and every open stretch lasts 5 minutes
# or more: a scan in 5-minute steps cannot step over one.
_GRID = timedelta(minutes=5)


@st.composite
def _window(draw: st.DrawFn) -> CallingWindow:
    a = draw(st.integers(0, 287))
    b = draw(st.integers(0, 287).filter(lambda b: b != a))
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    low, high = sorted((a, b))
    return CallingWindow(
        start=time(*divmod(low * 5, 60)), end=time(*divmod(high * 5, 60)), days=days
    )


@settings(max_examples=300, deadline=None, database=None)
@given(
    window=_window(),
    tz=st.sampled_from(sorted(available_timezones())),
    now=st.datetimes(
        min_value=datetime(1980, 1, 1), max_value=datetime(2037, 12, 31), timezones=st.just(UTC)
    ),
)
def test_next_opening_is_the_first_open_instant(
    window: CallingWindow, tz: str, now: datetime
) -> None:
    opening = next_opening(window, tz, now)
    assert opening.tzinfo is UTC
    assert opening >= now
    assert is_open(window, tz, opening)
    if opening > now:
        assert not is_open(window, tz, opening - MICRO)
        # No open instant before it: the first open grid point from `now` is not earlier.
        assert first_open_by_scan(window, tz, now, _GRID) >= opening


# --- Retries --------------------------------------------------------------------------------------

NOW = utc(2027, 6, 1, 12, 0)


@pytest.mark.parametrize(
    ("outcome", "wait_s"), [("busy", 300), ("no-answer", 900), ("failed", 1800), ("machine", 900)]
)
def test_first_retry_waits_the_outcomes_backoff(outcome: str, wait_s: int) -> None:
    assert next_attempt(RetryPolicy(), outcome, 1, NOW) == NOW + timedelta(seconds=wait_s)


@pytest.mark.parametrize("outcome", ["completed", "canceled", "queued", "in-progress", "weird"])
def test_done_outcomes(outcome: str) -> None:
    assert next_attempt(RetryPolicy(), outcome, 1, NOW) is None


def test_backoff_grows_per_attempt_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=10, backoff_growth=3.0, max_backoff_s=5_000.0)
    waits = [next_attempt(policy, "busy", n, NOW) for n in range(1, 10)]
    assert [w - NOW if w else None for w in waits] == [
        timedelta(seconds=s) for s in (300, 900, 2700, 5000, 5000, 5000, 5000, 5000, 5000)
    ]


def test_enormous_growth_is_capped_not_an_overflow() -> None:
    policy = RetryPolicy(max_attempts=100_000, backoff_growth=10.0)
    assert next_attempt(policy, "failed", 50_000, NOW) == NOW + timedelta(days=1)
    zero = RetryPolicy(max_attempts=100_000, backoff_s={"busy": 0.0}, backoff_growth=10.0)
    assert next_attempt(zero, "busy", 50_000, NOW) == NOW


def test_attempts_exhausted() -> None:
    policy = RetryPolicy()  # three attempts in all
    assert next_attempt(policy, "busy", 2, NOW) == NOW + timedelta(seconds=600)
    assert next_attempt(policy, "busy", 3, NOW) is None
    assert next_attempt(policy, "busy", 4, NOW) is None
    assert next_attempt(RetryPolicy(max_attempts=1), "busy", 1, NOW) is None


def test_machine_has_its_own_backoff_when_named() -> None:
    policy = RetryPolicy(backoff_s={"machine": 3600.0, "no-answer": 60.0})
    assert next_attempt(policy, "machine", 1, NOW) == NOW + timedelta(hours=1)
    no_machine_retries = RetryPolicy(backoff_s={"busy": 60.0})
    assert next_attempt(no_machine_retries, "machine", 1, NOW) is None  # as no-answer: not retried


def test_policy_is_immune_to_later_changes_of_its_dict() -> None:
    backoff = {"busy": 60.0}
    policy = RetryPolicy(backoff_s=backoff)
    backoff["busy"] = 1.0
    assert policy.backoff_s["busy"] == 60.0
    assert isinstance(policy.backoff_s, Mapping)
    with pytest.raises(TypeError):
        policy.backoff_s["busy"] = 2.0  # type: ignore[index]
    assert RetryPolicy().backoff_s == {"busy": 300.0, "no-answer": 900.0, "failed": 1800.0}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"backoff_s": {"completed": 60.0}},
        {"backoff_s": {"canceled": 60.0}},
        {"backoff_s": {"busy": -1.0}},
        {"backoff_s": {"busy": math.nan}},
        {"backoff_growth": 0.5},
        {"backoff_growth": math.inf},
        {"max_backoff_s": -1.0},
    ],
)
def test_policy_rejects(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_next_attempt_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="≥ 1"):
        next_attempt(RetryPolicy(), "busy", 0, NOW)
    with pytest.raises(ValueError, match="aware"):
        next_attempt(RetryPolicy(), "busy", 1, datetime(2027, 6, 1))


# --- Concurrency ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("campaign", "campaign_cap", "org", "org_cap", "free"),
    [
        (0, 10, 0, 50, 10),
        (4, 10, 48, 50, 2),  # the org is nearly full
        (9, 10, 0, 50, 1),
        (10, 10, 0, 50, 0),
        (12, 10, 0, 50, 0),  # a cap lowered under the active calls: none, not -2
        (0, 10, 60, 50, 0),
        (0, 0, 0, 50, 0),
    ],
)
def test_free_slots(campaign: int, campaign_cap: int, org: int, org_cap: int, free: int) -> None:
    kwargs = {
        "active_in_campaign": campaign,
        "campaign_cap": campaign_cap,
        "active_in_org": org,
        "org_cap": org_cap,
    }
    assert free_slots(**kwargs) == free


def test_free_slots_rejects_negative_counts() -> None:
    with pytest.raises(ValueError, match="active_in_org"):
        free_slots(active_in_campaign=0, campaign_cap=1, active_in_org=-1, org_cap=1)


# --- dial_decision --------------------------------------------------------------------------------

BLOCKED = "+12125550100"
CALLABLE = "+12125550199"
DNC = frozenset({BLOCKED})


def test_decision_call_in_window() -> None:
    now = local(NEW_YORK, 2027, 6, 1, 12, 0)
    decision = dial_decision(number=CALLABLE, do_not_call=DNC, window=DAY, tz=NEW_YORK, now=now)
    assert decision == Decision("call", None, "in_window")


def test_decision_wait_outside_window() -> None:
    now = local(NEW_YORK, 2027, 6, 1, 22, 0)
    decision = dial_decision(number=CALLABLE, do_not_call=DNC, window=DAY, tz=NEW_YORK, now=now)
    assert decision == Decision("wait", local(NEW_YORK, 2027, 6, 2, 8, 0), "outside_window")


def test_decision_skip_do_not_call_even_in_window_or_with_a_bad_zone() -> None:
    now = local(NEW_YORK, 2027, 6, 1, 12, 0)
    for tz in (NEW_YORK, "Nowhere/Special"):
        decision = dial_decision(number=BLOCKED, do_not_call=DNC, window=DAY, tz=tz, now=now)
        assert decision == Decision("skip", None, "do_not_call")
    with pytest.raises(ValueError, match="unknown time zone"):
        dial_decision(number=CALLABLE, do_not_call=DNC, window=DAY, tz="Nowhere/Special", now=now)


def test_decision_at_is_set_exactly_when_waiting() -> None:
    with pytest.raises(ValueError):
        Decision("wait", None, "outside_window")
    with pytest.raises(ValueError):
        Decision("call", NOW, "in_window")
