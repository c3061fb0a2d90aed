"""The `voxsouth` command as a user runs it: a real process, real signals, real output."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.conftest import SPEECH, timeout


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


async def test_an_invalid_setting_is_one_clear_line_and_a_nonzero_exit(
    tmp_path: Path, pg_dsn: str
) -> None:
    env = cli_env(tmp_path, pg_dsn, VOXSOUTH_HTTP_PORT="eighty", VOXSOUTH_ENV="staging")
    code, out, err = await run_cli("serve", env=env, cwd=tmp_path)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert any("VOXSOUTH_HTTP_PORT" in line for line in lines)
    assert any("VOXSOUTH_ENV" in line for line in lines)


async def test_production_refuses_to_start_without_its_secrets_and_public_urls(
    tmp_path: Path, pg_dsn: str
) -> None:
    env = cli_env(tmp_path, pg_dsn, VOXSOUTH_ENV="production")
    code, _, err = await run_cli("serve", env=env, cwd=tmp_path)
    assert code == 2
    for name in (
        "VOXSOUTH_SIGNALWIRE_SIGNING_KEY",
        "VOXSOUTH_STREAM_TOKEN_SECRET",
        "VOXSOUTH_PUBLIC_URL",
        "VOXSOUTH_MEDIA_PUBLIC_URL",
    ):
        assert name in err
    assert not (tmp_path / "data" / "secrets").exists()


@dataclass
class Serving:
    http_url: str
    banner: str
    stderr: str = ""
    returncode: int | None = None


@asynccontextmanager
async def serving(env: dict[str, str], cwd: Path) -> AsyncIterator[Serving]:
    """`voxsouth serve` as a process: yields once it printed its URLs; SIGTERM on exit."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "serve", env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    served = Serving(http_url="", banner="")
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
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout(30)):
            _, err = await proc.communicate()
    served.stderr, served.returncode = err.decode(), proc.returncode


async def test_serve_prints_its_urls_becomes_ready_and_stops_cleanly_on_sigterm(
    tmp_path: Path, pg_dsn: str
) -> None:
    secrets = tmp_path / "data" / "secrets"
    async with serving(cli_env(tmp_path, pg_dsn), tmp_path) as served:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{served.http_url}/health/ready") as resp,
        ):
            assert resp.status == 200
        for name in ("signalwire_signing_key", "stream_token_secret"):
            assert (secrets / name).stat().st_mode & 0o777 == 0o600
    assert served.returncode == 0, served.stderr[-2000:]
    for name in ("signalwire_signing_key", "stream_token_secret"):
        # Secrets are never printed or logged.
        secret = (secrets / name).read_text()
        assert secret not in served.banner and secret not in served.stderr


async def test_admin_and_simulate_against_a_running_server(tmp_path: Path, pg_dsn: str) -> None:
    number = "+1555" + str(uuid.uuid4().int)[:7]
    env = cli_env(tmp_path, pg_dsn)
    code, out, err = await run_cli(
        "admin", "create-org", "CLI org", "--number", number, env=env, cwd=tmp_path
    )
    assert code == 0, err
    uuid.UUID(out.strip())
    code, _, err = await run_cli(
        "admin", "create-org", "Bad", "--number", "555", env=env, cwd=tmp_path
    )
    assert code == 1 and "E.164" in err

    async with serving(env, tmp_path) as served:
        code, out, err = await run_cli(
            "simulate", "--wav", str(SPEECH / "caller_mono.wav"), "--speed", "8",
            "--to", number, "--server", served.http_url, env=env, cwd=tmp_path,
        )  # fmt: skip
    assert code == 0, err
    assert "status=completed" in out
    assert f"to={number}" in out
    assert "ended=stop" in out


async def test_a_first_user_and_api_key_from_the_shell(tmp_path: Path, pg_dsn: str) -> None:
    env = cli_env(tmp_path, pg_dsn)
    email = f"first-{uuid.uuid4().hex[:6]}@example.com"
    code, org_id, err = await run_cli("admin", "create-org", "Shell org", env=env, cwd=tmp_path)
    assert code == 0, err
    org_id = org_id.strip()
    code, _, err = await run_cli(
        "admin", "create-user", email, env=env, cwd=tmp_path, stdin=b"short\n"
    )
    assert code == 1 and "at least 12 characters" in err
    code, _, err = await run_cli(
        "admin", "create-user", email, env=env, cwd=tmp_path, stdin=b"a perfectly long password\n"
    )
    assert code == 0, err
    code, out, err = await run_cli(
        "admin", "add-member", org_id, email, "owner", env=env, cwd=tmp_path
    )
    assert code == 0 and "owner" in out, err
    code, key, err = await run_cli(
        "admin", "create-api-key", org_id, "--role", "admin", "--name", "ci",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert code == 0 and key.startswith("vxs_"), err
    async with serving(env, tmp_path) as served, aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {key.strip()}"}
        async with http.get(f"{served.http_url}/api/auth/me", headers=headers) as resp:
            me = await resp.json()
        async with http.post(
            f"{served.http_url}/api/auth/login",
            json={"email": email, "password": "a perfectly long password"},
        ) as resp:
            assert resp.status == 200
    assert me["org_id"] == org_id and me["role"] == "admin" and me["actor_type"] == "api_key"
