"""Typed keys for what the composition root and middleware put on the app and requests."""

from __future__ import annotations

from aiohttp import web

from control.feed import FeedHub
from storage.db import Pool

POOL = web.AppKey("pool", Pool)
FEED_HUB = web.AppKey("feed_hub", FeedHub)
REQUEST_ID = web.RequestKey("request_id", str)
"""Set by server/middleware.py for every request; audit records carry it."""
