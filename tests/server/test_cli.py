"""The `voxsouth` command as a user runs it: a real process, real signals, real output."""

from __future__ import annotations

import uuid
from pathlib import Path

import aiohttp

from server.settings import GENERATED_SECRETS
from tests.conftest import SPEECH
from tests.support.numbers import new_number
from tests.support.process import cli_env, run_cli, serving


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
        "VOXSOUTH_CREDENTIALS_KEY",
        "VOXSOUTH_PUBLIC_URL",
        "VOXSOUTH_MEDIA_PUBLIC_URL",
    ):
        assert name in err
    assert not (tmp_path / "data" / "secrets").exists()


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
        for name in GENERATED_SECRETS:
            assert (secrets / name).stat().st_mode & 0o777 == 0o600
    assert served.returncode == 0, served.stderr[-2000:]
    # A database other nodes may share, with secrets only this node has: it says so.
    assert "every node on it needs the same ones" in served.banner
    for name in GENERATED_SECRETS:
        # Secrets are never printed or logged.
        secret = (secrets / name).read_text()
        assert secret not in served.banner and secret not in served.stderr


async def test_admin_and_simulate_against_a_running_server(tmp_path: Path, pg_dsn: str) -> None:
    number = new_number()
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
