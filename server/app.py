"""Composition root: one process, two planes, one Postgres.

`running(settings)` starts everything and yields the bound URLs; leaving it shuts down in the
order that loses nothing: stop taking HTTP, close media streams (each finishes: open utterances
are transcribed and its StreamStopped emitted), stop the transcription workers, flush the
event writer (what Postgres cannot take goes to the journal), close the pool. A worker of
`voxsouth serve --workers N` runs the same, in the place its parent prepared (`WorkerPlace`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from control import dashboard
from control.api import api_keys as api_keys_api
from control.api import audio as audio_api
from control.api import audit as audit_api
from control.api import bookings as bookings_api
from control.api import caller_ids as caller_ids_api
from control.api import calls as calls_api
from control.api import campaigns as campaigns_api
from control.api import dependencies as dependencies_api
from control.api import escalations as escalations_api
from control.api import feed as feed_api
from control.api import numbers as numbers_api
from control.api import outbound_webhooks as outbound_webhooks_api
from control.api import recordings as recordings_api
from control.api import redaction as redaction_api
from control.api import retention as retention_api
from control.api import rules as rules_api
from control.api import secure_mode as secure_mode_api
from control.api import shopper as shopper_api
from control.api import surveys as surveys_api
from control.api import targets as targets_api
from control.api import team as team_api
from control.api import transcription as transcription_api
from control.api import translation as translation_api
from control.api.dependencies import DEPENDENCIES, DependenciesConfig
from control.api.openapi import OpenApiRoutes
from control.api.outbound import SIGNALWIRE, OutboundConfig, OutboundRoutes
from control.api.session import SessionRoutes, SignInConfig
from control.api.transcription import SEALER, SPEECH_OPTIONS, SpeechOptions
from control.app_keys import (
    AUDIO_LIMITS,
    DIALLER,
    EMAIL_ENABLED,
    FEED_HUB,
    POOL,
    PROMPTS,
    RECORDER,
    TRANSLATION_ENABLED,
    TRUSTED_ORIGINS,
    WEBHOOKS_ALLOW_PRIVATE,
)
from control.auth import auth_middleware
from control.daily_summary import queue_due
from control.dialler import Dialler, DiallerConfig
from control.email import (
    EmailSender,
    ResendConfig,
    SenderConfig,
    SmtpConfig,
    Transport,
    resend_transport,
    smtp_transport,
)
from control.feed import FeedHub
from control.feed_sequencer import FeedSequencer
from control.periodic import Periodic
from control.play_urls import PlayUrls
from control.process_lease import LeaseConfig, ProcessLease
from control.prompts import AudioLimits, Prompts
from control.recordings import RecordingController
from control.restream import Restreamer, StreamTarget
from control.restreaming import RestreamPolicy
from control.retention import RetentionConfig, RetentionSweeper
from control.rule_catalog import RULE_CATALOG
from control.sealed import Sealer
from control.signalwire import SignalWireClient, SignalWireConfig
from control.translation import CallTranslator, ChatTranslator, TranslationConfig
from control.voices import ElevenLabs, ElevenLabsConfig, Piper, Synthesizer
from control.webhook_delivery import DeliveryConfig, WebhookSender
from control.webhooks import WebhookConfig, Webhooks
from media.loop_lag import LagTracker, LoopLagMonitor
from media.media_socket import LISTEN_BACKLOG
from media.redaction import redact
from media.server import CallAdmission, MediaServer, MediaServerConfig
from media.session import SessionConfig
from media.stream_token import StreamGrant, issue_token
from media.streamed import CloudEngine
from media.transcription.engine import TranscriptionEngine
from media.transcription.service import TranscriptionService
from media.vad import EndpointerConfig
from server.call_policy import DetectorRuleCatalog, OrgHearing, admit
from server.database import open_database
from server.drain import Drain
from server.health import Health
from server.http_security import (
    HttpSecurityConfig,
    api_query_text_middleware,
    api_rate_limit_middleware,
    cors_middleware,
    security_headers_middleware,
)
from server.loop_thread import LoopThread
from server.media_dispatch import receiving_handoffs
from server.middleware import request_middleware
from server.settings import Settings
from server.writer_thread import WriterThread
from storage.db import Pool

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
"""Webhook forms and API bodies are small; anything larger is refused with 413."""


@dataclass(frozen=True, slots=True)
class RunningServer:
    http_url: str
    """Where this process listens for HTTP (may differ from the public URL)."""
    media_url: str
    """The stream URL put in LaML."""
    public_url: str
    settings: Settings
    pool: Pool
    writer: WriterThread
    media: LoopThread[MediaServer]
    """The media plane on its own thread and loop: `media.call(fn)` runs `fn(server)` there."""
    dsn: str
    process_id: uuid.UUID
    """This process's registration in `server_processes` (the owner of the streams it opens)."""
    app: web.Application
    drain: Drain
    """SIGTERM's grace (`stop_gracefully`)."""

    async def stop_gracefully(self, interrupted: asyncio.Event) -> None:
        """Drains for up to VOXSOUTH_DRAIN_TIMEOUT_S (none: returns at once); leaving `running`
        then stops the server."""
        if self.settings.drain_timeout_s > 0:
            await self.drain.run(self.settings.drain_timeout_s, interrupted)


@dataclass(frozen=True, slots=True)
class Listeners:
    """The two listening sockets: bound here by one process, or by the parent of several."""

    http: socket.socket
    media: socket.socket

    def close(self) -> None:
        self.http.close()
        self.media.close()


@dataclass(frozen=True, slots=True)
class ServerUrls:
    http_url: str
    """Where the server listens for HTTP (may differ from the public URL)."""
    media_url: str
    """The stream URL put in LaML."""
    public_url: str


@dataclass(frozen=True, slots=True)
class WorkerPlace:
    """What the parent of `voxsouth serve --workers N` (server.workers) prepared for a worker:
    the database resolved and migrated (its DSN is the worker's `database_url`), the listening
    sockets bound, and a journal folder of the worker's own."""

    listeners: Listeners
    journal_dir: Path
    media_handoff: socket.socket
    """Where the parent passes the media connections it accepted for this worker
    (server.media_dispatch): the worker never accepts on the media socket, whose address only
    names its stream URL."""


def _load_engine(settings: Settings) -> TranscriptionEngine:
    from media.transcription.whisper import WhisperEngine  # heavy: only when configured

    return WhisperEngine(
        settings.whisper_model,
        settings.data_dir / "models",
        settings.transcription_workers,
        hotwords=settings.whisper_hotwords,
        beam_size=settings.whisper_beam_size,
        window_s=settings.whisper_window_s,
    )


def _cloud_engine(settings: Settings, service: str, api_key: str) -> CloudEngine:
    """A cloud streaming service as configured, with this key (the deployment's or an org's)."""
    from media.transcription.cloud.assemblyai import AssemblyAIProtocol
    from media.transcription.cloud.deepgram import DeepgramProtocol
    from media.transcription.cloud.stream import SpeechProtocol

    if service == "assemblyai":
        name = settings.assemblyai_speech_model

        def protocol(rate: int, mulaw: bool) -> SpeechProtocol:
            return AssemblyAIProtocol(
                rate, "pcm_mulaw" if mulaw else "pcm_s16le", name, base_url=settings.assemblyai_url
            )

    elif service == "deepgram":
        name = settings.deepgram_model

        def protocol(rate: int, mulaw: bool) -> SpeechProtocol:
            return DeepgramProtocol(
                rate, "mulaw" if mulaw else "linear16", name, base_url=settings.deepgram_url
            )

    else:
        raise ValueError(f"no cloud service {service!r}")
    return CloudEngine(
        service=service,
        name=f"{service}:{name}",
        api_key=api_key,
        protocol=protocol,
        connect_timeout_s=settings.cloud_connect_timeout_s,
        grace_s=settings.cloud_grace_s,
    )


def _deployment_keys(settings: Settings) -> dict[str, str]:
    """The cloud services this deployment holds a key for, and the keys."""
    keys = {"assemblyai": settings.assemblyai_api_key, "deepgram": settings.deepgram_api_key}
    return {service: key.get_secret_value() for service, key in keys.items() if key is not None}


def _signalwire_config(settings: Settings) -> SignalWireConfig | None:
    """SignalWire REST settings, when all three are set (outbound calls need them)."""
    token = settings.signalwire_api_token
    if settings.signalwire_space_url and settings.signalwire_project_id and token:
        return SignalWireConfig(
            settings.signalwire_space_url, settings.signalwire_project_id, token.get_secret_value()
        )
    return None


def bind_listeners(settings: Settings) -> Listeners:
    """Binds the HTTP and media ports (0: the system picks one)."""
    media = socket.create_server((settings.media_host, settings.media_port), backlog=LISTEN_BACKLOG)
    try:
        http = socket.create_server(
            (settings.http_host, settings.http_port), backlog=LISTEN_BACKLOG
        )
    except BaseException:
        media.close()
        raise
    return Listeners(http=http, media=media)


def server_urls(settings: Settings, listeners: Listeners) -> ServerUrls:
    http_url = f"http://{settings.http_host}:{listeners.http.getsockname()[1]}"
    media_port = listeners.media.getsockname()[1]
    media_url = settings.media_public_url or f"ws://{settings.media_host}:{media_port}/media"
    return ServerUrls(http_url, media_url, (settings.public_url or http_url).rstrip("/"))


async def _voices(settings: Settings, stack: AsyncExitStack) -> dict[str, Synthesizer]:
    """The engines that can render the orgs' prompts: ElevenLabs with a key, Piper offline."""
    voices: dict[str, Synthesizer] = {}
    if settings.elevenlabs_api_key is not None:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        voices["elevenlabs"] = ElevenLabs(session, ElevenLabsConfig(
            api_key=settings.elevenlabs_api_key.get_secret_value(),
            base_url=settings.elevenlabs_url, model_id=settings.elevenlabs_model,
            voice=settings.elevenlabs_voice,
        ))  # fmt: skip
    if settings.offline_voice and Piper.available():
        voices["piper"] = Piper()
    return voices


async def _email_transport(settings: Settings, stack: AsyncExitStack) -> Transport | None:
    """How email leaves: Resend's HTTP API with a key, else the SMTP server, else not at all."""
    if settings.resend_api_key is not None:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        return resend_transport(ResendConfig(
            api_key=settings.resend_api_key.get_secret_value(), sender=settings.email_from,
            base_url=settings.resend_url,
        ), session)  # fmt: skip
    if settings.smtp_host:
        password = settings.smtp_password
        return smtp_transport(SmtpConfig(
            host=settings.smtp_host, port=settings.smtp_port, username=settings.smtp_username,
            password=password.get_secret_value() if password else None,
            security=settings.smtp_security, sender=settings.email_from,
        ))  # fmt: skip
    return None


@asynccontextmanager
async def running(
    settings: Settings, place: WorkerPlace | None = None
) -> AsyncIterator[RunningServer]:
    """The whole server in this process; `place`: as a worker of several (server.workers)."""
    async with AsyncExitStack() as stack:
        engine_task = None
        deployment_keys = _deployment_keys(settings)
        service = settings.transcription_engine
        cloud = None
        if service in deployment_keys:  # settings checked the chosen service's key is there
            cloud = _cloud_engine(settings, service, deployment_keys[service])
        fallback = cloud is not None and settings.transcription_fallback == "whisper"
        if settings.transcription_engine == "whisper" or fallback:
            # Load the model while Postgres starts: both take a moment.
            engine_task = asyncio.create_task(asyncio.to_thread(_load_engine, settings))
        try:
            dsn, pool = await open_database(settings, migrated=place is not None)
        except BaseException:
            if engine_task is not None:
                engine_task.cancel()
            raise
        stack.push_async_callback(pool.close)
        engine = None if engine_task is None else await engine_task
        sw_client = None
        if (signalwire := _signalwire_config(settings)) is not None:
            http_client = await stack.enter_async_context(aiohttp.ClientSession())
            sw_client = SignalWireClient(http_client, signalwire)
        # Entered before the writer, so left after it: the last StreamStopped rows are written
        # while this process still holds its streams. With SignalWire credentials, its sweep
        # asks SignalWire about calls a lost process left open.
        lease = await stack.enter_async_context(
            ProcessLease(
                pool,
                LeaseConfig(
                    every_s=settings.process_heartbeat_s,
                    lease_s=settings.process_lease_s,
                    call_unknown_after_s=settings.call_unknown_after_s,
                ),
                sw_client,
            )
        )
        # Every process runs one; one at a time leads. Entered before the writer, so left after
        # it: a leader positions this process's last feed rows before it goes.
        await stack.enter_async_context(FeedSequencer(dsn))
        journal_dir = settings.data_dir / "journal" if place is None else place.journal_dir
        writer = await stack.enter_async_context(WriterThread(dsn, journal_dir))

        token_secret = settings.secret("stream_token_secret").encode()
        listeners = bind_listeners(settings) if place is None else place.listeners
        # The servers close them too; this covers a failed start. A worker closes only its own
        # copies: the parent's stay open for the other workers and the next one.
        stack.callback(listeners.close)
        media_sock, http_sock = listeners.media, listeners.http
        urls = server_urls(settings, listeners)
        http_url, media_url, public_url = urls.http_url, urls.media_url, urls.public_url

        catalog = DetectorRuleCatalog()

        sealer = Sealer(settings.secret("credentials_key"))
        hearing = OrgHearing(
            sealer, lambda service, key: _cloud_engine(settings, service, key), deployment_keys
        )

        control_loop = asyncio.get_running_loop()

        async def call_gate(grant: StreamGrant) -> CallAdmission:
            # On the media loop; the admission's queries run on this (the pool's) loop. The
            # media server cancels the gate when its admission budget runs out: it returns at
            # once, and the admission is cancelled here.
            admission = admit(pool, catalog, hearing, grant)
            return await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(admission, control_loop)
            )

        media_config = MediaServerConfig(
            token_secret=token_secret,
            transport=settings.media_transport,
            session=SessionConfig(
                endpointer=EndpointerConfig(
                    hangover_ms=settings.endpoint_hangover_ms,
                    early_decode_ms=settings.endpoint_early_decode_ms or None,
                    # Partials are the offline engine's: without it nothing decodes them.
                    partial_every_ms=(
                        settings.partial_every_ms or None if engine is not None else None
                    ),
                    max_utterance_ms=settings.max_utterance_ms,
                ),
                l16_big_endian=settings.l16_big_endian,
                server_id=lease.id,
            ),
            vad_aggressiveness=settings.vad_aggressiveness,
            start_timeout_s=settings.media_start_timeout_s,
            admission_timeout_s=settings.media_admission_timeout_s,
            resume_grace_s=settings.media_resume_grace_s,
            max_streams=settings.media_max_streams or None,
        )
        handoff = place.media_handoff if place is not None else None

        async def start_media(media_stack: AsyncExitStack) -> MediaServer:
            """The media plane, on its own thread's loop (server.loop_thread)."""
            transcriber = None
            if engine is not None:
                transcriber = await media_stack.enter_async_context(TranscriptionService(
                    engine, settings.transcription_workers, settings.transcription_queue
                ))  # fmt: skip
            # The media loop's lag (voxsouth_event_loop_lag_seconds), sampled whether or not
            # it refuses streams.
            loop_lag = await media_stack.enter_async_context(
                LoopLagMonitor(LagTracker(settings.media_max_loop_lag_ms / 1000))
            )
            media = MediaServer(
                media_config,
                transcriber=transcriber,
                call_gate=call_gate,
                cloud=cloud,
                sink=writer.submit,
                loop_behind=loop_lag.behind if settings.media_max_loop_lag_ms else lambda: False,
            )
            # With a handoff, the parent accepts on the media port (server.media_dispatch).
            await media_stack.enter_async_context(
                media.serve(media_sock if handoff is None else None)
            )
            if handoff is not None:
                media_stack.enter_context(receiving_handoffs(handoff, media.adopt))
            media_stack.callback(media.begin_shutdown)  # runs first on the way out
            return media

        media_thread = LoopThread(start_media, "media")
        recorder = RecordingController(pool, sw_client, public_url + "/laml/recording")
        stack.push_async_callback(recorder.aclose)
        recorder.start_sweeping()
        sweeper = RetentionSweeper(
            pool, sw_client, RetentionConfig(every_s=settings.retention_sweep_every_s)
        )
        sweeper.start()
        stack.push_async_callback(sweeper.aclose)
        dialler = Dialler(
            pool, sw_client,
            DiallerConfig(public_url, calls_per_second=settings.signalwire_calls_per_second,
                          every_s=settings.dialler_every_s,
                          stale_after_s=settings.dialler_stale_after_s),
            lease.id,
        )  # fmt: skip
        dialler.start()
        stack.push_async_callback(dialler.aclose)
        sender = await stack.enter_async_context(WebhookSender(
            pool, sealer,
            DeliveryConfig(every_s=settings.webhook_every_s,
                           allow_private=settings.webhooks_allow_private),
        ))  # fmt: skip
        sender.start()
        translating = bool(settings.translation_url and settings.translation_api_key)
        if settings.translation_url and settings.translation_api_key:
            translation = TranslationConfig(
                base_url=settings.translation_url,
                api_key=settings.translation_api_key.get_secret_value(),
                model=settings.translation_model,
            )
            session = await stack.enter_async_context(aiohttp.ClientSession())
            translator = CallTranslator(pool, ChatTranslator(session, translation), translation)
            translator.start()
            stack.push_async_callback(translator.aclose)
        prompts = Prompts(
            pool, await _voices(settings, stack),
            PlayUrls(hmac.digest(token_secret, b"voxsouth play urls", "sha256"), public_url),
            settings.prompt_render_wait_s,
        )  # fmt: skip
        stack.push_async_callback(prompts.aclose)
        transport = await _email_transport(settings, stack)
        if transport is not None:
            mailer = EmailSender(pool, transport, SenderConfig(every_s=settings.email_every_s))
            mailer.start()
            stack.push_async_callback(mailer.aclose)
            hour = settings.daily_summary_hour_utc
            summaries = Periodic("daily-summaries", 600, lambda: queue_due(pool, hour))
            summaries.start()
            stack.push_async_callback(summaries.aclose)

        def on_feed_event(event: dict[str, Any]) -> None:
            """Every process hears every feed event once: consent decided anywhere reaches
            this node's streams of the call, and recordings follow consent."""
            if event["call_id"] is None:
                return
            call_id, data = uuid.UUID(event["call_id"]), event["data"]
            if event["type"] == "stream_started":
                recorder.stream_started(call_id)
            elif event["type"] == "consent" and data.get("applied"):
                verdict = data.get("verdict")
                if verdict in ("granted", "refused"):
                    by_person = bool(data.get("by_person"))
                    media_thread.call(
                        lambda media: media.apply_consent(call_id, verdict, by_person=by_person)
                    )
                    recorder.consent_decided(call_id, verdict)
            elif event["type"] == "secure_mode":
                on = bool(data.get("on"))
                media_thread.call(lambda media: media.apply_secure_mode(call_id, on))

        hub = await stack.enter_async_context(FeedHub(pool, dsn, observer=on_feed_event))
        media = await stack.enter_async_context(media_thread)

        def issue(org_id: uuid.UUID, call_id: uuid.UUID, call_sid: str) -> str:
            expires = int(time.time()) + settings.stream_token_ttl_s
            return issue_token(token_secret, StreamGrant(org_id, call_id, call_sid, expires))

        if sw_client is not None:
            # Calls whose process was lost get a new stream through SignalWire, to the same
            # media URL their `<Stream>` had: any live process may take it (a balancer picks).
            restreamer = Restreamer(
                pool, sw_client,
                StreamTarget(media_url, public_url + "/laml/stream-status",
                             allow_insecure=not settings.production),
                issue, RestreamPolicy(max_attempts=settings.restream_max_attempts),
                every_s=settings.process_heartbeat_s,
            )  # fmt: skip
            restreamer.start()
            stack.push_async_callback(restreamer.aclose)
            lease.when_streams_lost(restreamer.wake)

        security = HttpSecurityConfig(
            https=public_url.startswith("https://"),
            cors_origins=settings.cors_origin_set,
            api_rate_per_s=settings.api_rate_per_s,
            api_burst=settings.api_burst,
        )
        # Security headers wrap everything, so error responses carry them too; the request
        # middleware renders every error raised inside it; CORS answers preflights before auth.
        app = web.Application(
            middlewares=[
                security_headers_middleware(security),
                request_middleware,
                cors_middleware(security),
                api_rate_limit_middleware(security),
                api_query_text_middleware,
                auth_middleware,
            ],
            client_max_size=MAX_BODY,
        )
        app[POOL] = pool
        app[FEED_HUB] = hub
        app[RECORDER] = recorder
        app[DIALLER] = dialler
        app[WEBHOOKS_ALLOW_PRIVATE] = settings.webhooks_allow_private
        app[EMAIL_ENABLED] = transport is not None
        app[TRANSLATION_ENABLED] = translating
        app[PROMPTS] = prompts
        app[AUDIO_LIMITS] = AudioLimits(settings.audio_max_bytes, settings.audio_max_seconds)
        app[DEPENDENCIES] = DependenciesConfig(
            transcription_engine=settings.transcription_engine,
            transcription_fallback=settings.transcription_fallback,
            smtp_host=settings.smtp_host or None, smtp_port=settings.smtp_port,
            resend=settings.resend_api_key is not None,
        )  # fmt: skip
        app[TRUSTED_ORIGINS] = settings.cors_origin_set

        async def end_feeds(_app: web.Application) -> None:
            hub.end_all("server_shutdown")  # feed handlers return now, not at the timeout

        app.on_shutdown.append(end_feeds)
        app[RULE_CATALOG] = catalog
        app[SEALER] = sealer
        app[SPEECH_OPTIONS] = SpeechOptions(
            deployment=settings.transcription_engine,
            offline=engine is not None,
            deployment_keys=frozenset(deployment_keys),
        )
        webhooks = Webhooks(
            WebhookConfig(
                signing_key=settings.secret("signalwire_signing_key"),
                public_base_url=public_url,
                media_url=media_url,
                disclosure=settings.disclosure_text or None,
                hold_seconds=settings.hold_seconds,
                allow_insecure_media=not settings.production,
                database_timeout_s=settings.voice_webhook_timeout_s,
            ),
            issue,
            recorder.recording_in_progress,
            dialler.call_ended,
            lambda text: redact(text).text,
            prompts,
        )
        app.add_routes(webhooks.routes())
        sign_in = SignInConfig(secure_cookie=public_url.startswith("https://"))
        app.add_routes(SessionRoutes(sign_in).routes())
        app.add_routes(calls_api.routes())
        app.add_routes(audit_api.routes())
        app.add_routes(team_api.routes())
        app.add_routes(numbers_api.routes())
        app.add_routes(api_keys_api.routes())
        app.add_routes(caller_ids_api.routes())
        app.add_routes(escalations_api.routes())
        app.add_routes(rules_api.routes())
        app.add_routes(transcription_api.routes())
        app.add_routes(redaction_api.routes())
        app.add_routes(secure_mode_api.routes())
        app.add_routes(retention_api.routes())
        app.add_routes(targets_api.routes())
        app.add_routes(campaigns_api.routes())
        app.add_routes(bookings_api.routes())
        app.add_routes(surveys_api.routes())
        app.add_routes(shopper_api.routes())
        app.add_routes(outbound_webhooks_api.routes())
        app.add_routes(dependencies_api.routes())
        app.add_routes(translation_api.routes())
        app.add_routes(recordings_api.routes())
        app.add_routes(audio_api.routes())
        app.add_routes(feed_api.routes())
        app.add_routes(dashboard.routes())
        app.add_routes(OpenApiRoutes("Voxsouth", version("voxsouth")).routes())
        app.add_routes(OutboundRoutes(OutboundConfig(public_url)).routes())
        if sw_client is not None:
            app[SIGNALWIRE] = sw_client
        # A cloud engine is checked per session (its failures fall back); its fallback is here.
        engine_ok = engine is not None or not (
            settings.transcription_engine == "whisper" or fallback
        )
        drain = Drain(lambda: media.open_streams)
        app.add_routes(Health(lambda: engine_ok, lambda: drain.draining).routes())
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        # aiohttp listens again on the socket, with its own backlog (128) unless told.
        await web.SockSite(runner, http_sock, backlog=LISTEN_BACKLOG).start()
        log.info("HTTP on %s, media on %s", http_url, media_url)
        yield RunningServer(
            http_url, media_url, public_url, settings, pool, writer, media_thread, dsn, lease.id,
            app, drain,
        )  # fmt: skip
