"""Settings: environment variables prefixed `VOXSOUTH_` (and an optional `.env`), validated once.

`make serve` needs none of them. In development, missing secrets are generated into
`<data dir>/secrets/` (one file each, mode 0600, never logged) and reused on the next start.
Production (`VOXSOUTH_ENV=production`) refuses generated secrets, and needs public https/wss
URLs: SignalWire signs webhooks over the public URL and only connects to `wss://` streams.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from media.transcription.whisper import CONSENT_HOTWORDS, DEFAULT_WINDOW_S
from media.vad import EndpointerConfig

GENERATED_SECRETS = ("signalwire_signing_key", "stream_token_secret", "credentials_key")

PARTIAL_EVERY_MS = 400
"""Measured with `bench.alert_latency` at 1 call: the first partial on the feed p50/p95
0.67/1.25 s after the caller starts speaking, against 0.93/1.49 s at 600 ms."""


class SettingsError(Exception):
    """Invalid or missing settings; the message lists every problem, one per line."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VOXSOUTH_", env_file=".env", extra="ignore", frozen=True
    )

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path(".voxsouth")
    database_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("VOXSOUTH_DATABASE_URL", "DATABASE_URL")
    )
    db_pool_size: int = Field(default=10, ge=1, le=200)
    """Connections in each server process's pool; with several workers, fewer if they would not all
    fit Postgres's max_connections (server.connection_budget)."""
    workers: int = Field(default_factory=lambda: len(os.sched_getaffinity(0)), ge=1, le=256)
    """Server processes (`voxsouth serve --workers N`); by default the CPUs this process may run
    on. 1 serves in this one process; more start a parent that resolves and migrates the
    database and binds the ports once, then runs and restarts that many workers
    (server.workers), each with its own pool, lease and journal. A container's CPU quota does
    not narrow the CPUs counted here: set it to the CPU limit there."""
    worker_hang_s: float = Field(default=10.0, ge=3, le=600)
    """A worker whose event loop has not said it is alive for this long (it says so every
    second) is killed and replaced: hung, it would keep the calls routed to it unheard."""

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    media_host: str = "127.0.0.1"
    media_port: int = Field(default=8081, ge=0, le=65535)
    public_url: str | None = None
    """Base URL SignalWire uses for webhooks, e.g. https://voice.example.com."""
    media_public_url: str | None = None
    """The stream URL put in LaML, e.g. wss://voice.example.com/media."""

    signalwire_signing_key: SecretStr | None = None
    signalwire_space_url: str | None = None
    """e.g. https://example.signalwire.com; with the project id and API token it enables
    outbound calls (without them POST /api/calls answers 503 SIGNALWIRE_CONFIG_MISSING)."""
    signalwire_project_id: str | None = None
    signalwire_api_token: SecretStr | None = None
    stream_token_secret: SecretStr | None = None
    credentials_key: SecretStr | None = None
    """Seals the cloud service keys orgs bring (control.sealed) before they are stored; losing
    it loses those keys (orgs enter them again), changing it without re-sealing does the same."""
    stream_token_ttl_s: int = Field(default=300, ge=10, le=3600)
    media_start_timeout_s: float = Field(default=10.0, gt=0, le=120)
    """A media socket that sends no `start` within this is closed (1008, a client fault); the
    admission that follows has its own budget."""
    media_admission_timeout_s: float = Field(default=4.0, gt=0, le=60)
    """Budget for admitting a stream once its `start` arrived (token check, the call's lookup
    in Postgres); past it the stream is closed with 1013 "server busy, try again later" and
    counted as `admission_timeout`: the server is behind (loop busy, pool exhausted or
    Postgres not answering), not the client. Below the 5 s statement timeout, so a database
    that does not answer is refused as busy; one that refuses connections at once is admitted
    on the token alone, held until consent (server.call_policy.admit)."""
    media_transport: Literal["picows", "websockets"] = "picows"
    """The library carrying the media websockets: picows (Cython, the default: the cheaper per
    message, `bench.transports`, and `bench.streams` run with each) or websockets (pure Python,
    kept as a fallback). Both give the media plane the same protocol, close codes and limits."""
    media_max_streams: int = Field(default=300, ge=0)
    """New media streams past this many open on one process (a worker) are refused with 1013
    "server at capacity" (the call goes on: its LaML plays and dials; a stream resuming a call
    the process holds is let in). 0: no limit. bench.streams: 250 two-track streams keep real
    time on one core of this machine with transcription off, 500 do not."""
    media_max_loop_lag_ms: int = Field(default=100, ge=0)
    """New media streams are refused (1013 "server running behind") while the media loop runs
    this late, five samples in a row, 100 ms apart (media.loop_lag): every frame waits that
    long. One stall is not enough. 0: off."""
    drain_timeout_s: float = Field(default=0.0, ge=0, le=3600)
    """On SIGTERM, how long the server keeps carrying the streams already open (readiness
    failing: server.drain) before it stops; 0: stops at once. Under Kubernetes, keep it below
    terminationGracePeriodSeconds."""
    media_resume_grace_s: float = Field(default=15.0, ge=0, le=600)
    """How long a call whose media stream dropped keeps its place on this process for a
    stream that resumes it (a new stream for the call, or the same one reconnecting): its
    clock, detectors and content held for consent. Its consent verdict, if the detector has
    not reached one, waits as long."""
    voice_webhook_timeout_s: float = Field(default=5.0, gt=0, le=14)
    """Budget for the database work of each SignalWire voice webhook (control.webhooks): the
    voice webhook (the number's org, opening the call), the consent action and the call,
    stream and recording status callbacks. Past it, or with Postgres away, the caller is held
    and SignalWire asked for the call again (voice), the caller is asked again (consent), or
    the callback answered 503 (status callbacks). Twilio gives up on a webhook after 15 s;
    SignalWire's limit is not documented in docs/protocols.md, hence the margin."""

    smtp_host: str | None = None
    """The SMTP server email goes through (none: the server sends no email)."""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    translation_url: str | None = None
    """An OpenAI-compatible API (e.g. https://api.openai.com/v1) that translates transcripts
    after each call, for orgs that choose a language (none: nothing is translated)."""
    translation_api_key: SecretStr | None = None
    translation_model: str = "gpt-4o-mini"
    elevenlabs_api_key: SecretStr | None = None
    """Lets orgs have their prompts rendered in ElevenLabs voices (PUT /api/org/voice)."""
    elevenlabs_url: str = "https://api.elevenlabs.io"
    elevenlabs_model: str = "eleven_flash_v2_5"
    elevenlabs_voice: str = "21m00Tcm4TlvDq8ikWAM"
    """The ElevenLabs voice of an org that names none."""
    offline_voice: bool = True
    """Piper renders prompts offline, where it is installed (the `tts` extra)."""
    prompt_render_wait_s: float = Field(default=2.0, ge=0, le=10)
    """How long a voice webhook waits for a prompt's first render before the call hears the
    words through `<Say>` (the render goes on; later calls play it)."""
    audio_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=200 * 1024 * 1024)
    """The largest audio file `POST /api/audio` takes."""
    audio_max_seconds: float = Field(default=600.0, gt=0, le=7200)
    """The longest an uploaded file may play."""
    resend_api_key: SecretStr | None = None
    """Send email through Resend's HTTP API instead of SMTP."""
    resend_url: str = "https://api.resend.com"
    email_from: str = "Voxsouth <noreply@localhost>"
    email_every_s: float = Field(default=5.0, gt=0, le=3600)
    """How often each process sends the email due."""
    daily_summary_hour_utc: int = Field(default=7, ge=0, le=23)
    """From when (UTC) yesterday's summary goes to each org's owners and admins."""
    webhooks_allow_private: bool = False
    """Outbound webhooks may go to private and loopback addresses, and over http: for
    development only (refused in production)."""
    webhook_every_s: float = Field(default=1.0, gt=0, le=3600)
    """How often each process sends the outbound webhooks due."""
    dialler_every_s: float = Field(default=1.0, gt=0, le=3600)
    """How often each process's campaign dialler looks for targets due a call."""
    dialler_stale_after_s: float = Field(default=180.0, ge=1, le=3600)
    """A campaign attempt still being placed after this long, with no webhook of it, was never
    placed (its process died first): it is released and tried again. Longer than a call rings."""
    signalwire_calls_per_second: float = Field(default=1.0, gt=0, le=100)
    """The SignalWire project's outbound calls per second: the campaign dialler keeps every
    process together within it (SignalWire queues calls beyond the project's limit)."""
    retention_sweep_every_s: float = Field(default=3600.0, ge=1, le=86_400)
    """How often a process tries to sweep data past its org's retention (one sweeps at a time,
    control.retention); the first try comes one period after the start."""
    process_heartbeat_s: float = Field(default=5.0, gt=0, le=60)
    """How often this process renews its lease in Postgres and sweeps what dead processes left
    open (control.process_lease)."""
    process_lease_s: float = Field(default=30.0, gt=0, le=600)
    """How long a process unheard of is still taken for alive; past it, its open streams are
    closed as `process_lost`. At least twice the heartbeat, so one late renewal loses nothing."""
    call_unknown_after_s: float = Field(default=900.0, ge=0, le=86_400)
    """A call whose streams were lost with their process, and whose final status callback has
    not come this long after, is closed as `unknown`; the callback, should it still come,
    replaces that, so this only bounds how long the call looks live. With SignalWire REST
    credentials the sweep asks SignalWire first (control.call_reconcile): an end there is applied,
    and a call still live there is left open, this timeout counting from that answer."""
    restream_max_attempts: int = Field(default=3, ge=0, le=10)
    """With SignalWire REST credentials, a call whose process was lost mid-call gets a new media
    stream through SignalWire (control.restream), to the media URL, so that another process
    hears it; this many requests per loss before it is left to the rules above. 0: never."""

    disclosure_text: str = "This call may be recorded and transcribed for quality and training."
    hold_seconds: int = Field(default=600, ge=1, le=14_400)

    transcription_engine: Literal["whisper", "assemblyai", "deepgram", "none"] = "whisper"
    """`assemblyai` and `deepgram` stream each track to the service, with whisper standing in
    where a session fails (`transcription_fallback`)."""
    transcription_fallback: Literal["whisper", "none"] = "whisper"
    """What transcribes a track whose cloud session failed; `none` counts its words skipped."""
    assemblyai_api_key: SecretStr | None = None
    assemblyai_url: str = "wss://streaming.assemblyai.com/v3/ws"
    """`wss://streaming.eu.assemblyai.com/v3/ws` for the EU."""
    assemblyai_speech_model: str = "universal-streaming-english"
    deepgram_api_key: SecretStr | None = None
    deepgram_url: str = "wss://api.deepgram.com/v1/listen"
    deepgram_model: str = "nova-3"
    cloud_connect_timeout_s: float = Field(default=5.0, gt=0, le=60)
    cloud_grace_s: float = Field(default=3.0, gt=0, le=60)
    """An utterance a cloud service has not transcribed this long after it ended is decoded
    offline (see `media.streamed`)."""
    whisper_model: str = "bundled:tiny.en"
    whisper_hotwords: str = CONSENT_HOTWORDS
    """Hint phrases for the decoder; empty for none."""
    whisper_beam_size: int = Field(default=5, ge=1, le=10)
    whisper_window_s: float = Field(default=DEFAULT_WINDOW_S, ge=1, le=30)
    """The encoder's window (see `media.transcription.whisper.DEFAULT_WINDOW_S`); 30 is
    Whisper's own."""
    transcription_workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)
    """Concurrent decodes (one CPU thread each) on this machine: several server workers share
    them out (server.workers)."""
    transcription_queue: int = Field(default=64, ge=1, le=10_000)

    vad_aggressiveness: int = Field(default=2, ge=0, le=3)
    endpoint_hangover_ms: int = Field(default=500, ge=100, le=5_000)
    endpoint_early_decode_ms: int = Field(default=200, ge=0, le=4_999)
    """Silence after which an utterance's decode starts, before the hangover ends it (hiding
    the decode behind the hangover); 0 turns it off (see `EndpointerConfig.early_decode_ms`)."""
    partial_every_ms: int = Field(default=PARTIAL_EVERY_MS, ge=0, le=10_000)
    """With the offline engine, the words so far of an utterance still being spoken are decoded
    each time it has grown this much, on spare workers only (they stop under load); 0 turns
    offline partials off (see `EndpointerConfig.partial_every_ms`)."""
    max_utterance_ms: int = Field(default=15_000, ge=1_000, le=60_000)
    l16_big_endian: bool = True

    cors_origins: str = ""
    """Comma-separated origins allowed to call /api/ from a browser, e.g. https://app.example.com"""
    api_rate_per_s: float = Field(default=20.0, gt=0)
    api_burst: float = Field(default=60.0, ge=1)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        return _check_url(value, ("https://", "http://"), "an https:// URL")

    @field_validator("cors_origins")
    @classmethod
    def _check_cors_origins(cls, value: str) -> str:
        from server.http_security import is_origin

        bad = [o for o in (o.strip() for o in value.split(",")) if o and not is_origin(o)]
        if bad:
            raise ValueError(f"not an origin (scheme://host[:port], lower case): {bad[0]}")
        return value

    @field_validator("partial_every_ms")
    @classmethod
    def _check_partial_every(cls, every: int) -> int:
        frame = EndpointerConfig().frame_ms
        if every and every < frame:
            raise ValueError(f"must be 0 (off) or at least one frame ({frame} ms)")
        return every

    @field_validator("endpoint_early_decode_ms")
    @classmethod
    def _check_early_decode(cls, early: int, info: ValidationInfo) -> int:
        tail, hangover = EndpointerConfig().tail_ms, info.data.get("endpoint_hangover_ms")
        if early and hangover is not None and not tail <= early < hangover:
            raise ValueError(
                f"must be 0 (off) or from {tail} (the kept tail) to below the hangover ({hangover})"
            )
        return early

    @field_validator("process_lease_s")
    @classmethod
    def _check_lease(cls, lease: float, info: ValidationInfo) -> float:
        heartbeat = info.data.get("process_heartbeat_s")
        if heartbeat is not None and lease < 2 * heartbeat:
            raise ValueError(f"must be at least twice the heartbeat ({heartbeat} s)")
        return lease

    @property
    def cors_origin_set(self) -> frozenset[str]:
        return frozenset(o.strip() for o in self.cors_origins.split(",") if o.strip())

    @field_validator("assemblyai_url", "deepgram_url")
    @classmethod
    def _check_cloud_url(cls, value: str) -> str:
        checked = _check_url(value, ("wss://", "ws://"), "a wss:// URL")
        assert checked is not None
        return checked

    @field_validator("media_public_url")
    @classmethod
    def _check_media_public_url(cls, value: str | None) -> str | None:
        return _check_url(value, ("wss://", "ws://"), "a wss:// URL")

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def http_base_url(self) -> str:
        return (self.public_url or f"http://{self.http_host}:{self.http_port}").rstrip("/")

    def secret(self, name: str) -> str:
        value = getattr(self, name)
        assert isinstance(value, SecretStr), f"{name} not loaded"
        return value.get_secret_value()


def _check_url(value: str | None, schemes: tuple[str, ...], what: str) -> str | None:
    if value is None:
        return None
    if not value.startswith(schemes):
        raise ValueError(f"must be {what}")
    if "?" in value or "#" in value:
        raise ValueError("must not carry a query string or fragment")
    return value


def load_settings(**overrides: object) -> Settings:
    """Reads and validates the environment; raises SettingsError listing every problem."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "_".join(str(p) for p in err["loc"]).upper()
            if name and not name.startswith("VOXSOUTH_") and name != "DATABASE_URL":
                name = "VOXSOUTH_" + name
            message = err["msg"].removeprefix("Value error, ")
            lines.append(f"{name}: {message}" if name else message)
        raise SettingsError("\n".join(lines)) from None
    problems = []
    engine = settings.transcription_engine
    if engine in ("assemblyai", "deepgram") and getattr(settings, f"{engine}_api_key") is None:
        problems.append(
            f"VOXSOUTH_{engine.upper()}_API_KEY: required when VOXSOUTH_TRANSCRIPTION_ENGINE is "
            f"{engine} (no key, no transcripts: it is never faked)"
        )
    if settings.production:
        for name in GENERATED_SECRETS:
            if getattr(settings, name) is None:
                problems.append(f"VOXSOUTH_{name.upper()}: required in production")
        if settings.database_url is None:
            problems.append(
                "DATABASE_URL: required in production (the embedded one is for development)"
            )
        if not settings.public_url or not settings.public_url.startswith("https://"):
            problems.append("VOXSOUTH_PUBLIC_URL: an https:// URL is required in production")
        if not settings.media_public_url or not settings.media_public_url.startswith("wss://"):
            problems.append("VOXSOUTH_MEDIA_PUBLIC_URL: a wss:// URL is required in production")
        if settings.webhooks_allow_private:
            problems.append("VOXSOUTH_WEBHOOKS_ALLOW_PRIVATE: not in production (SSRF)")
    if problems:
        raise SettingsError("\n".join(problems))
    if settings.production:
        return settings
    return settings.model_copy(update=_dev_secrets(settings))


def _dev_secrets(settings: Settings) -> dict[str, SecretStr]:
    """Missing secrets in development: read from, or generated into, the data folder."""
    folder = settings.data_dir / "secrets"
    found: dict[str, SecretStr] = {}
    for name in GENERATED_SECRETS:
        if getattr(settings, name) is not None:
            continue
        path = folder / name
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Written aside, then linked into place: two processes starting at once agree on
            # one secret, and neither can read a half-written file.
            staging = folder / f".{name}.{os.getpid()}"
            fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
            try:
                os.link(staging, path)
            except FileExistsError:
                pass
            finally:
                staging.unlink()
        found[name] = SecretStr(path.read_text().strip())
    return found


def generated_secret_names(settings: Settings) -> list[str]:
    """Settings whose values in use came from generated files (what production must set)."""
    names = []
    for name in GENERATED_SECRETS:
        path = settings.data_dir / "secrets" / name
        if path.exists() and settings.secret(name) == path.read_text().strip():
            names.append(name)
    return names
