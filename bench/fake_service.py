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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.server_proc import ROOT, BenchError, first_line, terminate


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
        url = first_line(proc, timeout_s=60).strip()
        if not url.startswith("ws://"):
            raise BenchError(f"the fake {service} did not start (exit code {proc.poll()})")
        fake = FakeService(proc.pid, url)
        yield fake
    finally:
        terminate(proc)
    if report_path.exists():
        fake.report = json.loads(report_path.read_text())
