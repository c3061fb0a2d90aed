"""Fixtures for the control plane's tests: a fake SignalWire, and a server wired to it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import pytest

from server.app import RunningServer
from tests.support.fake_signalwire import FakeSignalWire, running_fake_signalwire

PROJECT, TOKEN = str(uuid.uuid4()), "PT-test-token"
"""The fake's project (AccountSid) and API token, which `wired` configures."""


@pytest.fixture
async def fake() -> AsyncIterator[FakeSignalWire]:
    async with running_fake_signalwire(PROJECT, TOKEN) as fake_signalwire:
        yield fake_signalwire


@pytest.fixture
async def wired(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]], fake: FakeSignalWire
) -> AsyncIterator[RunningServer]:
    """A server whose SignalWire is the fake."""
    async with start_server(
        signalwire_space_url=fake.url, signalwire_project_id=PROJECT, signalwire_api_token=TOKEN
    ) as server:
        yield server
