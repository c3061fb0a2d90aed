"""Shared fixtures: a real Postgres for the session, and the real server on loopback.

Postgres is `VOXSOUTH_TEST_DATABASE_URL` when set, else an embedded cluster started once in the
session's temp folder. Each session works in a fresh database created there, migrated once.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from control.feed_sequencer import FeedSequencer
from server.app import RunningServer, running
from server.settings import Settings, load_settings
from storage import calls
from storage.db import Pool, create_pool
from storage.embedded import start_embedded
from storage.migrate import migrate
from tests.support.fake_signalwire import FakeSignalWire, running_fake_signalwire
from tests.support.numbers import new_number

FIXTURES = Path(__file__).parent / "fixtures"
SPEECH = FIXTURES / "speech"

# One scaled unit for every wait in the suite: slow machines set VOXSOUTH_TEST_TIMEOUT_SCALE.
TIMEOUT_SCALE = float(os.environ.get("VOXSOUTH_TEST_TIMEOUT_SCALE", "1"))


def timeout(seconds: float) -> float:
    return seconds * TIMEOUT_SCALE


@pytest.fixture(autouse=True)
async def no_unhandled_loop_errors() -> AsyncIterator[None]:
    """Fails a test that leaves an exception nobody handled on the event loop (a task that
    died unobserved, a callback that raised)."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        yield
    finally:
        loop.set_exception_handler(previous)
    assert not errors, [f"{e.get('message')}: {e.get('exception')!r}" for e in errors]


@pytest.fixture(scope="session")
async def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    admin_dsn = os.environ.get("VOXSOUTH_TEST_DATABASE_URL") or await start_embedded(
        tmp_path_factory.mktemp("pg")
    )
    name = f"voxsouth_test_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    dsn = _with_database(admin_dsn, name)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return dsn


def _with_database(dsn: str, name: str) -> str:
    """The same server, another database (works for host and unix-socket DSNs)."""
    head, sep, query = dsn.partition("?")
    base = head.rsplit("/", 1)[0] if head.count("/") > 2 else head
    return f"{base}/{name}{sep}{query}"


@pytest.fixture(scope="session")
async def pool(pg_dsn: str) -> AsyncIterator[Pool]:
    pool = await create_pool(pg_dsn, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
async def feed_sequencer(pg_dsn: str) -> AsyncIterator[FeedSequencer]:
    """The feed's sequencer, as every server process runs one: for tests without a server that
    wait for feed rows to be positioned and announced."""
    async with FeedSequencer(pg_dsn) as sequencer:
        yield sequencer


@pytest.fixture
def make_settings(pg_dsn: str, tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": pg_dsn,
            "data_dir": tmp_path / "data",
            "http_port": 0,
            "media_port": 0,
            "transcription_engine": "none",
            "log_format": "text",
            # Restarting lost calls' streams works on every call in the session's database,
            # and would reach whichever fake SignalWire a test's server has: only where asked.
            "restream_max_attempts": 0,
        }
        values.update(overrides)
        return load_settings(**values)

    return make


@pytest.fixture
def start_server(
    make_settings: Callable[..., Settings],
) -> Callable[..., AbstractAsyncContextManager[RunningServer]]:
    """`async with start_server(**settings) as srv:` the whole server on ephemeral ports."""

    def start(**overrides: Any) -> AbstractAsyncContextManager[RunningServer]:
        return running(make_settings(**overrides))

    return start


@pytest.fixture
async def srv(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
) -> AsyncIterator[RunningServer]:
    """The server with default test settings (no transcription engine)."""
    async with start_server() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client whose cookie jar keeps cookies for 127.0.0.1 (aiohttp's default jar
    ignores IP hosts), so sign-in sessions work against the test server."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


@pytest.fixture
async def org_number(pool: Pool) -> tuple[uuid.UUID, str]:
    """A fresh org owning a fresh number."""
    org_id = await calls.create_org(pool, "Test org")
    number = new_number()
    await calls.add_phone_number(pool, org_id, number)
    return org_id, number


@pytest.fixture
async def call_ids(org_number: tuple[uuid.UUID, str], pool: Pool) -> tuple[uuid.UUID, uuid.UUID]:
    """A fresh org and a call in progress to its number: (org id, call id)."""
    org_id, number = org_number
    ref = await calls.open_call(
        pool, org_id=org_id, call_sid=str(uuid.uuid4()), account_sid=None, direction="inbound",
        from_number="+15550199999", to_number=number, status="in-progress",
    )  # fmt: skip
    return org_id, ref.id


SIGNALWIRE_PROJECT, SIGNALWIRE_TOKEN = str(uuid.uuid4()), "PT-test-token"
"""The fake SignalWire's project (AccountSid) and API token, which `wired` configures."""


@pytest.fixture
async def fake() -> AsyncIterator[FakeSignalWire]:
    """A fake SignalWire REST API on loopback (tests/support/fake_signalwire.py)."""
    async with running_fake_signalwire(SIGNALWIRE_PROJECT, SIGNALWIRE_TOKEN) as fake_signalwire:
        yield fake_signalwire


@pytest.fixture
async def wired(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]], fake: FakeSignalWire
) -> AsyncIterator[RunningServer]:
    """A server whose SignalWire is the fake."""
    async with start_server(
        signalwire_space_url=fake.url,
        signalwire_project_id=SIGNALWIRE_PROJECT,
        signalwire_api_token=SIGNALWIRE_TOKEN,
    ) as server:
        yield server


@pytest.fixture
async def dialling(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]], fake: FakeSignalWire
) -> AsyncIterator[RunningServer]:
    """`wired`, with the server's own campaign dialler idle (tests tick their own) and a
    calls-per-second budget that keeps no test waiting."""
    async with start_server(
        signalwire_space_url=fake.url,
        signalwire_project_id=SIGNALWIRE_PROJECT,
        signalwire_api_token=SIGNALWIRE_TOKEN,
        dialler_every_s=3600,
        signalwire_calls_per_second=100,
    ) as server:
        yield server
