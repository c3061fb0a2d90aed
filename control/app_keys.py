"""Typed keys for what the composition root puts on the aiohttp application."""

from __future__ import annotations

from aiohttp import web

from storage.db import Pool

POOL = web.AppKey("pool", Pool)
