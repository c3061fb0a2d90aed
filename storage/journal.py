"""A local, append-only journal of media events Postgres could not take yet.

JSON lines in the data folder, written and flushed before the writer moves on, so events
survive a database outage and a process restart (replayed at the next start). Replay is safe to
repeat: every write is idempotent by event id. Events Postgres rejects as invalid go to
`rejected.jsonl` beside it, to be looked at, never silently dropped.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from media.events import MediaEvent, event_from_dict, event_to_dict

log = logging.getLogger(__name__)


def _drop_torn_line(path: Path) -> None:
    """A crash mid-append leaves a last line without its newline, which the next append would
    run into, losing that event too: cut the file back to its last whole line (the torn event
    was never completely written, so nothing that was is lost)."""
    if not path.exists():
        return
    with path.open("r+b") as f:
        data = f.read()
        if not data or data.endswith(b"\n"):
            return
        whole = data.rfind(b"\n") + 1
        log.error("journal %s ends in a torn line (%d bytes): dropped", path, len(data) - whole)
        f.truncate(whole)
        f.flush()
        os.fsync(f.fileno())


class Journal:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "events.jsonl"
        self.rejected_path = folder / "rejected.jsonl"
        for path in (self.path, self.rejected_path):
            _drop_torn_line(path)
        self.pending = self._count_lines(self.path)

    @staticmethod
    def _count_lines(path: Path) -> int:
        if not path.exists():
            return 0
        with path.open("rb") as f:
            return sum(1 for line in f if line.strip())

    def append(self, events: Iterable[MediaEvent]) -> None:
        self.pending += self._write(self.path, events)

    def reject(self, event: MediaEvent, error: str) -> None:
        record = {"error": error, "event": event_to_dict(event)}
        with self.rejected_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    @staticmethod
    def _write(path: Path, events: Iterable[MediaEvent]) -> int:
        lines = [json.dumps(event_to_dict(e)) + "\n" for e in events]
        with path.open("a", encoding="utf-8") as f:
            f.writelines(lines)
            f.flush()
        return len(lines)

    def read(self) -> tuple[list[MediaEvent], int]:
        """Every parseable event, in order, and how many lines they came from (to `consume`
        once written). A line that cannot be read is logged and skipped."""
        events: list[MediaEvent] = []
        lines = 0
        for number, line in enumerate(self._lines(), start=1):
            lines += 1
            try:
                events.append(event_from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                log.error("journal %s line %d is unreadable; skipped", self.path, number)
        return events, lines

    def consume(self, lines: int) -> None:
        """Removes the first `lines` lines, those a replay read and wrote; events appended
        since (the writer keeps journaling while a replay runs) stay for the next one."""
        rest = self._lines()[lines:]
        if rest:
            staging = self.path.with_suffix(".tmp")
            with staging.open("w", encoding="utf-8") as f:
                f.writelines(rest)
                f.flush()
                os.fsync(f.fileno())
            staging.replace(self.path)  # atomic: a crash leaves the old journal or the new one
        else:
            self.path.unlink(missing_ok=True)
        self.pending = len(rest)

    def adopt(self, folder: Path) -> int:
        """Moves the events still waiting in the journal in `folder` (one no process will
        replay) to the end of this one, before any writer uses either; returns how many.
        Appended and fsynced before the other is removed: a crash between the two replays
        them twice, which writes nothing twice."""
        other = Journal(folder)
        lines = other._lines()
        if lines:
            with self.path.open("a", encoding="utf-8") as f:
                f.writelines(lines)
                f.flush()
                os.fsync(f.fileno())
            self.pending += len(lines)
        other.path.unlink(missing_ok=True)
        return len(lines)

    def _lines(self) -> list[str]:
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8", errors="replace", newline="\n") as f:
            return [line for line in f if line.strip()]

    def sync(self) -> None:
        """fsync, for shutdown: what is in the journal then survives a power cut too."""
        if self.path.exists():
            with self.path.open("rb") as f:
                os.fsync(f.fileno())
