"""A real HAProxy in front of several `voxsouth serve` nodes, for end-to-end tests.

HAProxy comes from Debian (`/usr/sbin/haproxy`, package `haproxy`; `make test` installs it when
run as root). Without it the tests that need it skip, unless VOXSOUTH_REQUIRE_HAPROXY=1 (CI)
makes that a failure. It runs in the foreground in master-worker mode (`-Ws`), which tells
systemd's notify socket when it is ready: the test binds that socket itself, so it waits on
HAProxy's own word instead of polling its ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import timeout

NODE_HEADER = "X-Voxsouth-Node"
"""Added to every HTTP answer by the test's balancer: the name of the node that served it."""


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    http_port: int
    media_port: int


def haproxy_binary() -> str:
    """HAProxy's path, or a skip (a failure when VOXSOUTH_REQUIRE_HAPROXY=1)."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    if found is not None:
        return found
    if os.environ.get("VOXSOUTH_REQUIRE_HAPROXY") == "1":
        pytest.fail("haproxy is not installed, and VOXSOUTH_REQUIRE_HAPROXY=1 requires it")
    pytest.skip(
        "haproxy is not installed (`make test` installs Debian's `haproxy` when run as root); "
        "set VOXSOUTH_REQUIRE_HAPROXY=1 to make this a failure"
    )


def balancer_config(http_port: int, media_port: int, nodes: Sequence[Node]) -> str:
    """deploy/haproxy.cfg's shape on loopback without TLS: two frontends, each round-robin
    over the nodes' matching port, with nodes taken out while /health/ready fails."""
    http_servers = "\n".join(f"    server {n.name} 127.0.0.1:{n.http_port} check" for n in nodes)
    # The media port has no health route: its servers are checked on their node's HTTP port.
    media_servers = "\n".join(
        f"    server {n.name} 127.0.0.1:{n.media_port} check port {n.http_port}" for n in nodes
    )
    return f"""\
global
    maxconn 2000

defaults
    mode http
    timeout connect 2s
    timeout http-request 10s
    # Idle limits for plain HTTP, SSE included: the feed's SSE sends a keepalive every 15 s.
    timeout client 30s
    timeout server 30s
    # Once a WebSocket (the feed, a media stream) is upgraded, this is its idle limit.
    timeout tunnel 1h
    timeout client-fin 5s
    option httpchk GET /health/ready
    http-check expect status 200
    timeout check 3s
    default-server inter 2s fall 3 rise 2

frontend http
    bind 127.0.0.1:{http_port}
    default_backend nodes_http

backend nodes_http
    balance roundrobin
    # Test only: says which node answered (deploy/haproxy.cfg does not show its topology).
    http-response set-header {NODE_HEADER} %s
{http_servers}

frontend media
    bind 127.0.0.1:{media_port}
    default_backend nodes_media

backend nodes_media
    balance roundrobin
{media_servers}
"""


@asynccontextmanager
async def running_haproxy(binary: str, config: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """HAProxy on `config` in the foreground; yields once it says it is ready (its frontends
    listen), and stops it (SIGTERM to the master, which stops its worker) on the way out."""
    notify_path = config.with_suffix(".notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.setblocking(False)
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_path)}
    proc = await asyncio.create_subprocess_exec(
        binary, "-Ws", "-f", str(config), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    output = asyncio.create_task(proc.stdout.read())
    try:
        loop = asyncio.get_running_loop()
        ready = asyncio.ensure_future(_ready(loop, notify))
        done, _ = await asyncio.wait(
            (ready, output), timeout=timeout(10), return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            ready.cancel()
            text = (await output).decode() if output in done else "(no answer in time)"
            raise AssertionError(f"haproxy did not start: {text}")
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout(10)):
            await proc.wait()
            await output
        notify.close()
        notify_path.unlink(missing_ok=True)


async def _ready(loop: asyncio.AbstractEventLoop, notify: socket.socket) -> None:
    """Returns on the notify message that carries READY=1 (sd_notify's protocol)."""
    while b"READY=1" not in (await loop.sock_recv(notify, 4096)).split(b"\n"):
        pass
