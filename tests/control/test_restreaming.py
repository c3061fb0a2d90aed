"""The rules of restarting a lost call's stream (control.restreaming), without I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from control.restreaming import (
    RestreamPolicy,
    attempt_number,
    gave_up,
    outcome_of,
    retry_in_s,
    stream_name,
)
from control.signalwire import SignalWireError, SignalWireRejected, SignalWireUnavailable
from storage.restreams import UnheardCall

POLICY = RestreamPolicy(max_attempts=3, landing_s=10.0, retry_s=2.0)
LOST_AT = datetime(2026, 12, 8, 10, 15, 30, 250_000, tzinfo=UTC)


def unheard(attempts: int) -> UnheardCall:
    return UnheardCall(uuid.uuid4(), uuid.uuid4(), "CA1", LOST_AT, attempts)


def test_attempts_are_numbered_per_loss_until_they_run_out() -> None:
    assert [attempt_number(unheard(made), POLICY) for made in range(5)] == [1, 2, 3, None, None]
    never = RestreamPolicy(max_attempts=0)
    assert attempt_number(unheard(0), never) is None


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, "started"),
        (SignalWireRejected("not found", status=404, code="20404"), "ended"),
        (SignalWireRejected("Call is not in-progress", status=400, code="21220"), "ended"),
        (SignalWireRejected("Invalid Url", status=400, code="21402"), "rejected"),
        (SignalWireRejected("Authenticate", status=401, code="20003"), "rejected"),
        (SignalWireUnavailable("HTTP 503", status=503), "unavailable"),
        (SignalWireUnavailable("circuit open"), "unavailable"),
        (SignalWireError("malformed response", status=201), "malformed"),
    ],
)
def test_signalwires_answer_says_what_the_attempt_came_to(
    error: SignalWireError | None, outcome: str
) -> None:
    assert outcome_of(error) == outcome


def test_a_started_stream_is_given_the_time_to_land_then_tried_again() -> None:
    # Even on the last attempt: the next claim finds the attempts spent and gives up then.
    for attempt in (1, 3):
        assert retry_in_s("started", attempt, POLICY) == POLICY.landing_s
    # A request that may have reached SignalWire waits as long: its stream may be coming.
    assert retry_in_s("out_of_time", 1, POLICY) == POLICY.landing_s
    assert retry_in_s("malformed", 1, POLICY) == POLICY.landing_s


def test_failures_are_tried_again_later_each_time_until_the_attempts_run_out() -> None:
    waits = [retry_in_s("unavailable", attempt, POLICY) for attempt in (1, 2, 3)]
    assert waits == [2.0, 4.0, None]
    assert [retry_in_s("rejected", a, POLICY) for a in (1, 3)] == [2.0, None]
    assert retry_in_s("error", 2, POLICY) == 4.0
    long = RestreamPolicy(max_attempts=10, retry_s=30.0)
    assert retry_in_s("unavailable", 5, long) == 60.0  # at most a minute apart


def test_a_call_signalwire_says_is_over_is_never_tried_again_nor_counted_as_given_up() -> None:
    assert retry_in_s("ended", 1, POLICY) is None
    assert not gave_up("ended", None)
    assert gave_up("unavailable", retry_in_s("unavailable", 3, POLICY))
    assert not gave_up("unavailable", retry_in_s("unavailable", 1, POLICY))


def test_each_attempt_of_each_loss_names_its_stream_apart() -> None:
    call = unheard(0)
    names = {stream_name(call, 1), stream_name(call, 2)}
    later = UnheardCall(call.id, call.org_id, "CA1", LOST_AT.replace(minute=20), 0)
    names.add(stream_name(later, 1))
    assert len(names) == 3
    assert all(name.startswith(f"voxsouth-{call.id}-restart-") for name in names)


def test_a_policy_that_cannot_work_is_refused() -> None:
    with pytest.raises(ValueError):
        RestreamPolicy(batch=0)
    with pytest.raises(ValueError):
        RestreamPolicy(landing_s=0)
