"""media.streamed: a cloud service's times placed on the call's clock."""

from __future__ import annotations

from media.streamed import ServiceCircuit, ServiceClock


def test_service_times_move_past_the_gaps_the_service_never_heard() -> None:
    clock = ServiceClock(8000)
    clock.sent(8000, lost_before=0)  # 0-1 s
    clock.sent(8000, lost_before=4000)  # 0.5 s lost, then 1.5-2.5 s of the call
    clock.sent(8000, lost_before=8000)  # 1 s lost, then 3.5-4.5 s
    assert clock.call_ms(500) == 500
    assert clock.call_ms(999) == 999
    assert clock.call_ms(1000) == 1500  # the service's second second is the call's 1.5 s
    assert clock.call_ms(1999) == 2499
    assert clock.call_ms(2000) == 3500
    assert clock.call_ms(2600) == 4100


def test_audio_lost_before_the_first_payload_counts_from_the_start() -> None:
    clock = ServiceClock(16000)
    clock.sent(320, lost_before=16000)  # the stream's first second never arrived
    assert clock.call_ms(0) == 1000
    assert clock.call_ms(10) == 1010


def test_a_circuit_opens_after_failures_in_a_row_and_lets_one_trial_through_per_reset() -> None:
    now = [0.0]
    circuit = ServiceCircuit("deepgram", failures=3, reset_s=30.0, clock=lambda: now[0])
    circuit.failed()
    circuit.failed()
    circuit.succeeded()  # words came back: the count starts again
    for _ in range(3):
        assert circuit.allow()
        circuit.failed()
    assert not circuit.allow()  # open: streams go straight to the offline engine
    now[0] = 29.0
    assert not circuit.allow()
    now[0] = 30.0
    assert circuit.allow()  # the one trial...
    assert not circuit.allow()  # ...and nobody else until it tells, or the next reset
    circuit.failed()
    now[0] = 45.0
    assert not circuit.allow()
    now[0] = 60.0
    assert circuit.allow()
    circuit.succeeded()
    assert circuit.allow() and circuit.allow()  # closed
