"""The dialogue evaluation set without any synthesizer: the loader's checks, the layout of a
call's timeline, its levels and phone line, the per-call voice draws, and that every committed
dialogue file loads."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.dialogue_audio import (
    GAP_MS,
    LEAD_IN_MS,
    LIMITER_KNEE,
    LOUD_GAIN_DB,
    MAX_HEADROOM_DB,
    PLAYINGS,
    PRESS_MS,
    SAMPLE_RATE,
    SNRS_DB,
    SPEECH_DBFS,
    TAIL_MS,
    FloatArray,
    LayoutError,
    call_voices,
    gap_ms,
    layout,
    mix,
    phone_line,
    piece_gains_db,
    soft_limit,
    spoken_pieces,
)
from bench.dialogues import DIALOGUES_DIR, Dialogue, ManifestError, load_file, load_part, parse
from media.codecs import level_dbfs, ulaw_decode, ulaw_encode

Json = dict[str, Any]


def say(who: str, text: str = "Hello there, this is a line of speech.", **extra: Any) -> Json:
    return {"who": who, "say": text, **extra}


def make_call(**over: Any) -> Json:
    call: Json = {
        "id": "dev-x-billing-001",
        "situation": "billing",
        "consent_request": "agent_question",
        "played": None,
        "caller_gain_db": 0,
        "turns": [
            say("agent", "Calls are recorded for training. Is that alright with you?"),
            say("caller", "Yeah, that's fine."),
            say("agent"),
            say("caller"),
        ],
        "expect": {
            "consent": "granted",
            "escalations": [],
            "raised_voice": False,
            "dead_air": False,
            "talk_over": False,
            "operator_key": False,
        },
        "distractors": [],
        "notes": "a plain call",
    }
    call.update(over)
    return call


def with_expect(call: Json, **flags: Any) -> Json:
    call = copy.deepcopy(call)
    call["expect"].update(flags)
    return call


def one(call: Json, part: str = "dev") -> Dialogue:
    return parse({"part": part, "calls": [call]})[0]


def rejected(raw: object, *fragments: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse(raw)
    for fragment in fragments:
        assert fragment in str(caught.value), str(caught.value)


def file_of(*calls: Json) -> Json:
    return {"part": "dev", "calls": list(calls)}


# --- the loader ---------------------------------------------------------------------------------


def test_a_well_formed_call_loads() -> None:
    d = one(make_call())
    assert d.id == "dev-x-billing-001"
    assert d.consent_request == "agent_question"
    assert [t.who for t in d.turns] == ["agent", "caller", "agent", "caller"]
    assert d.expect.consent == "granted" and d.expect.escalations == ()
    assert d.caller_gain_db == 0.0 and d.played is None


def test_optional_fields_default() -> None:
    call = make_call()
    for key in ("played", "caller_gain_db", "distractors", "notes"):
        del call[key]
    d = one(call)
    assert (d.played, d.caller_gain_db, d.distractors, d.notes) == (None, 0.0, (), "")


@pytest.mark.parametrize(
    ("where", "key"),
    [("file", "version"), ("call", "speaker"), ("turn", "volume"), ("expect", "anger")],
)
def test_unknown_keys_are_named(where: str, key: str) -> None:
    call = make_call()
    raw = file_of(call)
    {"file": raw, "call": call, "turn": call["turns"][1], "expect": call["expect"]}[where][key] = 1
    rejected(raw, f"unknown key '{key}'")


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"id": 7}, ("calls[0]", "id")),
        ({"id": "test-x-billing-001"}, ("test-x-billing-001", "must start with dev-")),
        ({"situation": "space travel"}, ("situation", "must be one of")),
        ({"consent_request": "asked"}, ("consent_request",)),
        ({"caller_gain_db": "loud"}, ("caller_gain_db", "number")),
        ({"caller_gain_db": True}, ("caller_gain_db", "number")),
        ({"caller_gain_db": 20}, ("caller_gain_db", "0 to 12")),
        ({"turns": "agent then caller"}, ("turns", "array")),
        ({"turns": []}, ("turns", "at least one")),
        ({"distractors": "none"}, ("distractors", "array")),
        ({"notes": 3}, ("notes", "string")),
        ({"expect": []}, ("expect", "object")),
    ],
)
def test_bad_call_fields_are_named(change: Json, fragments: tuple[str, ...]) -> None:
    rejected(file_of(make_call(**change)), *fragments)


def test_missing_fields_are_named() -> None:
    call = make_call()
    del call["situation"]
    rejected(file_of(call), "dev-x-billing-001", "situation: missing")
    call = make_call()
    del call["expect"]["dead_air"]
    rejected(file_of(call), "expect.dead_air: missing")


@pytest.mark.parametrize(
    ("turn", "fragments"),
    [
        ({"who": "robot", "say": "hi"}, ("turns[1].who",)),
        ({"who": "caller"}, ("turns[1]", "exactly one of say and press")),
        ({"who": "caller", "say": "hi", "press": "1"}, ("exactly one of say and press",)),
        ({"who": "caller", "say": 3}, ("turns[1].say", "string")),
        ({"who": "caller", "say": "  "}, ("turns[1].say", "non-empty")),
        ({"who": "caller", "press": "12"}, ("turns[1].press", "one key")),
        ({"who": "caller", "press": "a"}, ("turns[1].press",)),
        ({"who": "caller", "press": 1}, ("turns[1].press",)),
        ({"who": "agent", "press": "1"}, ("only the caller presses",)),
        ({"who": "caller", "say": "hi", "loud": "yes"}, ("turns[1].loud", "true or false")),
        ({"who": "agent", "say": "hi", "loud": True}, ("turns[1].loud", "caller")),
        ({"who": "caller", "press": "1", "loud": True}, ("turns[1].loud",)),
        ({"who": "caller", "say": "hi", "overlap_ms": 2.5}, ("turns[1].overlap_ms",)),
        ({"who": "caller", "say": "hi", "overlap_ms": 0}, ("turns[1].overlap_ms",)),
        ({"who": "caller", "say": "hi", "pause_before_ms": -1}, ("turns[1].pause_before_ms",)),
        ({"who": "caller", "say": "hi", "pause_before_ms": True}, ("pause_before_ms",)),
        (
            {"who": "caller", "say": "hi", "overlap_ms": 900, "pause_before_ms": 900},
            ("cannot go together",),
        ),
    ],
)
def test_bad_turns_are_named(turn: Json, fragments: tuple[str, ...]) -> None:
    call = make_call()
    call["turns"][1] = turn
    rejected(file_of(call), "call dev-x-billing-001", *fragments)


def test_bad_expect_fields_are_named() -> None:
    rejected(file_of(with_expect(make_call(), consent="maybe")), "expect.consent")
    rejected(file_of(with_expect(make_call(), consent=True)), "expect.consent")
    rejected(file_of(with_expect(make_call(), dead_air="no")), "expect.dead_air")
    rejected(file_of(with_expect(make_call(), escalations="complaint")), "expect.escalations")


@pytest.mark.parametrize("name", ["refund", "supervisor", "Complaint", 3])
def test_escalations_only_from_the_four_families(name: object) -> None:
    rejected(file_of(with_expect(make_call(), escalations=[name])), "expect.escalations[0]")


def test_the_four_families_load_once_each() -> None:
    families = ["supervisor-request", "legal-threat", "cancellation", "complaint"]
    assert one(with_expect(make_call(), escalations=families)).expect.escalations == tuple(families)
    twice = with_expect(make_call(), escalations=["complaint", "complaint"])
    rejected(file_of(twice), "complaint listed twice")


def test_ids_are_unique_within_a_file() -> None:
    rejected(file_of(make_call(), make_call()), "call dev-x-billing-001: id used twice")


def test_ids_are_unique_across_the_files_of_a_part(tmp_path: Path) -> None:
    (tmp_path / "dev-a.json").write_text(json.dumps(file_of(make_call())))
    (tmp_path / "dev-b.json").write_text(json.dumps(file_of(make_call())))
    with pytest.raises(ManifestError, match=r"dev-b.json: call dev-x-billing-001: .*dev-a.json"):
        load_part("dev", tmp_path)


def test_a_part_reads_its_files_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "dev-b.json").write_text(json.dumps(file_of(make_call(id="dev-b-1"))))
    (tmp_path / "dev-a.json").write_text(json.dumps(file_of(make_call(id="dev-a-1"))))
    (tmp_path / "test-a.json").write_text(json.dumps({"part": "test", "calls": []}))
    assert [d.id for d in load_part("dev", tmp_path)] == ["dev-a-1", "dev-b-1"]
    assert load_part("test", tmp_path) == []


def test_a_file_of_the_wrong_part_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dev-a.json").write_text(
        json.dumps({"part": "test", "calls": [make_call(id="test-a-1")]})
    )
    with pytest.raises(ManifestError, match="dev-a.json: part is 'test'"):
        load_part("dev", tmp_path)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "dev-a.json"
    path.write_text('{"part": "dev", "calls": [')
    with pytest.raises(ManifestError, match="dev-a.json: not JSON"):
        load_file(path)
    path.write_text(json.dumps(file_of(make_call(situation="moon"))))
    with pytest.raises(ManifestError, match="dev-a.json: call dev-x-billing-001: situation"):
        load_file(path)


def loud_call(loud_turns: int) -> Json:
    turns = [say("agent"), say("caller"), say("agent"), say("caller")]
    turns += [say("caller", "This is ridiculous and I am not having it again!", loud=True)]
    turns += [say("agent")]
    turns += [say("caller", "You people never listen to a word I say to you!", loud=True)]
    for turn in turns[4:]:
        if turn.get("loud") and loud_turns <= 0:
            del turn["loud"]
        loud_turns -= bool(turn.get("loud"))
    return make_call(turns=turns)


def test_raised_voice_iff_two_loud_turns() -> None:
    assert one(with_expect(loud_call(2), raised_voice=True)).expect.raised_voice
    rejected(file_of(loud_call(2)), "expect.raised_voice is false", "2 or more loud turns")
    rejected(file_of(with_expect(loud_call(1), raised_voice=True)), "raised_voice is true")
    assert not one(loud_call(1)).expect.raised_voice
    rejected(file_of(with_expect(loud_call(0), raised_voice=True)), "raised_voice")


@pytest.mark.parametrize(("pause", "dead_air"), [(16_000, True), (15_999, False), (30_000, True)])
def test_dead_air_iff_a_pause_of_16_s(pause: int, dead_air: bool) -> None:
    call = make_call()
    call["turns"][3]["pause_before_ms"] = pause
    assert one(with_expect(call, dead_air=dead_air)).expect.dead_air == dead_air
    rejected(file_of(with_expect(call, dead_air=not dead_air)), "expect.dead_air", "16000")


@pytest.mark.parametrize(("overlap", "talk_over"), [(2500, True), (2499, False), (400, False)])
def test_talk_over_iff_an_overlap_of_2_5_s(overlap: int, talk_over: bool) -> None:
    call = make_call()
    call["turns"][2]["overlap_ms"] = overlap
    assert one(with_expect(call, talk_over=talk_over)).expect.talk_over == talk_over
    rejected(file_of(with_expect(call, talk_over=not talk_over)), "expect.talk_over", "2500")


def test_overlap_only_over_the_other_partys_speech() -> None:
    same = make_call()
    same["turns"].insert(2, say("caller", "And another thing.", overlap_ms=2500))
    rejected(file_of(with_expect(same, talk_over=True)), "turns[2].overlap_ms", "same track")
    first = make_call()
    first["turns"][0]["overlap_ms"] = 500
    rejected(file_of(first), "turns[0].overlap_ms")
    after_press = make_call()
    after_press["turns"][1] = {"who": "caller", "press": "1"}
    after_press["turns"][2]["overlap_ms"] = 500
    rejected(file_of(after_press), "turns[2].overlap_ms", "spoken")


def test_a_pause_needs_something_before_it() -> None:
    call = make_call()
    call["turns"][0]["pause_before_ms"] = 2000
    rejected(file_of(call), "turns[0].pause_before_ms")
    played = make_call(consent_request="played_notice", played="Calls are recorded.")
    played["turns"][0]["pause_before_ms"] = 2000
    assert one(played).turns[0].pause_before_ms == 2000


@pytest.mark.parametrize(("key", "operator_key"), [("0", True), ("1", False), ("#", False)])
def test_operator_key_iff_a_press_of_0(key: str, operator_key: bool) -> None:
    call = make_call()
    call["turns"].append({"who": "caller", "press": key})
    assert one(with_expect(call, operator_key=operator_key)).expect.operator_key == operator_key
    rejected(file_of(with_expect(call, operator_key=not operator_key)), "expect.operator_key")


@pytest.mark.parametrize("request_kind", ["played_question", "played_keypad", "played_notice"])
def test_played_kinds_need_the_played_text(request_kind: str) -> None:
    rejected(file_of(make_call(consent_request=request_kind)), "played", request_kind)
    rejected(file_of(make_call(consent_request=request_kind, played=" ")), "played")
    text = "This call is recorded. Is that okay?"
    assert one(make_call(consent_request=request_kind, played=text)).played == text


@pytest.mark.parametrize("request_kind", ["agent_question", "agent_notice", "none"])
def test_other_kinds_play_nothing(request_kind: str) -> None:
    call = make_call(consent_request=request_kind, played="This call is recorded.")
    rejected(file_of(call), "played: must be null", request_kind)
    assert one(make_call(consent_request=request_kind)).played is None


# --- layout -------------------------------------------------------------------------------------


def labelled(turns: list[Json], **over: Any) -> Dialogue:
    """A call whose acoustic labels are whatever its turns imply (the loader says which)."""
    raw = make_call(turns=turns, **over)
    for _ in range(5):
        try:
            return one(raw)
        except ManifestError as exc:
            flag = re.search(r"expect\.(\w+) is", str(exc))
            if flag is None:
                raise
            raw = with_expect(raw, **{flag[1]: not raw["expect"][flag[1]]})
    raise AssertionError("labels never settled")


def test_turns_follow_each_other_with_drawn_gaps() -> None:
    d = labelled([say("agent" if i % 2 == 0 else "caller") for i in range(12)])
    lay = layout(d, [1000 + 100 * i for i in range(12)])
    starts = [p.start_ms for p in lay.placed]
    assert starts[0] == LEAD_IN_MS
    gaps = [b.start_ms - a.end_ms for a, b in zip(lay.placed, lay.placed[1:], strict=False)]
    assert all(GAP_MS[0] <= g <= GAP_MS[1] for g in gaps), gaps
    assert len(set(gaps)) > 3  # drawn per turn, not one gap
    assert [p.end_ms - p.start_ms for p in lay.placed] == [1000 + 100 * i for i in range(12)]
    assert layout(d, [1000 + 100 * i for i in range(12)]) == lay  # deterministic
    other = labelled([say("agent" if i % 2 == 0 else "caller") for i in range(12)], id="dev-x-2")
    assert [p.start_ms for p in layout(other, [1000 + 100 * i for i in range(12)]).placed] != starts


def test_gaps_cover_their_range_and_depend_only_on_call_and_position() -> None:
    gaps = [gap_ms(f"dev-x-{n}", i) for n in range(50) for i in range(10)]
    assert min(gaps) >= GAP_MS[0] and max(gaps) <= GAP_MS[1]
    assert min(gaps) < GAP_MS[0] + 50 and max(gaps) > GAP_MS[1] - 50
    assert gap_ms("dev-x-7", 3) == gap_ms("dev-x-7", 3)


def test_the_call_ends_with_the_tail() -> None:
    d = labelled([say("agent"), say("caller")])
    lay = layout(d, [2000, 1500])
    assert lay.duration_ms == lay.placed[-1].end_ms + TAIL_MS


def test_a_pause_replaces_the_gap() -> None:
    d = labelled([say("agent"), say("caller"), say("agent", pause_before_ms=17_000)])
    lay = layout(d, [2000, 1500, 1000])
    assert lay.placed[2].start_ms == lay.placed[1].end_ms + 17_000
    assert d.expect.dead_air


def test_an_overlap_starts_before_the_previous_turn_ends() -> None:
    d = labelled([say("agent"), say("caller"), say("agent", overlap_ms=2500), say("caller")])
    lay = layout(d, [2000, 6000, 1000, 1500])
    caller, agent, after = lay.placed[1], lay.placed[2], lay.placed[3]
    assert agent.start_ms == caller.end_ms - 2500
    assert agent.end_ms < caller.end_ms
    # The next turn waits for whoever is still speaking: the caller's long turn.
    assert GAP_MS[0] <= after.start_ms - caller.end_ms <= GAP_MS[1]
    assert d.expect.talk_over


def test_an_overlap_longer_than_the_turn_it_overlaps_is_refused() -> None:
    d = labelled([say("agent"), say("caller"), say("agent", overlap_ms=2500)])
    with pytest.raises(LayoutError, match=r"turns\[2\].overlap_ms: 2500 ms is longer"):
        layout(d, [2000, 2000, 1000])


def test_an_overlap_reaching_back_into_the_same_partys_turn_is_refused() -> None:
    turns = [say("agent"), say("caller"), say("agent", overlap_ms=1000)]
    turns.append(say("caller", overlap_ms=2000))
    d = labelled(turns)
    with pytest.raises(LayoutError, match=r"turns\[3\]: would start before the caller"):
        layout(d, [2000, 6000, 2500, 1000])


def test_key_presses_take_300_ms_on_the_inbound_track() -> None:
    d = labelled([say("agent"), {"who": "caller", "press": "0"}, say("agent")])
    lay = layout(d, [2000, 1500])  # durations are for spoken pieces only
    press = lay.placed[1]
    assert (press.piece.track, press.piece.digit) == ("inbound", "0")
    assert press.end_ms - press.start_ms == PRESS_MS
    assert GAP_MS[0] <= lay.placed[2].start_ms - press.end_ms <= GAP_MS[1]
    assert [p.piece.text is None for p in lay.placed] == [False, True, False]


def test_the_played_prompt_comes_first_on_the_outbound_track() -> None:
    d = labelled(
        [{"who": "caller", "press": "1"}, say("agent")],
        consent_request="played_keypad",
        played="This call is recorded. Press 1 to agree or 2 to decline.",
    )
    assert [p.who for p in spoken_pieces(d)] == ["played", "agent"]
    lay = layout(d, [4000, 2000])
    prompt = lay.placed[0]
    assert (prompt.piece.who, prompt.piece.track, prompt.start_ms) == ("played", "outbound", 500)
    assert prompt.piece.text == d.played


def test_layout_wants_one_duration_per_spoken_piece() -> None:
    d = labelled([say("agent"), say("caller")])
    with pytest.raises(ValueError, match="durations"):
        layout(d, [1000])


# --- levels and the phone line ------------------------------------------------------------------


def tone(ms: int, amplitude: float = 10 ** (SPEECH_DBFS / 20) * math.sqrt(2)) -> FloatArray:
    """A 1 kHz tone at -26 dBFS RMS (the level every clip is normalised to)."""
    t = np.arange(ms * SAMPLE_RATE // 1000) / SAMPLE_RATE
    out: FloatArray = amplitude * np.sin(2 * np.pi * 1000 * t)
    return out


def shouting_call(gain_db: float = 0) -> Dialogue:
    turns = [say("agent"), say("caller"), say("agent"), say("caller")]
    turns += [say("caller", "This is ridiculous and I am not having it again!", loud=True)]
    turns += [say("agent"), say("caller", "Nobody listens to a word I say to you!", loud=True)]
    return labelled(turns, caller_gain_db=gain_db)


def test_a_loud_turn_is_12_db_above_the_callers_normal_turns() -> None:
    d = shouting_call()
    peaks = [-23.0] * 7  # a tone at -26 dBFS RMS: loud turns peak at -11 dBFS, no headroom
    gains = piece_gains_db(d, peaks)
    loud = [g for g, p in zip(gains, spoken_pieces(d), strict=True) if p.loud]
    normal = [g for g, p in zip(gains, spoken_pieces(d), strict=True) if p.who == "caller"]
    normal = [g for g in normal if g not in loud]
    assert len(loud) == 2 and len(normal) == 2
    assert all(lg - ng == pytest.approx(LOUD_GAIN_DB) for lg in loud for ng in normal)
    assert [g for g, p in zip(gains, spoken_pieces(d), strict=True) if p.who == "agent"] == [0] * 3


def test_the_mixed_tracks_keep_the_12_db() -> None:
    d = shouting_call()
    clips = [tone(1500) for _ in spoken_pieces(d)]
    lay = layout(d, [1500] * len(clips))
    tracks = mix(lay, clips, piece_gains_db(d, [-23.0] * len(clips)))
    assert len(tracks["inbound"]) == len(tracks["outbound"]) == lay.duration_ms * 8

    def level(placed_index: int) -> float:
        p = lay.placed[placed_index]
        segment = tracks[p.piece.track][p.start_ms * 8 : p.end_ms * 8]
        return level_dbfs(np.round(segment * 32767).astype("<i2").tobytes())

    assert level(4) - level(3) == pytest.approx(LOUD_GAIN_DB, abs=0.05)
    assert level(6) - level(1) == pytest.approx(LOUD_GAIN_DB, abs=0.05)
    assert level(0) == pytest.approx(SPEECH_DBFS, abs=0.05)  # the agent at the normal level


def test_loud_turns_bring_the_callers_level_down_to_peak_below_full_scale() -> None:
    d = shouting_call()
    gains = piece_gains_db(d, [-10.0] * 7)  # a loud turn would peak at +2 dBFS
    loud_peak = -10.0 + max(gains)
    assert loud_peak == pytest.approx(-1.0)
    assert gains[1] == pytest.approx(-3.0)  # the caller's normal turns come down 3 dB
    capped = piece_gains_db(d, [-2.0] * 7)  # would need 11 dB: capped, the limiter does the rest
    assert capped[1] == pytest.approx(-MAX_HEADROOM_DB)
    assert piece_gains_db(shouting_call(6), [-23.0] * 7)[1] == pytest.approx(6.0)


def test_caller_gain_raises_the_whole_caller_track() -> None:
    d = labelled([say("agent"), say("caller"), say("agent"), say("caller")], caller_gain_db=8)
    assert piece_gains_db(d, [-12.0] * 4) == [0.0, 8.0, 0.0, 8.0]


def test_the_soft_limiter_never_reaches_full_scale() -> None:
    signal = np.linspace(-4, 4, 10_001)
    limited = soft_limit(signal)
    assert np.max(np.abs(limited)) < 1.0
    quiet = np.abs(signal) <= LIMITER_KNEE
    assert np.array_equal(limited[quiet], signal[quiet])
    assert np.all(np.diff(limited) >= 0)  # monotonic: no fold-over distortion


@pytest.mark.parametrize("color", ["white", "pink"])
@pytest.mark.parametrize("snr", SNRS_DB)
def test_the_line_noise_sits_snr_below_speech(color: Any, snr: int) -> None:
    line = phone_line(np.zeros(8 * 4000), snr, color, seed=3)
    assert len(line) == 2 * 8 * 4000
    assert level_dbfs(line) == pytest.approx(SPEECH_DBFS - snr, abs=0.6)
    assert ulaw_decode(ulaw_encode(line)) == line  # already on the mu-law grid
    assert phone_line(np.zeros(8 * 4000), snr, color, seed=3) == line
    assert phone_line(np.zeros(8 * 4000), snr, color, seed=4) != line


def test_the_line_keeps_both_tracks_the_same_length() -> None:
    d = labelled([say("agent"), say("caller", overlap_ms=400), say("agent")])
    lay = layout(d, [3000, 1200, 2500])
    tracks = mix(lay, [tone(3000), tone(1200), tone(2500)], [0.0, 0.0, 0.0])
    inbound = phone_line(tracks["inbound"], 20, "pink", 1)
    outbound = phone_line(tracks["outbound"], 20, "pink", 2)
    assert len(inbound) == len(outbound) == 2 * 8 * lay.duration_ms


# --- voices -------------------------------------------------------------------------------------


def test_voices_are_drawn_per_call_and_the_agent_is_the_same_in_every_playing() -> None:
    ids = [f"dev-x-{n:03d}" for n in range(60)]
    neural = [call_voices(i, "neural") for i in ids]
    assert [call_voices(i, "neural") for i in ids] == neural
    assert {v.caller.name for v in neural} == {"joe", "heart"}
    assert all(v.caller.name != v.agent.name for v in neural)
    assert {v.snr_db for v in neural} == set(SNRS_DB)
    assert {v.noise for v in neural} == {"white", "pink"}
    for i in ids:
        assert len({call_voices(i, p).agent for p in PLAYINGS}) == 1
    assert {call_voices(i, "flite").caller.name for i in ids} == {"slt", "rms", "awb", "kal16"}
    assert {call_voices(i, "espeak").caller.synth for i in ids} == {"espeak"}


def test_neural_callers_vary_within_their_ranges() -> None:
    callers = [call_voices(f"dev-x-{n}", "neural").caller for n in range(80)]
    assert all(-250 <= v.pitch_cents <= 250 for v in callers)
    assert all(0.92 <= v.tempo <= 1.08 for v in callers)
    for v in callers:
        params = dict(v.params)
        if v.synth == "piper":
            assert 0.85 <= params["length_scale"] <= 1.15
            assert 0.5 <= params["noise_scale"] <= 0.8
            assert 0.6 <= params["noise_w"] <= 0.9
        else:
            assert 1 / 1.15 - 0.001 <= params["speed"] <= 1 / 0.85 + 0.001
    assert len({v.pitch_cents for v in callers}) > 40


def test_word_accuracy_counts_edits() -> None:
    from bench.word_accuracy import word_accuracy

    assert word_accuracy("Yeah, that's fine.", "yeah that's fine") == (3, 0)
    assert word_accuracy("I want to speak to a manager", "I want to speak a manager") == (7, 1)
    assert word_accuracy("no thanks", "no thanks at all") == (2, 2)


# --- the committed files ------------------------------------------------------------------------

FILES = sorted(DIALOGUES_DIR.glob("*.json"))


@pytest.mark.parametrize(
    "path",
    FILES or [pytest.param(None, marks=pytest.mark.skip(reason="no dialogue files yet"))],
    ids=[p.name for p in FILES] or ["none"],
)
def test_committed_dialogue_files_load(path: Path) -> None:
    dialogues = load_file(path)
    assert dialogues, f"{path.name} has no calls"
    part = path.name.split("-", 1)[0]
    assert all(d.part == part for d in dialogues)


@pytest.mark.parametrize("part", ["dev", "test"])
def test_each_part_loads_whole(part: Any) -> None:
    if not any(DIALOGUES_DIR.glob(f"{part}-*.json")):
        pytest.skip(f"no {part} dialogue files yet")
    dialogues = load_part(part)
    assert len({d.id for d in dialogues}) == len(dialogues)
