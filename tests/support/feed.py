"""A supervisor's view of the live feed, for end-to-end tests."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from server.app import RunningServer


async def watch_feed(srv: RunningServer, key: str, seen: list[dict[str, Any]]) -> None:
    """Collects a supervisor's live feed (`/api/feed` over WebSocket) until a stream stops."""
    url = srv.http_url.replace("http", "ws", 1) + "/api/feed"
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
        async for msg in ws:
            seen.append(json.loads(msg.data))
            if seen[-1]["type"] == "stream_stopped":
                return
