"""Running the `voxsouth` command as a real process, as a user would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
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
        VOXSOUTH_WORKERS="1",  # one process unless a test asks for more (`serve --workers`)
        # Restarting lost calls' streams takes every call in the shared database: only where a
        # test asks for it.
        VOXSOUTH_RESTREAM_MAX_ATTEMPTS="0",
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
    media_url: str
    banner: str
    """What it printed up to its URLs; once it has exited, all it printed."""
    process: asyncio.subprocess.Process
    stderr: str = ""
    """Everything it logged, once it has exited."""
    returncode: int | None = None
    _log: list[str] = field(default_factory=list)
    _logged: asyncio.Event = field(default_factory=asyncio.Event)
    _log_ended: bool = False

    def kill(self) -> None:
        """SIGKILL, as `kill -9` or a lost host: nothing of the process runs again."""
        self.process.kill()

    async def logged(self, pattern: str, nth: int = 1) -> re.Match[str]:
        """The `nth` match of `pattern` in its log (stderr), waiting for it if need be."""
        async with asyncio.timeout(timeout(30)):
            while True:
                self._logged.clear()  # before looking: a line logged meanwhile is not missed
                found = [m for line in self._log if (m := re.search(pattern, line))]
                if len(found) >= nth:
                    return found[nth - 1]
                assert not self._log_ended, f"exited without logging {pattern!r}"
                await self._logged.wait()

    async def _read_log(self, stderr: asyncio.StreamReader) -> None:
        while line := await stderr.readline():
            self._log.append(line.decode())
            self._logged.set()
        self.stderr = "".join(self._log)
        self._log_ended = True
        self._logged.set()


@asynccontextmanager
async def serving(env: dict[str, str], cwd: Path, *args: str) -> AsyncIterator[Serving]:
    """`voxsouth serve [args]` as a process: yields once it printed its URLs; SIGTERM on exit
    (unless the test killed it already)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "serve", *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    served = Serving(http_url="", media_url="", banner="", process=proc)
    reading = asyncio.create_task(served._read_log(proc.stderr))
    try:
        banner: list[str] = []
        async with asyncio.timeout(timeout(60)):
            while not banner or not banner[-1].strip().startswith("health, metrics"):
                line = await proc.stdout.readline()
                assert line, "serve exited before printing its URLs"
                banner.append(line.decode())
        served.banner = "".join(banner)
        served.http_url = next(line.split()[-1] for line in banner if "control plane" in line)
        served.media_url = next(line.split()[-1] for line in banner if "media streams" in line)
        yield served
    finally:
        with contextlib.suppress(ProcessLookupError):  # killed by the test, not yet reaped
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout(30)):
            await proc.wait()
            await reading
            served.banner += (await proc.stdout.read()).decode()  # the rest it printed
    served.returncode = proc.returncode
