"""`voxsouth serve --workers N` with N > 1: a parent process that runs N server processes.

One process is one event loop, and one loop uses one core; several processes use them all. The
parent does what must happen once, and only that:
- resolves the database (`DATABASE_URL`, or the embedded Postgres, which it starts and stops
  after the last worker has drained) and migrates it;
- binds the HTTP and media ports, so port 0 works and every worker serves the same port;
- accepts the media connections and passes each to the worker holding its call
  (server.media_dispatch: every stream of a call meets the same worker, where its live state
  is), while the workers accept HTTP connections themselves;
- creates a fresh folder for the workers' metrics, and removes it at the end (and, at the
  start, those of parents killed outright, which could not);
- runs a worker (server/worker.py) in each of N slots, and another each time one exits, or
  hangs: a worker says it is alive every second, and one silent for VOXSOUTH_WORKER_HANG_S
  is killed.
A worker runs the whole server: its own pool, process lease, feed listener, transcription
threads (a share of VOXSOUTH_TRANSCRIPTION_WORKERS) and event writer, journaling into its slot's
folder, `journal/worker-K`, which a restarted worker K takes again and so replays what its
predecessor journaled. Workers that exit in quick succession wait longer each time before the
next starts (`restart_delay`). SIGTERM or SIGINT to the parent (`supervising` being left) is
passed on as SIGTERM to every worker; each drains its streams as `serve` does; then the parent
stops Postgres (if it started it) and the command exits 0.

Metrics: workers keep their figures in files in that folder (prometheus_client's multiprocess
mode, `PROMETHEUS_MULTIPROC_DIR`), so /metrics on any worker reads the whole server's
(server.health); each gauge says how workers add up (`multiprocess_mode`), and an exited
worker's live gauges are dropped (`mark_process_dead`) while its counts stay in the totals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from types import TracebackType

from prometheus_client.multiprocess import mark_process_dead

from server.app import Listeners, ServerUrls, bind_listeners, server_urls
from server.connection_budget import pool_size_per_worker, postgres_limits
from server.database import open_database
from server.errors import VoxsouthError
from server.media_dispatch import MediaDispatcher
from server.settings import Settings
from server.worker import READY
from storage.embedded import stop_embedded
from storage.journal import Journal

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
STEADY_AFTER_S = 30.0
"""A worker that ran this long before it exited was not crash-looping."""


def restart_delay(quick_exits: int) -> float:
    """How long a slot waits before its next worker, after `quick_exits` workers in a row
    exited within STEADY_AFTER_S of their start: none after one (a crash should not cost
    capacity), then from 0.5 s doubling to 30 s, so a worker that cannot start does not spin."""
    if quick_exits <= 1:
        return 0.0
    return min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2.0 ** (quick_exits - 2))


def journal_folders(data_dir: Path, workers: int) -> list[Path]:
    """Each slot's journal folder: `journal/` for a single process, as before workers existed,
    and `journal/worker-K` for worker K of several. Events waiting in any other (left by a run
    with another number of workers) first move to the first slot's journal: changing
    --workers loses none of them."""
    root = data_dir / "journal"
    slots = [root] if workers == 1 else [root / f"worker-{k}" for k in range(1, workers + 1)]
    others = [root] if root.is_dir() else []
    others += sorted(p for p in root.glob("worker-*") if p.is_dir())
    first = Journal(slots[0])
    for folder in others:
        if folder not in slots and (moved := first.adopt(folder)):
            log.warning("journal %s: %d events moved to %s", folder, moved, first.path)
    return slots


METRICS_PREFIX = "voxsouth-metrics-"
"""The workers' metrics folder: `<temp>/voxsouth-metrics-<parent pid>-<random>`."""


def remove_orphaned_metrics(temp: Path) -> list[Path]:
    """Removes (and returns) the metrics folders of parents no longer running: one that was
    killed outright (SIGKILL, the OOM killer) could not remove its own."""
    removed = []
    for folder in temp.glob(f"{METRICS_PREFIX}*-*"):
        pid = folder.name.removeprefix(METRICS_PREFIX).split("-", 1)[0]
        if not pid.isdigit() or _running(int(pid)):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


@asynccontextmanager
async def supervising(settings: Settings) -> AsyncIterator[ServerUrls]:
    """The server as `settings.workers` processes; yields its URLs once every worker listens.
    Leaving it stops the workers (each drains its streams), then the embedded Postgres, if it
    was started here."""
    async with AsyncExitStack() as stack:
        if settings.database_url is None:
            # First in, so last out: after every worker has drained its streams.
            pgdata = settings.data_dir / "postgres"
            stack.push_async_callback(asyncio.to_thread, stop_embedded, pgdata)
        dsn, pool = await open_database(settings)  # the embedded one starts here; migrates
        try:
            limits = await postgres_limits(pool)
        finally:
            await pool.close()
        pool_size = pool_size_per_worker(settings.workers, settings.db_pool_size, limits)
        if pool_size < settings.db_pool_size:
            log.warning(
                "each worker's pool holds %d connections, not VOXSOUTH_DB_POOL_SIZE %d: %d "
                "workers fit Postgres's max_connections %d so",
                pool_size, settings.db_pool_size, settings.workers, limits.max_connections,
            )  # fmt: skip
        listeners = bind_listeners(settings)
        stack.callback(listeners.close)
        remove_orphaned_metrics(Path(tempfile.gettempdir()))
        metrics_dir = Path(tempfile.mkdtemp(prefix=f"{METRICS_PREFIX}{os.getpid()}-"))
        stack.callback(shutil.rmtree, metrics_dir, ignore_errors=True)
        env = dict(os.environ)
        env["VOXSOUTH_DATABASE_URL"] = dsn  # the workers neither start Postgres nor migrate
        env["VOXSOUTH_DB_POOL_SIZE"] = str(pool_size)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        # Decode threads are the machine's, shared out; rounded up, so every core has one.
        share = -(-settings.transcription_workers // settings.workers)
        env["VOXSOUTH_TRANSCRIPTION_WORKERS"] = str(share)
        journals = journal_folders(settings.data_dir, settings.workers)
        dispatcher = MediaDispatcher(listeners.media, settings.workers)
        await stack.enter_async_context(
            Supervisor(listeners, env, metrics_dir, journals, dispatcher, settings.worker_hang_s)
        )
        # Once every worker takes connections; left first, so the workers drain with no more.
        await stack.enter_async_context(dispatcher)
        yield server_urls(settings, listeners)


class Supervisor:
    """A worker process in each slot (one per journal folder), and another each time one exits,
    until the supervisor is left. Entering returns once every slot's first worker listens; one
    that exits before fails the start (nothing served yet, so nothing to keep up)."""

    def __init__(
        self,
        listeners: Listeners,
        env: dict[str, str],
        metrics_dir: Path,
        journals: Sequence[Path],
        dispatcher: MediaDispatcher,
        hang_s: float,
    ) -> None:
        self._listeners = listeners
        self._dispatcher = dispatcher
        self._hang_s = hang_s
        self._env = env
        self._metrics_dir = metrics_dir
        self._journals = journals
        self._running: dict[int, asyncio.subprocess.Process] = {}
        self._slots: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    async def __aenter__(self) -> Supervisor:
        loop = asyncio.get_running_loop()
        firsts: list[asyncio.Future[str | None]] = [loop.create_future() for _ in self._journals]
        self._slots = [
            asyncio.create_task(self._keep(slot, first), name=f"worker-slot-{slot}")
            for slot, first in enumerate(firsts, start=1)
        ]
        failures = [ended for ended in await asyncio.gather(*firsts) if ended is not None]
        if failures:
            await self._stop()
            raise VoxsouthError(f"{failures[0]} before it listened (its error is above)")
        log.info("%d workers listening", len(self._slots))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()

    async def _stop(self) -> None:
        """SIGTERM to every worker (each drains its streams), then waits until all have exited."""
        self._stopping.set()
        for proc in self._running.values():
            with contextlib.suppress(ProcessLookupError):  # exited, not yet reaped
                proc.send_signal(signal.SIGTERM)
        # No worker starts any more: once the draining workers have closed their copies too,
        # new connections are refused at once, as by one process, not queued for no one.
        self._listeners.close()
        await asyncio.gather(*self._slots)

    async def _keep(self, slot: int, first: asyncio.Future[str | None]) -> None:
        """Runs the slot's worker, then another each time one exits, until stopping. `first`
        gets None once the first worker listens, or how it ended if it never did (then the
        slot ends: the start has failed)."""
        loop = asyncio.get_running_loop()
        quick_exits = 0
        while True:
            started = loop.time()
            try:
                ended = await self._run(slot, first)
            except Exception:  # a fault of ours: say so, rather than leave the start waiting
                log.exception("worker %d: supervision failed; its slot stays empty", slot)
                if not first.done():
                    first.set_result(f"worker {slot}'s supervision failed")
                return
            if not first.done():
                first.set_result(ended)
            if self._stopping.is_set() or first.result() is not None:
                log.info("%s", ended)
                return
            quick = loop.time() - started < STEADY_AFTER_S
            quick_exits = quick_exits + 1 if quick else 1
            delay = restart_delay(quick_exits)
            log.error("%s; starting another in %.1f s", ended, delay)
            if delay:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return

    async def _run(self, slot: int, first: asyncio.Future[str | None]) -> str:
        """One worker in `slot`, from its start to its exit; says how it ended, e.g. "worker 2
        (pid 4242) was killed by SIGKILL"."""
        http, media = self._listeners.http.fileno(), self._listeners.media.fileno()
        ours, theirs = socket.socketpair()
        # Media connections come on a socket of their own (one descriptor per message).
        handoff, their_handoff = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # Inherited sockets, not SO_REUSEPORT: the ports are bound once and stay bound for the
        # parent's whole life (port 0 works; no gap while a worker restarts), and all workers
        # take HTTP connections from one accept queue, so a worker that dies leaves the
        # connections waiting in it to the others (with SO_REUSEPORT each worker has its own
        # queue, and the kernel resets what waits in a closing one), and no other process of
        # the same user can bind the port and take a share of its connections. The kernel does
        # not spread connections evenly: whichever worker is waiting in accept() first takes
        # the next one, which favours the workers with time to spare. Workers never accept on
        # the media socket (the parent does); it is theirs only as their websocket server's.
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "server.worker",
                "--http-fd", str(http), "--media-fd", str(media),
                "--control-fd", str(theirs.fileno()), "--journal", str(self._journals[slot - 1]),
                "--media-handoff-fd", str(their_handoff.fileno()),
                pass_fds=(http, media, theirs.fileno(), their_handoff.fileno()), env=self._env,
            )  # fmt: skip
        except OSError as exc:
            ours.close()
            handoff.close()
            return f"worker {slot} could not be started ({exc})"
        finally:
            theirs.close()
            their_handoff.close()
        self._running[slot] = proc
        if self._stopping.is_set():  # stopped while it was being started
            proc.send_signal(signal.SIGTERM)
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        try:
            if await reader.readline() == READY:  # b"" if it exits first
                log.info("worker %d listening (pid %d)", slot, proc.pid)
                self._dispatcher.attach(slot, handoff)
                if not first.done():
                    first.set_result(None)
                await self._watch(slot, proc, reader)
            code = await proc.wait()
        finally:
            self._dispatcher.detach(slot)
            handoff.close()
            writer.close()  # our end of the control socket: the worker has exited
            del self._running[slot]
            # Unannotated in prometheus_client.
            mark_process_dead(proc.pid, str(self._metrics_dir))  # type: ignore[no-untyped-call]
        return f"worker {slot} (pid {proc.pid}) {_exit_text(code)}"

    async def _watch(
        self, slot: int, proc: asyncio.subprocess.Process, control: asyncio.StreamReader
    ) -> None:
        """Until the worker exits: it says it is alive every second (server.worker); one that
        falls silent for `hang_s` has a hung event loop (its calls unheard, new ones still
        routed to it) and is killed, to be replaced like any that dies."""
        while True:
            try:
                async with asyncio.timeout(self._hang_s):
                    if not await control.readline():
                        return  # it exited
            except TimeoutError:
                log.error(
                    "worker %d (pid %d) has not answered for %.0f s: killing it",
                    slot, proc.pid, self._hang_s,
                )  # fmt: skip
                self._dispatcher.detach(slot)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                return


def _exit_text(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"
