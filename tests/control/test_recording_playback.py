"""A recording's audio through the control plane, against a fake SignalWire whose media URLs,
like the real ones, need no credentials and take no Range: roles, seeking, audit, other orgs."""

from __future__ import annotations

import os
import uuid

import aiohttp

from server.app import RunningServer
from storage import recordings
from storage.db import Pool
from tests.control.test_api_access import new_call
from tests.support.accounts import Org, make_org
from tests.support.fake_signalwire import Fail, FakeSignalWire

AUDIO = b"RIFF" + os.urandom(200_000)  # what SignalWire serves: its bytes, whatever they are


async def recorded(pool: Pool, org: Org, fake: FakeSignalWire, *, url: str | None = "") -> str:
    """A completed recording of a new call of the org, as SignalWire's callback reports it."""
    call_id = await new_call(pool, org)
    call_sid = await pool.fetchval("SELECT call_sid FROM calls WHERE id = $1", call_id)
    sid = f"RE{uuid.uuid4().hex}"
    fake.recording_media[sid] = AUDIO
    assert await recordings.apply_status(
        pool, call_sid=call_sid, recording_sid=sid, status="completed",
        url=fake.recording_url(sid) if url == "" else url, duration_s=12, channels=2,
    )  # fmt: skip
    return sid


async def listen(
    srv: RunningServer, org: Org, role: str, sid: str, headers: dict[str, str] | None = None,
    query: str = "",
) -> tuple[int, bytes, dict[str, str]]:  # fmt: skip
    auth = org.bearer(role)  # type: ignore[arg-type]
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{srv.http_url}/api/recordings/{sid}/audio{query}", headers={**auth, **(headers or {})}
        ) as resp,
    ):
        return resp.status, await resp.read(), dict(resp.headers)


async def test_a_recording_plays_whole_and_seeks_for_roles_that_may_listen_and_is_audited(
    wired: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org = await make_org(pool, "Playback org")
    sid = await recorded(pool, org, fake)
    status, body, headers = await listen(wired, org, "viewer", sid)
    assert status == 403
    status, body, headers = await listen(wired, org, "analyst", sid)
    assert (status, body) == (200, AUDIO)
    assert headers["Content-Type"] == "audio/wav" and headers["Accept-Ranges"] == "bytes"
    assert headers["Cache-Control"] == "private, no-store"
    # Seeking: SignalWire's side sends it all; the player gets just the bytes it asked for.
    for asked, first, last in (("bytes=1000-1999", 1000, 1999), ("bytes=-500", 199_504, 200_003),
                               ("bytes=150000-", 150_000, 200_003)):  # fmt: skip
        status, body, headers = await listen(wired, org, "operator", sid, {"Range": asked})
        assert status == 206, asked
        assert body == AUDIO[first : last + 1]
        assert headers["Content-Range"] == f"bytes {first}-{last}/{len(AUDIO)}"
    status, body, headers = await listen(wired, org, "owner", sid, {"Range": "bytes=900000-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(AUDIO)}"
    status, body, _ = await listen(wired, org, "owner", sid, query="?format=mp3")
    assert status == 200 and body == AUDIO
    assert fake.requests_for("media")[-1].path.endswith(f"/Recordings/{sid}.mp3")
    # The media URL was never given out: the browser's only way in is this route.
    audits = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE org_id = $1 AND action = 'recording.listen' "
        "AND resource_id = $2",
        org.id, sid,
    )  # fmt: skip
    assert audits == 6  # every play, the refused range included; not the viewer's refusal


async def test_other_orgs_unknown_and_unready_recordings_are_refused_with_the_one_shape(
    wired: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org, other = await make_org(pool, "Listener"), await make_org(pool, "Owner of it")
    theirs = await recorded(pool, other, fake)
    for sid in (theirs, "RE-no-such", "not a sid!"):
        status, body, _ = await listen(wired, org, "owner", sid)
        assert status == 404, sid
    unready = await recorded(pool, org, fake, url=None)
    status, body, _ = await listen(wired, org, "owner", unready)
    assert status == 409 and b"RECORDING_NOT_READY" in body
    status, body, _ = await listen(wired, org, "owner", unready, query="?format=ogg")
    assert status == 422
    # A URL that is not this space's recording is not fetched (it came from a callback).
    elsewhere = await recorded(pool, org, fake, url="http://169.254.169.254/latest/meta-data")
    status, body, _ = await listen(wired, org, "owner", elsewhere)
    assert status == 502 and b"RECORDING_UNAVAILABLE" in body
    gone = await recorded(pool, org, fake)
    del fake.recording_media[gone]  # deleted at SignalWire
    status, body, _ = await listen(wired, org, "owner", gone)
    assert status == 502


async def test_without_signalwire_configured_the_audio_cannot_be_fetched(
    srv: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org = await make_org(pool, "Unconfigured")
    sid = await recorded(pool, org, fake)
    status, body, _ = await listen(srv, org, "owner", sid)
    assert status == 503 and b"SIGNALWIRE_CONFIG_MISSING" in body
    status, _, _ = await listen(srv, org, "owner", "RE-no-such")
    assert status == 404  # what is wrong with the request first, configuration last


async def test_a_recording_is_deleted_at_signalwire_then_here_by_admins_and_audited(
    wired: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org, other = await make_org(pool, "Deleting org"), await make_org(pool, "Not theirs")
    sid, theirs = await recorded(pool, org, fake), await recorded(pool, other, fake)

    async def delete(role: str, recording_sid: str) -> int:
        auth = org.bearer(role)  # type: ignore[arg-type]
        async with (
            aiohttp.ClientSession() as http,
            http.delete(f"{wired.http_url}/api/recordings/{recording_sid}", headers=auth) as r,
        ):
            return r.status

    assert await delete("operator", sid) == 403
    assert await delete("admin", theirs) == 404 and theirs in fake.recording_media
    # SignalWire fails: nothing is forgotten here, so it can be tried again.
    fake.script("delete_recording", [Fail(500)] * 4)
    assert await delete("admin", sid) == 502
    assert await pool.fetchval("SELECT count(*) FROM recordings WHERE recording_sid = $1", sid)
    assert await delete("admin", sid) == 204
    assert sid not in fake.recording_media
    assert fake.requests_for("delete_recording")[-1].headers["Authorization"].startswith("Basic ")
    assert not await pool.fetchval("SELECT count(*) FROM recordings WHERE recording_sid = $1", sid)
    assert (await listen(wired, org, "owner", sid))[0] == 404
    assert await delete("owner", sid) == 404
    actions = await pool.fetch(
        "SELECT action FROM audit_log WHERE org_id = $1 AND resource_id = $2", org.id, sid
    )
    assert [a["action"] for a in actions] == ["recording.delete"]
