"""A real Prometheus scrapes the real server and evaluates deploy/'s alert rules against it.

`promtool` checks the rule file and the configuration the test runs Prometheus with. Then
Prometheus scrapes the server every second on loopback, sees a counter move with the requests
a test makes, evaluates every alert rule without error, and runs every PromQL expression of the
alerts and the Grafana dashboard: the name check in tests/server/test_deploy.py cannot catch an
expression Prometheus would refuse.

Both tools come from Debian's `prometheus` (on PATH; `make test` installs it when run as root).
Without them these tests skip, unless VOXSOUTH_REQUIRE_PROMETHEUS=1 (CI) makes that a failure.
The live test takes `tools` before `srv`: no server starts when there is no Prometheus.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from prometheus_client import REGISTRY

from server.app import RunningServer
from tests.conftest import timeout

DEPLOY = Path(__file__).parents[2] / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "voxsouth.json"
POLL_S = 0.1
"""How often Prometheus's API is asked again while a test waits on it."""


@dataclass(frozen=True, slots=True)
class Tools:
    prometheus: str
    promtool: str


def prometheus_tools() -> Tools:
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if prometheus is not None and promtool is not None:
        return Tools(prometheus, promtool)
    if os.environ.get("VOXSOUTH_REQUIRE_PROMETHEUS") == "1":
        pytest.fail(
            "prometheus or promtool is not on PATH, and VOXSOUTH_REQUIRE_PROMETHEUS=1 requires "
            "them (Debian's `prometheus` package)"
        )
    pytest.skip(
        "prometheus or promtool is not on PATH (`make test` installs Debian's `prometheus` when "
        "run as root); set VOXSOUTH_REQUIRE_PROMETHEUS=1 to make this a failure"
    )


@pytest.fixture
def tools() -> Tools:
    """Both tools' paths, or a skip (or failure) before any server is started for nothing."""
    return prometheus_tools()


def prometheus_config(target: str) -> str:
    """Scrapes `target` (host:port) and evaluates the repo's alert rules, both every second.
    Written as JSON, which is YAML, so the test needs no YAML writer."""
    return json.dumps(
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {
                    "job_name": "voxsouth",
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": [target]}],
                }
            ],
        }
    )


def alert_names() -> set[str]:
    # alerts.yml writes one `- alert: Name` a line; the venv has PyYAML but no stubs for it.
    return set(re.findall(r"^\s*- alert: (\S+)\s*$", ALERTS.read_text(), re.MULTILINE))


def dashboard_expressions() -> list[str]:
    """Every query of the dashboard, wherever a panel (or a row's panel) keeps it."""
    found: list[str] = []

    def keep(obj: dict[str, Any]) -> dict[str, Any]:  # called on every JSON object, nested too
        if isinstance(obj.get("expr"), str):
            found.append(obj["expr"])
        return obj

    json.loads(DASHBOARD.read_text(), object_hook=keep)
    return found


def test_promtool_accepts_the_alert_rules_and_the_test_configuration(
    tools: Tools, tmp_path: Path
) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(prometheus_config("127.0.0.1:8080"))
    for check in (["check", "rules", str(ALERTS)], ["check", "config", str(config)]):
        result = subprocess.run(
            [tools.promtool, *check], capture_output=True, text=True, timeout=timeout(30)
        )
        assert result.returncode == 0, result.stdout + result.stderr


@dataclass
class Prometheus:
    url: str
    process: asyncio.subprocess.Process
    log: Path
    """Its stdout and stderr, shown when a wait on it fails."""
    http: aiohttp.ClientSession

    async def answer(self, path: str, **params: str) -> dict[str, Any]:
        """The whole JSON answer of `/api/v1/{path}` (errors come with status 4xx and a body)."""
        async with self.http.get(f"{self.url}/api/v1/{path}", params=params) as resp:
            body: dict[str, Any] = await resp.json()
        return body

    async def api(self, path: str, **params: str) -> Any:
        body = await self.answer(path, **params)
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    async def rules(self) -> list[dict[str, Any]]:
        groups = (await self.api("rules"))["groups"]
        return [rule for group in groups for rule in group["rules"]]

    async def until(
        self, predicate: Callable[[], Awaitable[bool]], what: str, seconds: float = 10
    ) -> None:
        """Waits until `predicate` holds. Prometheus is another process and announces none of
        its progress, so its HTTP API is asked again every POLL_S: a bounded poll of the state
        waited for, not a sleep standing in for it. A Prometheus that exits fails the wait."""
        try:
            async with asyncio.timeout(timeout(seconds)):
                while not await predicate():
                    assert self.process.returncode is None, f"exited:\n{self.log.read_text()}"
                    await asyncio.sleep(POLL_S)
        except TimeoutError:
            raise AssertionError(
                f"Prometheus: {what}, not within {seconds} s; its log:\n{self.log.read_text()}"
            ) from None

    async def ready(self) -> bool:
        try:
            async with self.http.get(f"{self.url}/-/ready") as resp:
                return resp.status == 200
        except aiohttp.ClientConnectionError:  # not listening yet
            return False

    async def target_up(self) -> bool:
        targets = (await self.api("targets"))["activeTargets"]
        return bool(targets) and all(target["health"] == "up" for target in targets)


def free_port() -> int:
    # Prometheus takes no port 0; one that another process takes meanwhile makes it exit,
    # which fails the first wait with its log.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def running_prometheus(binary: str, target: str, folder: Path) -> AsyncIterator[Prometheus]:
    """Prometheus scraping `target`, its files in `folder` (named prometheus*, beside others)."""
    config = folder / "prometheus.yml"
    config.write_text(prometheus_config(target))
    log = folder / "prometheus.log"
    port = free_port()
    with log.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        async with aiohttp.ClientSession() as http:
            prometheus = Prometheus(f"http://127.0.0.1:{port}", process, log, http)
            await prometheus.until(prometheus.ready, "ready")
            yield prometheus
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            async with asyncio.timeout(timeout(10)):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


@pytest.fixture
async def prometheus(tools: Tools, srv: RunningServer, tmp_path: Path) -> AsyncIterator[Prometheus]:
    """Prometheus scraping `srv`, once it has scraped it."""
    target = urlsplit(srv.http_url).netloc
    async with running_prometheus(tools.prometheus, target, tmp_path) as running:
        await running.until(running.target_up, f"scraped {srv.http_url}/metrics")
        yield running


# One test for all that needs a live Prometheus: it hands a new target to its scrapers only
# after about 5 s (its discovery throttle, not configurable in 2.42), and the suite has no
# seconds to spare.
async def test_prometheus_scrapes_the_server_evaluates_every_rule_and_runs_every_query(
    prometheus: Prometheus, srv: RunningServer, http: aiohttp.ClientSession
) -> None:
    labels = {"route": "/health/live", "status": "200"}
    # Counters live for the whole test session: earlier tests may have moved this one.
    before = REGISTRY.get_sample_value("voxsouth_http_requests_total", labels) or 0.0
    for _ in range(3):
        async with http.get(f"{srv.http_url}/health/live") as resp:
            assert resp.status == 200
    query = 'voxsouth_http_requests_total{route="/health/live",status="200"}'

    async def counted() -> bool:
        results = (await prometheus.api("query", query=query))["result"]
        return [float(result["value"][1]) for result in results] == [before + 3]

    await prometheus.until(counted, f"{query} = {before + 3}")

    # Rules evaluated after the server's figures arrived ran against real series (Prometheus
    # runs on this machine's clock).
    data_since = datetime.now(UTC)

    async def evaluated() -> bool:
        rules = await prometheus.rules()
        return bool(rules) and all(
            datetime.fromisoformat(rule["lastEvaluation"]) >= data_since for rule in rules
        )

    await prometheus.until(evaluated, "every rule evaluated on the scraped series")
    rules = await prometheus.rules()
    expected = alert_names()
    assert expected, f"no alerts found in {ALERTS}"
    assert not expected - {rule["name"] for rule in rules}, "alerts Prometheus did not load"
    failing = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
    assert not failing

    # Every alert of the file is loaded, so the rules' queries are the file's expressions.
    dashboard = dashboard_expressions()
    assert dashboard, f"no queries found in {DASHBOARD}"
    errors: dict[str, str] = {}
    for expression in [*(rule["query"] for rule in rules), *dashboard]:
        answer = await prometheus.answer("query", query=expression)
        if answer["status"] != "success":
            errors[expression] = answer["error"]
    assert not errors
