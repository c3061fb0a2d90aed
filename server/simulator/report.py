"""What the server stored for a simulated call, once the media plane has finished with it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg

from storage.calls import call_report
from storage.event_writer import NOTIFY_CHANNEL


async def wait_for_streams_done(dsn: str, call_sid: str, timeout_s: float) -> dict[str, Any]:
    """Waits (bounded) until every stream of the call has its StreamStopped in Postgres, which
    the media plane writes after the stream's last transcript segment; returns the report."""
    conn = await asyncpg.connect(dsn)
    try:
        changed = asyncio.Event()

        def on_notify(_c: object, _pid: int, _channel: str, payload: object) -> None:
            if isinstance(payload, str) and json.loads(payload).get("type") == "stream_stopped":
                changed.set()

        await conn.add_listener(NOTIFY_CHANNEL, on_notify)
        async with asyncio.timeout(timeout_s):
            while True:
                changed.clear()
                done = await conn.fetchval(
                    """SELECT count(*) > 0 AND bool_and(s.end_reason IS NOT NULL)
                       FROM media_streams s JOIN calls c ON c.id = s.call_id
                       WHERE c.call_sid = $1""",
                    call_sid,
                )
                if done:
                    break
                await changed.wait()
        report = await call_report(conn, call_sid)
        assert report is not None
        return report
    finally:
        await conn.close()


def format_report(report: dict[str, Any]) -> str:
    call = report["call"]
    lines = [
        f"call {call['call_sid']}  status={call['status']}  from={call['from_number']}  "
        f"to={call['to_number']}  audio_lost_ms={call['audio_lost_ms']}  "
        f"utterances_skipped={call['utterances_skipped']}"
    ]
    for s in report["streams"]:
        lines.append(
            f"  stream {s['stream_sid']}  {s['codec']}@{s['sample_rate']}  "
            f"frames in/out={s['frames_received_inbound']}/{s['frames_received_outbound']}  "
            f"lost={s['frames_lost_inbound'] + s['frames_lost_outbound']}  "
            f"ended={s['end_reason']}"
            + (f"  restarted after {s['restarted_after']}" if s.get("restarted_after") else "")
        )
    for seg in report["transcript"]:
        start = seg["start_ms"] / 1000
        lines.append(f"  [{start:7.2f}s] {seg['speaker']:>6}: {seg['text']}")
    if not report["transcript"]:
        lines.append("  (no transcript)")
    consent = {True: "granted", False: "refused", None: "not given"}[call["recording_consent"]]
    lines.append(
        f"  consent: {consent} ({call['consent_rule']} rule"
        + (f", by {call['consent_verified_by']}" if call["consent_verified_by"] else "")
        + ")"
    )
    for e in report["escalations"]:
        lines.append(
            f"  escalation [{e['start_ms'] / 1000:7.2f}s] {e['severity']} {e['rule_name']}: "
            f"{e['evidence']}"
        )
    return "\n".join(lines)
