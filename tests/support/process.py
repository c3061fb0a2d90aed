"""Running the `voxsouth` command as a real process, as a user would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import timeout


def cli_env(tmp_path: Path, pg_dsn: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXSOUTH_")}
    env.update(
        VOXSOUTH_DATA_DIR=str(tmp_path / "data"),
        VOXSOUTH_DATABASE_URL=pg_dsn,
        VOXSOUTH_HTTP_PORT="0",
        VOXSOUTH_MEDIA_PORT="0",
        VOXSOUTH_TRANSCRIPTION_ENGINE="none",
        VOXSOUTH_LOG_FORMAT="json",
    )
    env.update(extra)
    return env


async def run_cli(
    *args: str, env: dict[str, str], cwd: Path, stdin: bytes = b""
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", *args, env=env, cwd=cwd,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(timeout(60)):
        out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@dataclass
class Serving:
    http_url: str
    banner: str
    process: asyncio.subprocess.Process
    stderr: str = ""
    returncode: int | None = None

    def kill(self) -> None:
        """SIGKILL, as `kill -9` or a lost host: nothing of the process runs again."""
        self.process.kill()


@asynccontextmanager
async def serving(env: dict[str, str], cwd: Path) -> AsyncIterator[Serving]:
    """`voxsouth serve` as a process: yields once it printed its URLs; SIGTERM on exit (unless
    the test killed it already)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "serve", env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    served = Serving(http_url="", banner="", process=proc)
    try:
        banner: list[str] = []
        async with asyncio.timeout(timeout(60)):
            while not banner or not banner[-1].strip().startswith("health, metrics"):
                line = await proc.stdout.readline()
                assert line, "serve exited before printing its URLs"
                banner.append(line.decode())
        served.banner = "".join(banner)
        served.http_url = next(line.split()[-1] for line in banner if "control plane" in line)
        yield served
    finally:
        with contextlib.suppress(ProcessLookupError):  # killed by the test, not yet reaped
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout(30)):
            _, err = await proc.communicate()
    served.stderr, served.returncode = err.decode(), proc.returncode
