"""bench.live_eval's live path on two short synthetic calls, through the real server (no
transcription, no synthesizer): each call's result comes back from Postgres, keyed to it."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp
import numpy as np

from bench.detector_eval import report
from bench.dialogue_audio import KeyPress, RenderedCall
from bench.dialogues import Dialogue, parse_call
from bench.live_eval import LiveServer, consent_mode, run_calls, setup_orgs
from server.app import RunningServer
from storage.db import Pool
from tests.conftest import timeout
from tests.support.numbers import new_number

RATE = 8000
CALL_MS = 2500
PRESS_MS = 1200


def dialogue(call_id: str, request: str, key: str, **expect: Any) -> Dialogue:
    labels: dict[str, Any] = {
        "consent": None, "escalations": [], "raised_voice": False, "dead_air": False,
        "talk_over": False, "operator_key": key == "0",
    }  # fmt: skip
    played = "Calls are recorded. Press 1 to agree or 2 to refuse." if request != "none" else None
    raw = {
        "id": call_id, "situation": "billing", "consent_request": request, "played": played,
        "turns": [{"who": "caller", "press": key}], "expect": {**labels, **expect},
    }  # fmt: skip
    return parse_call(raw, "dev")


def rendered(call: Dialogue, key: str) -> RenderedCall:
    """A quiet tone on the outbound track for the first second (where a played prompt sits),
    silence on the caller's, and the key pressed at PRESS_MS."""
    t = np.arange(CALL_MS * RATE // 1000) / RATE
    outbound = np.where(t < 1.0, 0.03 * np.sin(2 * math.pi * 440 * t), 0.0)
    return RenderedCall(
        call_id=call.id,
        playing="neural",
        inbound=np.zeros(len(t), "<i2").tobytes(),
        outbound=np.round(outbound * 32767).astype("<i2").tobytes(),
        presses=(KeyPress(PRESS_MS, "inbound", key),),
        turns=(),
        voices={},
        snr_db=30,
        noise="white",
    )


async def test_each_call_comes_back_with_what_the_server_stored(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]], pool: Pool
) -> None:
    operator = dialogue("dev-live-operator", "none", "0")
    refusal = dialogue("dev-live-keypad", "played_keypad", "2", consent="refused")
    assert (consent_mode(operator), consent_mode(refusal)) == ("speech", "keypad")
    numbers = await setup_orgs(pool, new_number)
    calls = [(operator, rendered(operator, "0")), (refusal, rendered(refusal, "2"))]
    async with start_server(transcription_engine="none") as srv:
        server = LiveServer(srv.public_url, srv.settings.secret("signalwire_signing_key"), srv.dsn)
        async with aiohttp.ClientSession() as http, asyncio.timeout(timeout(20)):
            results, failures = await run_calls(
                http, server, numbers, calls, concurrency=2, stagger_s=0.2, margin_s=timeout(15)
            )
    assert failures == []
    assert [r.call.id for r in results] == [operator.id, refusal.id]
    by_id = {r.call.id: r for r in results}
    # A 0 on the speech org's call: the operator key, and no verdict (nothing asked for one).
    assert by_id[operator.id].escalations == ["operator-key"]
    assert by_id[operator.id].consent is None
    # A 2 answering the keypad org's played <Gather>: refused, stored by the keypad detector.
    assert by_id[refusal.id].consent == "refused"
    assert by_id[refusal.id].escalations == []
    assert all(r.heard == [] for r in results)  # no transcription engine
    lines = report(results)
    [operator_row] = [line for line in lines if line.startswith("operator-key")]
    assert operator_row.split()[1:4] == ["1", "1", "1"]  # expected, raised, right
    [refused_row] = [line for line in lines if line.startswith("consent refused")]
    assert refused_row.split()[2:5] == ["1", "1", "1"]
