"""Audio clips through the API on a real server and Postgres: uploads in each format, known by
their content and converted with a real decoder, prompts rendered by the offline voice, and the
signed URLs SignalWire plays them from."""

from __future__ import annotations

import hmac
import re
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp

from control.permissions import Role
from control.play_urls import PlayUrls
from server.app import RunningServer
from storage.db import Pool
from tests.control.test_surveys import post_signed
from tests.control.test_targets_api import call_api
from tests.support.accounts import Org, make_org
from tests.support.audio_files import FORMATS, encoded_speech, telephony_header


async def upload(
    srv: RunningServer, org: Org, data: bytes, filename: str = "prompt.bin",
    role: Role = "operator", name: str | None = None,
) -> tuple[int, Any]:  # fmt: skip
    form = aiohttp.FormData()
    form.add_field("file", data, filename=filename, content_type="application/octet-stream")
    if name is not None:
        form.add_field("name", name)
    async with (
        aiohttp.ClientSession() as http,
        http.post(srv.http_url + "/api/audio", data=form, headers=org.bearer(role)) as resp,
    ):
        return resp.status, await resp.json()


async def test_each_format_is_known_by_its_content_and_played_from_a_signed_url(
    srv: RunningServer, pool: Pool
) -> None:
    org = await make_org(pool, "Audio org")
    for kind in FORMATS:
        # Named as something else: what the file is comes from its bytes.
        status, clip = await upload(srv, org, encoded_speech(kind), filename="x.txt", name=kind)
        assert status == 201, clip
        assert (clip["source"], clip["uploaded_type"], clip["name"]) == ("upload", kind, kind)
        assert 9_000 <= clip["duration_ms"] <= 9_400, (kind, clip["duration_ms"])
        status, found = await call_api(srv, org, "GET", f"/api/audio/{clip['id']}", role="analyst")
        assert status == 200
        async with aiohttp.ClientSession() as http, http.get(found["play_url"]) as resp:
            assert resp.status == 200 and resp.content_type == "audio/wav"
            wav = await resp.read()
        assert telephony_header(wav) == (7, 1, 8000)  # mu-law, mono, 8 kHz


async def test_what_is_not_audio_or_too_much_of_it_is_refused_with_a_clear_error(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]], pool: Pool
) -> None:
    org = await make_org(pool, "Refused audio org")
    async with start_server(audio_max_bytes=200_000, audio_max_seconds=5) as srv:
        refusals = [
            (b"Dear customer, thank you for calling.", "prompt.mp3", 422, "UNSUPPORTED_AUDIO"),
            (b"\x89PNG\r\n\x1a\n" + bytes(100), "prompt.wav", 422, "UNSUPPORTED_AUDIO"),
            (b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(500), "a.mp3", 422, "UNREADABLE_AUDIO"),
            (encoded_speech("m4a")[:300], "cut.m4a", 422, "UNREADABLE_AUDIO"),
            (encoded_speech("mp3"), "long.mp3", 422, "AUDIO_TOO_LONG"),  # 9.2 s of 5
            (encoded_speech("wav"), "big.wav", 413, "AUDIO_TOO_LARGE"),  # 800 kB of 200
            (b"", "empty.wav", 422, "VALIDATION_FAILED"),
        ]  # fmt: skip
        for data, filename, status, code in refusals:
            answer = await upload(srv, org, data, filename)
            assert (answer[0], answer[1]["error"]["code"]) == (status, code), filename
            assert answer[1]["error"]["request_id"]
        status, answer = await call_api(srv, org, "POST", "/api/audio", body={"file": "x"})
        assert (status, answer["error"]["code"]) == (415, "UNSUPPORTED_MEDIA_TYPE")
        form = aiohttp.FormData()
        form.add_field("name", "no file")
        form.add_field("other", b"x", filename="x")
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{srv.http_url}/api/audio", data=form,
                      headers=org.bearer("operator")) as resp,
        ):  # fmt: skip
            assert resp.status == 422
            assert (await resp.json())["error"]["details"]["fields"][0]["field"] == "file"
        assert (
            await pool.fetchval("SELECT count(*) FROM audio_clips WHERE org_id = $1", org.id) == 0
        )


async def test_a_play_url_works_for_its_clip_only_and_until_it_expires(
    srv: RunningServer, pool: Pool
) -> None:
    org, other = await make_org(pool, "Signed org"), await make_org(pool, "Other org")
    status, clip = await upload(srv, org, encoded_speech("ogg"))
    assert status == 201
    _, theirs = await upload(srv, other, encoded_speech("wav"))
    status, found = await call_api(srv, org, "GET", f"/api/audio/{clip['id']}")
    url = found["play_url"]
    secret = hmac.digest(srv.settings.secret("stream_token_secret").encode(),
                         b"voxsouth play urls", "sha256")  # fmt: skip
    urls = PlayUrls(secret, srv.public_url)
    clip_id = uuid.UUID(clip["id"])
    async with aiohttp.ClientSession() as http:
        for bad in (
            url.replace(clip["id"], theirs["id"]),  # another clip, this clip's signature
            url[:-4] + ("0000" if not url.endswith("0000") else "1111"),
            url.split("&signature")[0],
            urls.url(clip_id, now=time.time() - 7200),  # expired an hour ago
        ):
            async with http.get(bad) as resp:
                assert resp.status == 403, bad
                assert (await resp.json())["error"]["code"] == "BAD_SIGNATURE"
        async with http.get(urls.url(uuid.uuid4())) as resp:
            assert resp.status == 404  # signed, but no such clip
        async with http.get(url) as resp:
            assert resp.status == 200
    # Through the API, another org's clip is not there at all.
    for method, path in (("GET", f"/api/audio/{theirs['id']}"),
                         ("GET", f"/api/audio/{theirs['id']}/content"),
                         ("DELETE", f"/api/audio/{theirs['id']}")):  # fmt: skip
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, srv.http_url + path, headers=org.bearer("admin")) as resp,
        ):
            assert resp.status == 404, path
    status, listed = await call_api(srv, org, "GET", "/api/audio", role="analyst")
    assert [c["id"] for c in listed["clips"]] == [clip["id"]]
    assert (await call_api(srv, org, "GET", "/api/audio", role="viewer"))[0] == 403
    assert (await upload(srv, org, encoded_speech("ogg"), role="analyst"))[0] == 403


async def test_the_orgs_voice_says_its_prompts_and_clips_play_in_surveys_and_campaigns(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]], pool: Pool
) -> None:
    # A first render waits on Piper loading: allowed plenty here, where the machine is shared.
    async with start_server(prompt_render_wait_s=10) as srv:
        await voiced_calls(srv, pool)


async def voiced_calls(srv: RunningServer, pool: Pool) -> None:
    org = await make_org(pool, "Voiced calls org")
    status, voice = await call_api(srv, org, "GET", "/api/org/voice", role="viewer")
    assert voice == {"engine": "say", "voice": None, "engines": ["say", "piper"]}
    assert (await call_api(srv, org, "PUT", "/api/org/voice", role="operator",
                           body={"engine": "piper"}))[0] == 403  # fmt: skip
    status, refused = await call_api(srv, org, "PUT", "/api/org/voice", role="admin",
                                     body={"engine": "elevenlabs"})  # fmt: skip
    assert (status, refused["error"]["details"]["fields"][0]["field"]) == (422, "engine")
    caller = {"CallSid": str(uuid.uuid4()), "AccountSid": str(uuid.uuid4()),
              "From": "+17065550142", "To": org.number, "Direction": "inbound",
              "CallStatus": "ringing"}  # fmt: skip
    status, laml = await post_signed(srv, f"{srv.public_url}/laml/voice", caller)
    assert "<Say>This call may be recorded" in laml and "<Play>" not in laml
    status, voice = await call_api(srv, org, "PUT", "/api/org/voice", role="admin",
                                   body={"engine": "piper"})  # fmt: skip
    assert (status, voice["engine"]) == (200, "piper")
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE org_id = $1 AND action = 'org.voice.set'", org.id
        )
        == 1
    )
    voiced = {**caller, "CallSid": str(uuid.uuid4())}
    status, laml = await post_signed(srv, f"{srv.public_url}/laml/voice", voiced)
    played = re.findall(r"<Play>([^<]+)</Play>", laml)
    assert len(played) == 1 and "<Say>" not in laml, laml
    async with aiohttp.ClientSession() as http, http.get(played[0].replace("&amp;", "&")) as resp:
        assert resp.status == 200 and telephony_header(await resp.read()) == (7, 1, 8000)
    disclosure = await pool.fetchrow(
        "SELECT engine, text FROM audio_clips WHERE org_id = $1", org.id
    )
    assert disclosure is not None
    assert (disclosure["engine"], disclosure["text"]) == ("piper", srv.settings.disclosure_text)
    status, report = await call_api(srv, org, "GET", "/api/health/dependencies", role="admin")
    assert report["tts"]["piper"]["last_error"] is None
    assert report["tts"]["piper"]["last_latency_ms"] is not None
    # Words rendered on request come from the cache when they were rendered before.
    status, rendered = await call_api(srv, org, "POST", "/api/audio/speech",
                                      body={"text": srv.settings.disclosure_text})  # fmt: skip
    assert status == 201 and rendered["source"] == "voice"
    assert await pool.fetchval("SELECT count(*) FROM audio_clips WHERE org_id = $1", org.id) == 1
    status, refused = await call_api(srv, org, "POST", "/api/audio/speech",
                                     body={"text": "Hello", "engine": "elevenlabs"})  # fmt: skip
    assert status == 422
    # An uploaded clip, played by a survey question and a campaign, cannot be deleted.
    _, clip = await upload(srv, org, encoded_speech("mp3"), name="Question one")
    await pool.execute("UPDATE organizations SET plan = 'enterprise' WHERE id = $1", org.id)
    status, survey = await call_api(srv, org, "POST", "/api/surveys", role="admin", body={
        "name": "Played", "questions": [{"kind": "yes_no", "prompt": "Was it solved?",
                                         "audio_clip": clip["id"]}],
    })  # fmt: skip
    assert status == 201, survey
    status, refused = await call_api(srv, org, "POST", "/api/surveys", role="admin", body={
        "name": "Bad", "questions": [{"kind": "yes_no", "prompt": "?",
                                      "audio_clip": str(uuid.uuid4())}],
    })  # fmt: skip
    assert refused["error"]["details"]["fields"][0]["field"] == "questions.0.audio_clip"
    status, laml = await post_signed(
        srv, f"{srv.public_url}/laml/survey?survey={survey['id']}", voiced
    )
    assert f"/audio/{clip['id']}.wav?expires=" in laml and "<Say>" not in laml
    campaign = {"name": "Reminders", "from": org.number, "flow": {"play_clip": clip["id"]}}
    status, made = await call_api(srv, org, "POST", "/api/campaigns", body=campaign)
    assert status == 201, made
    unknown = {**campaign, "flow": {"play_clip": str(uuid.uuid4())}}
    status, refused = await call_api(srv, org, "POST", "/api/campaigns", body=unknown)
    assert refused["error"]["details"]["fields"][0]["field"] == "flow.play_clip"
    status, in_use = await call_api(srv, org, "DELETE", f"/api/audio/{clip['id']}")
    assert status == 409
    assert sorted(in_use["error"]["details"]["used_by"]) == ["campaign Reminders", "survey Played"]
    assert (await call_api(srv, org, "DELETE", f"/api/audio/{rendered['id']}"))[0] == 204
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE org_id = $1 AND action = 'audio.delete'", org.id
        )
        == 1
    )
