"""Schemathesis against the real server process: no 500s, no response outside the schema."""

from __future__ import annotations

import asyncio
import shutil
import sys
import uuid
from pathlib import Path

from storage.db import Pool
from tests.conftest import timeout
from tests.support.accounts import make_org
from tests.support.fake_signalwire import running_fake_signalwire
from tests.support.process import cli_env, serving

PROJECT, TOKEN = str(uuid.uuid4()), "PT-fuzz-token"


async def test_generated_requests_find_no_server_errors_and_no_schema_violations(
    tmp_path: Path, pg_dsn: str, pool: Pool
) -> None:
    org = await make_org(pool, "Fuzzed org")
    await pool.execute("UPDATE organizations SET plan = 'enterprise' WHERE id = $1", org.id)
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli is not None, "schemathesis is a dev dependency"
    async with running_fake_signalwire(PROJECT, TOKEN) as fake:
        env = cli_env(
            tmp_path,
            pg_dsn,
            # Generated requests come fast; the rate limits have their own tests.
            VOXSOUTH_API_RATE_PER_S="100000",
            VOXSOUTH_API_BURST="100000",
            VOXSOUTH_SIGNALWIRE_SPACE_URL=fake.url,
            VOXSOUTH_SIGNALWIRE_PROJECT_ID=PROJECT,
            VOXSOUTH_SIGNALWIRE_API_TOKEN=TOKEN,
            # Generated words up to 2,500 characters each would be rendered by Piper, minutes
            # of speech per example; rendering is tested in tests/control/test_voices.py.
            VOXSOUTH_OFFLINE_VOICE="false",
        )
        async with serving(env, tmp_path) as served:
            proc = await asyncio.create_subprocess_exec(
                cli, "run", f"{served.http_url}/api/openapi.json",
                "-H", f"Authorization: Bearer {org.keys['owner']}",
                "--checks", "not_a_server_error,response_schema_conformance",
                "--max-examples", "5", "--generation-deterministic", "--workers", "1",
                "--request-timeout", "10",
                cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            async with asyncio.timeout(timeout(180)):
                output, _ = await proc.communicate()
    report = output.decode(errors="replace")
    # Its failures (which request, how to reproduce it) come first, its advice last: both kept,
    # and the errors the server logged meanwhile (a 500's traceback).
    errors = [line for line in served.stderr.splitlines() if '"level": "error"' in line]
    assert proc.returncode == 0, "\n".join(
        [report[:8000], "…", report[-2000:], "server errors:", *errors[-10:]]
    )
    assert "Tested: " in report
