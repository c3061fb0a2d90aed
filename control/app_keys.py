"""Typed keys for what the composition root and middleware put on the app and requests."""

from __future__ import annotations

from aiohttp import web

from control.dialler import Dialler
from control.feed import FeedHub
from control.prompts import AudioLimits, Prompts
from control.recordings import RecordingController
from storage.db import Pool

POOL = web.AppKey("pool", Pool)
FEED_HUB = web.AppKey("feed_hub", FeedHub)
RECORDER = web.AppKey("recorder", RecordingController)
DIALLER = web.AppKey("dialler", Dialler)
WEBHOOKS_ALLOW_PRIVATE = web.AppKey("webhooks_allow_private", bool)
"""Outbound webhooks may go to private and loopback addresses, and over http (development)."""
EMAIL_ENABLED = web.AppKey("email_enabled", bool)
"""An SMTP server is configured: what is queued in the email outbox goes out."""
TRANSLATION_ENABLED = web.AppKey("translation_enabled", bool)
"""A translation service is configured (VOXSOUTH_TRANSLATION_URL and _API_KEY)."""
PROMPTS = web.AppKey("prompts", Prompts)
AUDIO_LIMITS = web.AppKey("audio_limits", AudioLimits)
TRUSTED_ORIGINS = web.AppKey("trusted_origins", frozenset[str])
"""Other sites' pages that may use the API with a supervisor's cookie (VOXSOUTH_CORS_ORIGINS)."""
REQUEST_ID = web.RequestKey("request_id", str)
"""Set by server/middleware.py for every request; audit records carry it."""
