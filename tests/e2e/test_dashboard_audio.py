"""The dashboard's Audio view in real headless Chromium, against the real server.

An operator uploads audio through the form (a text file refused first, the server's reason
shown, then a real MP3, listed with its length), plays it (the page's player reads the clip's
WAV from the API with the session, under the page's CSP), renders words with the server's
offline Piper voice (rendered once: the same words again are the same clip), is refused
deleting a clip a campaign plays (told what plays it) and deletes one nothing plays. An analyst
plays clips without managing them; a viewer is not offered the view. An admin sets the voice
the org's prompts are said in; an operator reads it without the form. Every click is checked
where it lands: Postgres and its audit log.

The browser fixtures are test_dashboard's (same Chromium, same console watch); as there, the
tests take `chromium, srv, pool, dashboard` in that order.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from playwright.async_api import Locator, Page, expect

from server.app import RunningServer
from storage.db import Pool
from tests.e2e import test_dashboard as shared
from tests.e2e.test_dashboard import Dashboard, ms, sign_in, user_id
from tests.e2e.test_dashboard_campaigns import audited, call_api, open_view, problems, sign_out
from tests.support.accounts import make_org
from tests.support.audio_files import encoded_speech

# The browser fixtures, shared (bound here by name so that pytest finds them in this module).
chromium = shared.chromium
browser = shared.browser
dashboard = shared.dashboard

WORDS = "Thank you for calling Acme. This call may be recorded."
REFUSED_UPLOAD = (422, "/api/audio")
"""The text file, refused on purpose."""


def length(duration_ms: int) -> str:
    """A clip's length as the page writes it: seconds to the tenth, halves rounded up."""
    tenths = (duration_ms + 50) // 100
    return f"{tenths // 10}.{tenths % 10} s"


def clip_item(page: Page, clip_id: uuid.UUID) -> Locator:
    return page.locator(f'#audio-list li[data-clip-id="{clip_id}"]')


async def test_an_operator_uploads_plays_renders_and_deletes_clips_a_viewer_is_not_offered_them(
    chromium: str, srv: RunningServer, pool: Pool, dashboard: Dashboard, tmp_path: Path
) -> None:
    page = dashboard.page
    org = await make_org(pool, "Dashboard audio")
    operator = org.emails["operator"]
    await sign_in(page, srv, operator)
    await open_view(page, "Audio")
    await expect(page.locator("#audio-empty")).to_have_text("No audio clips yet.")
    await expect(page.locator("#org-voice-current")).to_have_text(
        "Prompts are said by SignalWire's <Say>."
    )
    await expect(page.locator("#org-voice-form")).to_be_hidden()  # owners and admins choose it
    # The org's voice renders nothing: words are rendered with an engine the server has.
    await expect(page.get_by_label("Render with")).to_have_value("piper")
    actor = await user_id(pool, operator)
    clips = "SELECT count(*) FROM audio_clips WHERE org_id = $1"

    # A text file: refused by its content, the server's reason in an alert.
    notes = tmp_path / "notes.txt"
    notes.write_text("Remember to record the greeting.\n")
    file_input = page.get_by_label("Audio file")
    upload = page.get_by_role("button", name="Upload")
    error = page.locator("#upload-audio-error")
    await file_input.set_input_files(notes)
    await upload.click()
    await expect(error).to_have_text(
        "Could not upload notes.txt: the file is not WAV, MP3, OGG or M4A audio (by its content)"
    )
    await expect(error).to_have_attribute("role", "alert")
    await expect(file_input).to_have_attribute("aria-invalid", "true")
    assert await pool.fetchval(clips, org.id) == 0

    # A real MP3 (9.2 s of speech), named on the form: converted, listed with its length.
    mp3 = tmp_path / "greeting.mp3"
    mp3.write_bytes(encoded_speech("mp3"))
    await file_input.set_input_files(mp3)
    await page.get_by_label("Clip name (optional)").fill("Welcome")
    await upload.click()
    outcome = page.locator("#upload-audio-outcome")
    await expect(outcome).to_have_text(re.compile(r"^“Welcome” uploaded \(\d+\.\d s\)\.$"))
    await expect(error).to_be_hidden()
    await expect(file_input).not_to_have_attribute("aria-invalid", "true")
    await expect(file_input).to_have_value("")  # the form is ready for the next one
    stored = await pool.fetchrow(
        """SELECT id, source, name, uploaded_type, duration_ms, created_by FROM audio_clips
           WHERE org_id = $1""",
        org.id,
    )
    assert stored is not None
    welcome: uuid.UUID = stored["id"]
    assert 9_000 <= stored["duration_ms"] <= 9_400, stored["duration_ms"]
    assert (stored["source"], stored["name"], stored["uploaded_type"], stored["created_by"]) == (
        "upload", "Welcome", "mp3", f"user:{actor}",
    )  # fmt: skip
    assert await audited(pool, "audio.upload", str(welcome), actor) == 1
    await expect(outcome).to_have_text(f"“Welcome” uploaded ({length(stored['duration_ms'])}).")
    item = clip_item(page, welcome)
    await expect(item.locator(".clip-name")).to_have_text("Welcome")
    await expect(item.locator(".clip-source")).to_have_text("MP3 file")
    await expect(item.locator(".clip-length")).to_have_text(length(stored["duration_ms"]))
    await expect(item.locator(".clip-created")).to_contain_text("uploaded")
    await expect(page.locator("#audio-count")).to_have_text("(1)")
    await expect(page.locator("#audio-empty")).to_be_hidden()

    # Its player: the clip's WAV from the API, with the page's session, under its CSP.
    player = item.get_by_label("Play Welcome")
    await expect(player).to_have_attribute("src", f"/api/audio/{welcome}/content")
    await expect(player).to_have_attribute("controls", "")
    await expect(player).to_have_attribute("preload", "none")  # read when played
    await player.evaluate("(audio) => { audio.preload = 'metadata'; audio.load(); }")
    await page.wait_for_function(
        "(audio) => audio.readyState >= 1 && audio.duration > 0",
        arg=await player.element_handle(),
        timeout=ms(10),
    )
    played = await player.evaluate("(audio) => audio.duration")
    assert abs(played - stored["duration_ms"] / 1000) < 0.05, played  # the WAV's header, read

    # Words rendered by the offline voice (its first render loads the model: seconds).
    await page.get_by_label("Words to say").fill(WORDS)
    render = page.get_by_role("button", name="Render")
    await render.click()
    rendered = page.locator("#render-audio-outcome")
    await expect(rendered).to_have_text(
        re.compile(rf"^Rendered “{re.escape(WORDS)}” \(\d+\.\d s\)\.$"), timeout=ms(30)
    )
    await expect(page.locator("#render-audio-error")).to_be_hidden()
    voiced = await pool.fetchrow(
        """SELECT id, name, engine, voice, text, duration_ms FROM audio_clips
           WHERE org_id = $1 AND source = 'voice'""",
        org.id,
    )
    assert voiced is not None
    assert (voiced["engine"], voiced["voice"], voiced["text"], voiced["name"]) == (
        "piper", None, WORDS, WORDS,
    )  # fmt: skip
    assert voiced["duration_ms"] > 1_000
    spoken = clip_item(page, voiced["id"])
    await expect(page.locator("#audio-list li")).to_have_count(2)
    await expect(page.locator("#audio-list li").first).to_have_attribute(
        "data-clip-id", str(voiced["id"])
    )  # newest first
    await expect(spoken.locator(".clip-source")).to_have_text("Piper voice")
    await expect(spoken.locator(".clip-length")).to_have_text(length(voiced["duration_ms"]))
    await expect(spoken.locator(".clip-created")).to_contain_text("rendered")
    await expect(spoken.get_by_label(f"Play {WORDS}")).to_have_attribute(
        "src", f"/api/audio/{voiced['id']}/content"
    )
    # The same words again: the clip rendered before, not another.
    await expect(page.get_by_label("Words to say")).to_have_value("")
    await page.get_by_label("Words to say").fill(WORDS)
    await render.click()
    await expect(rendered).to_have_text(
        f"Rendered before: “{WORDS}” ({length(voiced['duration_ms'])})."
    )
    await expect(page.locator("#audio-list li")).to_have_count(2)
    assert await pool.fetchval(clips, org.id) == 2

    # A clip a campaign plays is not deleted: the page says what plays it.
    await pool.execute("UPDATE organizations SET plan = 'enterprise' WHERE id = $1", org.id)
    status, campaign = await call_api(srv, org, "POST", "/api/campaigns", {
        "name": "Spring promo", "flow": {"play_clip": str(welcome)}, "from": org.number,
    })  # fmt: skip
    assert status == 201, campaign
    delete = item.get_by_role("button", name="Delete the clip Welcome")
    await delete.click()
    await expect(item.locator(".delete-confirm")).to_contain_text("Delete the clip “Welcome”?")
    await item.get_by_role("button", name="Delete clip").click()
    row_error = item.locator(".clip-error")
    await expect(row_error).to_have_text(
        "Could not delete “Welcome”: it is played by campaign Spring promo. "
        "Play something else there first."
    )
    await expect(row_error).to_have_attribute("role", "alert")
    await expect(item.locator(".delete-confirm")).to_be_hidden()
    await expect(delete).to_be_focused()
    assert await pool.fetchval(clips, org.id) == 2
    assert await audited(pool, "audio.delete", str(welcome), actor) == 0

    # The rendered clip, once confirmed: gone from the page and from Postgres.
    delete = spoken.get_by_role("button", name=f"Delete the clip {WORDS}")
    await delete.click()
    await spoken.get_by_role("button", name="Keep it").click()
    await expect(delete).to_be_focused()
    await delete.click()
    await spoken.get_by_role("button", name="Delete clip").click()
    await expect(page.locator("#audio-outcome")).to_have_text(f"The clip “{WORDS}” is deleted.")
    await expect(spoken).to_have_count(0)
    await expect(page.locator("#audio-list li")).to_have_count(1)
    await expect(page.locator("#audio-count")).to_have_text("(1)")
    remaining = await pool.fetch("SELECT id FROM audio_clips WHERE org_id = $1", org.id)
    assert [r["id"] for r in remaining] == [welcome]
    assert await audited(pool, "audio.delete", str(voiced["id"]), actor) == 1
    refused = [REFUSED_UPLOAD, (409, f"/api/audio/{welcome}")]
    assert problems(dashboard, *refused) == [], dashboard.problems

    # An analyst plays clips, and neither uploads, renders nor deletes them.
    await sign_out(page)
    await sign_in(page, srv, org.emails["analyst"])
    await open_view(page, "Audio")
    await expect(item.locator(".clip-name")).to_have_text("Welcome")
    await expect(item.get_by_label("Play Welcome")).to_have_attribute(
        "src", f"/api/audio/{welcome}/content"
    )
    await expect(item.get_by_role("button")).to_have_count(0)
    await expect(page.locator("#upload-audio-panel")).to_be_hidden()
    await expect(page.locator("#render-audio-panel")).to_be_hidden()
    await expect(page.locator("#org-voice-form")).to_be_hidden()

    # A viewer may not read clips: not offered the view.
    await sign_out(page)
    await sign_in(page, srv, org.emails["viewer"])
    nav = page.get_by_role("navigation", name="Dashboard sections")
    await expect(nav.get_by_role("button", name="Calls")).to_have_attribute("aria-pressed", "true")
    await expect(nav.get_by_role("button", name="Audio")).to_have_count(0)
    await expect(page.locator("#audio-view")).to_be_hidden()
    await expect(page.locator("#audio-list li")).to_have_count(0)  # forgotten at sign-out
    assert problems(dashboard, *refused) == [], dashboard.problems


async def test_an_admin_sets_the_voice_of_the_orgs_prompts_an_operator_reads_it(
    chromium: str, srv: RunningServer, pool: Pool, dashboard: Dashboard
) -> None:
    page = dashboard.page
    org = await make_org(pool, "Dashboard voice")
    admin = org.emails["admin"]
    await sign_in(page, srv, admin)
    await open_view(page, "Audio")
    current = page.locator("#org-voice-current")
    await expect(current).to_have_text("Prompts are said by SignalWire's <Say>.")
    engine = page.get_by_label("Say prompts with")
    await expect(engine).to_have_value("say")
    # The engines this server has: SignalWire's own and the offline voice (no ElevenLabs key).
    await expect(engine.locator("option")).to_have_text(["SignalWire's <Say>", "Piper"])
    await expect(page.get_by_label("Render with").locator("option")).to_have_text(["Piper"])

    await engine.select_option("piper")
    await page.get_by_role("button", name="Save voice").click()
    await expect(page.locator("#org-voice-outcome")).to_have_text(
        "Saved. Prompts are rendered by Piper, its default voice."
    )
    await expect(page.locator("#org-voice-error")).to_be_hidden()
    await expect(current).to_have_text("Prompts are rendered by Piper, its default voice.")
    row = await pool.fetchrow(
        "SELECT voice_engine, voice_name FROM organizations WHERE id = $1", org.id
    )
    assert row is not None
    assert dict(row) == {"voice_engine": "piper", "voice_name": None}
    assert await audited(pool, "org.voice.set", str(org.id), await user_id(pool, admin)) == 1
    # Words may now be rendered in the org's own voice.
    await expect(page.get_by_label("Render with").locator("option")).to_have_text(
        ["The organization's voice (Piper)", "Piper"]
    )
    await expect(page.get_by_label("Render with")).to_have_value("")

    # An operator reads the voice, and is not offered the setting.
    await sign_out(page)
    await sign_in(page, srv, org.emails["operator"])
    await open_view(page, "Audio")
    await expect(current).to_have_text("Prompts are rendered by Piper, its default voice.")
    await expect(page.locator("#org-voice-form")).to_be_hidden()
    await expect(page.locator("#upload-audio-panel")).to_be_visible()
    assert dashboard.problems == [], dashboard.problems
