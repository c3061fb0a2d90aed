"""A stream resuming a call whose earlier streams were heard on another node (a node lost
mid-call, its stream restarted elsewhere): the gap is lost audio on the new stream's record, a
consent verdict already given stays, and alerts already raised keep their cooldowns."""

from __future__ import annotations

from collections.abc import Sequence

from media.detectors.rules import DEFAULT_RULES, RuleEngine
from media.events import ConsentEvidence, EscalationRaised, MediaEvent, StreamStarted
from media.protocol import Dtmf
from media.session import CallPolicy, CallSession, restart_reason
from tests.media.test_session import (
    CALL,
    FINALS_ONLY,
    ORG,
    RmsVad,
    feed,
    make_start,
    said,
    ulaw_payloads,
)

KEYPAD = CallPolicy(played_disclosure="keypad")
OPERATOR_KEY = tuple(r for r in DEFAULT_RULES if r.name == "operator-key")


def resumed_session(
    policy: CallPolicy, *, offset_ms: int = 8_000, lost_ms: int = 0, **params: str
) -> CallSession:
    return CallSession(
        make_start(tracks=("inbound", "outbound"), params=params), org_id=ORG, call_id=CALL,
        config=FINALS_ONLY, vad_factory=RmsVad, policy=policy, offset_ms=offset_ms,
        resumed=True, lost_ms=lost_ms,
    )  # fmt: skip


def press(session: CallSession, digit: str) -> list[MediaEvent]:
    return session.on_dtmf(Dtmf(sequence_number=None, track="inbound", digit=digit,
                                duration_ms=None))  # fmt: skip


def answers(events: Sequence[object]) -> list[str | None]:
    return [e.verdict for e in events if isinstance(e, ConsentEvidence) and e.kind == "answer"]


def test_the_gap_before_a_resumed_stream_is_lost_audio_on_its_record_once_per_track() -> None:
    session = resumed_session(CallPolicy(), offset_ms=8_000, lost_ms=1_500)
    feed(session, ulaw_payloads("." * 50), "inbound")
    feed(session, ulaw_payloads("." * 50), "outbound")

    stopped = session.stopped_event("stop", 0)
    lost = {t.track: (t.audio_lost_ms, t.frames_received, t.frames_lost) for t in stopped.tracks}
    assert lost == {"inbound": (1_500, 50, 0), "outbound": (1_500, 50, 0)}
    # Its audio is on the call's clock: where it began, not where the gap began.
    assert session.tracks["inbound"].endpointer.clock_ms == 8_000 + 1_000


def test_a_first_stream_loses_nothing_before_it() -> None:
    session = CallSession(
        make_start(), org_id=ORG, call_id=CALL, config=FINALS_ONLY, vad_factory=RmsVad
    )
    assert [t.audio_lost_ms for t in session.stopped_event("stop", 0).tracks] == [0]


def test_a_verdict_already_given_is_not_asked_for_again_on_the_resumed_stream() -> None:
    # On the lost node, the caller pressed 1 to the platform's keypad request: granted.
    granted = CallPolicy(played_disclosure="keypad", consent="granted")
    session = resumed_session(granted)
    assert session.consent == "granted"
    # Within the request's 30 s window, a 2 meant for something else is no refusal now.
    assert answers(press(session, "2")) == []
    assert answers(said(session, "inbound", "No.", 9.0)) == []
    assert session.consent == "granted"
    # A caller who speaks about recording still changes it, as on any call.
    refused = said(session, "inbound", "Actually, please don't record this call.", 12.0)
    assert answers(refused) == ["refused"]


def test_an_undecided_call_resumed_elsewhere_still_takes_its_answer() -> None:
    session = resumed_session(KEYPAD)
    assert answers(press(session, "1")) == ["granted"]


def test_a_first_stream_of_a_call_keeps_the_opening_request_as_before() -> None:
    # Not resumed: the same verdict in the policy leaves the request to the detector.
    session = CallSession(
        make_start(), org_id=ORG, call_id=CALL, config=FINALS_ONLY, vad_factory=RmsVad,
        policy=CallPolicy(played_disclosure="keypad", consent="granted"),
    )  # fmt: skip
    assert answers(press(session, "2")) == ["refused"]


def test_an_implied_notice_is_not_given_again_over_a_refusal() -> None:
    refused = CallPolicy(played_disclosure="notice", implied_by_notice=True, consent="refused")
    session = resumed_session(refused)
    assert [e for e in session.outbox if isinstance(e, ConsentEvidence)] == []
    assert session.consent == "refused"


def test_an_alert_raised_before_the_loss_keeps_its_cooldown_on_the_resumed_stream() -> None:
    [rule] = OPERATOR_KEY
    fired = (("operator-key", 3_000),)
    session = resumed_session(CallPolicy(rules=OPERATOR_KEY, fired=fired), offset_ms=8_000)
    feed(session, ulaw_payloads("." * 10), "inbound")
    assert [e for e in press(session, "0") if isinstance(e, EscalationRaised)] == []
    # Past its cooldown on the call's clock, it fires again.
    later = resumed_session(
        CallPolicy(rules=OPERATOR_KEY, fired=fired), offset_ms=3_000 + rule.cooldown_ms + 1
    )
    feed(later, ulaw_payloads("." * 10), "inbound")
    assert len([e for e in press(later, "0") if isinstance(e, EscalationRaised)]) == 1


def test_cooldowns_carried_ignore_rules_no_longer_there() -> None:
    engine = RuleEngine(OPERATOR_KEY, ("inbound",))
    engine.carry_cooldowns([("deleted-rule", 1_000), ("operator-key", 0)])
    assert engine.on_digit("inbound", "0", 1_000) == []


def test_the_restart_reason_is_taken_from_the_start_only_as_a_short_word() -> None:
    session = resumed_session(CallPolicy(), restarted_after="process_lost")
    started = session.started_event()
    assert isinstance(started, StreamStarted) and started.restarted_after == "process_lost"
    assert restart_reason({}) is None
    assert restart_reason({"restarted_after": "Robert'); DROP TABLE calls;--"}) is None
    assert restart_reason({"restarted_after": "x" * 33}) is None
