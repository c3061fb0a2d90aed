"""The real server in its own process, for the benches that load it over sockets.

Benches start it with `server_process`. The child, `python -m bench.server_proc`, runs
`server.app.running` on 127.0.0.1 with ephemeral ports against the given Postgres, prints one
JSON line (`http_url`, `media_url`, `pid`) once it listens, and runs until SIGTERM or SIGINT.
The signing key comes from `VOXSOUTH_SIGNALWIRE_SIGNING_KEY` (set by the bench), so it never
shows in a process list.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import uvloop

from server.app import running
from server.log_setup import configure_logging
from server.settings import load_settings
from server.workers import supervising
from storage.embedded import stop_embedded

ROOT: Final = Path(__file__).resolve().parent.parent


class BenchError(RuntimeError):
    pass


# ---------------------------------------------------------------- processes


@dataclass(frozen=True, slots=True)
class ServerInfo:
    http_url: str
    media_url: str
    pid: int


@contextmanager
def server_process(
    dsn: str,
    data_dir: Path,
    transcription: str,
    signing_key: str,
    settings: Mapping[str, str] | None = None,
    workers: int = 1,
) -> Iterator[ServerInfo]:
    """The server in its own session (Ctrl-C reaches only the bench), always terminated.
    `settings`: more VOXSOUTH_* variables (keys go by the environment, not the command line).
    `workers` > 1: `serve --workers N`'s parent and its workers (`pid` is the parent's)."""
    env = dict(os.environ) | dict(settings or {})
    env["VOXSOUTH_SIGNALWIRE_SIGNING_KEY"] = signing_key
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.server_proc", "--dsn", dsn, "--data-dir", str(data_dir),
         "--transcription", transcription, "--workers", str(workers)],
        stdout=subprocess.PIPE,
        cwd=data_dir,  # no stray .env is read
        env=env,
        start_new_session=True,
        text=True,
    )  # fmt: skip
    try:
        line = first_line(proc, timeout_s=180)
        if not line.strip():
            raise BenchError(f"server did not start (exit code {proc.poll()})")
        info = json.loads(line)
        yield ServerInfo(info["http_url"], info["media_url"], int(info["pid"]))
    finally:
        terminate(proc)


def first_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    """The child's first line of output ("" if none came in time): how it says it is ready."""
    lines: list[str] = []
    stdout = proc.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=timeout_s)
    return lines[0] if lines else ""


def terminate(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, a while to finish (a drain, a report), then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def run_bench(
    name: str,
    bench: Callable[[Path], Coroutine[Any, Any, int]],
    errors: tuple[type[Exception], ...] = (BenchError,),
) -> int:
    """Runs `bench(tmp)` on uvloop with a temporary folder for it (and the embedded Postgres it
    may start there); stops that Postgres and removes the folder however it ends. Returns the
    bench's exit code, 130 on Ctrl-C, and 1 after printing one of `errors`."""
    tmp = Path(tempfile.mkdtemp(prefix=f"voxsouth-{name}-"))
    try:
        return uvloop.run(bench(tmp))
    except KeyboardInterrupt:
        print(f"\nbench.{name}: interrupted", file=sys.stderr)
        return 130
    except errors as exc:
        print(f"bench.{name}: {exc}", file=sys.stderr)
        return 1
    finally:
        try:
            stop_embedded(tmp / "postgres")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def raise_open_files_limit() -> None:
    """Hundreds of streams need as many sockets: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65_536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def serve(args: argparse.Namespace) -> None:
    settings = load_settings(
        database_url=args.dsn,
        data_dir=Path(args.data_dir),
        http_host="127.0.0.1",
        http_port=0,
        media_host="127.0.0.1",
        media_port=0,
        transcription_engine=args.transcription,
        log_level=args.log_level,
        log_format="text",
        workers=args.workers,
    )
    configure_logging(settings.log_level, settings.log_format)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if settings.workers > 1:
        async with supervising(settings) as urls:
            line = {"http_url": urls.http_url, "media_url": urls.media_url, "pid": os.getpid()}
            print(json.dumps(line), flush=True)
            await stop.wait()
        return
    async with running(settings) as srv:
        line = {"http_url": srv.http_url, "media_url": srv.media_url, "pid": os.getpid()}
        print(json.dumps(line), flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server_proc", description=__doc__)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument(
        "--transcription", choices=("none", "whisper", "assemblyai", "deepgram"), default="none"
    )
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    args = parser.parse_args(argv)
    raise_open_files_limit()
    try:
        uvloop.run(serve(args))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
