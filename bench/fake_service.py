"""A fake cloud speech service in its own process, for benches that load the server with a
cloud engine: `python -m server.simulator.fake_stt` with placeholder ears (it must keep up with
hundreds of sessions; the server's work does not depend on the words), so its CPU is its own
and not counted as the server's. On exit it leaves a report: per session, its own latency per
final result (from the arrival of the audio where the speech ended to sending the result)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent


@dataclass(slots=True)
class FakeService:
    pid: int
    url: str
    report: dict[str, Any] = field(default_factory=dict)
    """Filled in when the process has ended."""

    @property
    def final_latencies_s(self) -> list[float]:
        return [x for s in self.report.get("sessions", ()) for x in s["final_latency_s"]]


def free_port() -> int:
    """A loopback port nothing listens on now, so that a fake restarted per point keeps the URL
    the server was configured with."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def fake_service_process(
    service: str, api_key: str, port: int, report_path: Path
) -> Iterator[FakeService]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.simulator.fake_stt", "--service", service,
         "--api-key", api_key, "--ears", "placeholder", "--port", str(port),
         "--report", str(report_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
        text=True,
    )  # fmt: skip
    try:
        stdout = proc.stdout
        assert stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=60)
        if not lines or not lines[0].startswith("ws://"):
            raise RuntimeError(f"the fake {service} did not start (exit code {proc.poll()})")
        fake = FakeService(proc.pid, lines[0].strip())
        yield fake
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    if report_path.exists():
        fake.report = json.loads(report_path.read_text())
