"""The `voxsouth` command: serve, migrate, simulate, admin."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import asyncpg
import uvloop

from control import credentials
from control.numbers import is_e164
from control.permissions import ROLES
from server.database import database_dsn, open_database
from server.errors import VoxsouthError
from server.log_setup import configure_logging
from server.settings import Settings, SettingsError, generated_secret_names, load_settings
from server.simulator.audio import AudioFileError, read_call_audio
from server.simulator.client import SignalWireSimulator, SimulationError
from server.simulator.report import format_report, wait_for_streams_done
from storage import accounts, calls
from storage.db import create_pool
from storage.embedded import EmbeddedPostgresError

DEMO_ORG = "Demo organization"
DEMO_NUMBER = "+15550100000"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voxsouth", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server (HTTP control plane and media websockets)")
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="server processes (default VOXSOUTH_WORKERS, else the CPUs this process may use)",
    )
    sub.add_parser("migrate", help="apply database migrations and exit")

    sim = sub.add_parser("simulate", help="play SignalWire's side of calls against the server")
    sim.add_argument("--wav", type=Path, required=True, help="stereo: left caller, right agent")
    sim.add_argument("--calls", type=int, default=1, help="concurrent calls (default 1)")
    sim.add_argument("--speed", type=float, default=1.0, help="1 = real time (default)")
    sim.add_argument(
        "--dtmf", action="append", default=[], metavar="SECONDS:DIGIT", help="e.g. 3.0:0"
    )
    sim.add_argument("--to", default=None, help=f"called number (default: demo {DEMO_NUMBER})")
    sim.add_argument("--from", dest="from_number", default="+15550199999")
    sim.add_argument("--server", default=None, help="server base URL (default: from settings)")
    sim.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for results")

    admin = sub.add_parser("admin", help="set up organizations and numbers")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    org = admin_sub.add_parser("create-org", help="create an organization")
    org.add_argument("name")
    org.add_argument("--number", help="an E.164 number SignalWire sends to this server")
    org.add_argument("--dial-target", help="E.164 number to connect its calls to")
    org.add_argument(
        "--consent-default",
        choices=("all_party", "one_party"),
        default="all_party",
        help="recording consent rule for calls whose parties are outside the US state table",
    )
    org.add_argument(
        "--consent-mode",
        choices=("speech", "ask", "keypad"),
        default="speech",
        help="what the platform plays: a notice (speech), a question answered by voice or "
        "keypad (ask), or a keypad question (keypad)",
    )
    org.add_argument(
        "--implied-consent",
        action="store_true",
        help="take the notice as consent on calls where one party's consent is enough",
    )
    num = admin_sub.add_parser("add-number", help="route a number to an organization")
    num.add_argument("org_id")
    num.add_argument("number")
    num.add_argument("--dial-target")
    user = admin_sub.add_parser("create-user", help="create a user (password read from stdin)")
    user.add_argument("email")
    member = admin_sub.add_parser("add-member", help="give a user a role in an organization")
    member.add_argument("org_id")
    member.add_argument("email")
    member.add_argument("role", choices=ROLES)
    key = admin_sub.add_parser("create-api-key", help="create an API key (printed once)")
    key.add_argument("org_id")
    key.add_argument("--role", choices=ROLES, required=True)
    key.add_argument("--name", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {} if getattr(args, "workers", None) is None else {"workers": args.workers}
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        for line in str(exc).splitlines():
            print(f"voxsouth: invalid setting: {line}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    commands = {"serve": _serve, "migrate": _migrate, "simulate": _simulate, "admin": _admin}
    try:
        return uvloop.run(commands[args.command](settings, args))
    except (VoxsouthError, EmbeddedPostgresError, SimulationError, AudioFileError) as exc:
        print(f"voxsouth: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"voxsouth: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _serve(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here: the whole server takes a second to load, which admin commands need not.
    from server.app import running
    from server.workers import journal_folders, supervising

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if settings.workers > 1:
        async with supervising(settings) as urls:
            print(_banner(settings, urls.http_url, urls.public_url, urls.media_url), flush=True)
            await stop.wait()
            print("voxsouth: shutting down", flush=True)
        return 0
    journal_folders(settings.data_dir, 1)  # what a run with several workers left is replayed
    async with running(settings) as srv:
        print(_banner(settings, srv.http_url, srv.public_url, srv.media_url), flush=True)
        await stop.wait()
        print("voxsouth: shutting down", flush=True)
        stop.clear()  # set again by a second signal, which ends the drain
        await srv.stop_gracefully(stop)
    return 0


def _banner(settings: Settings, http_url: str, public_url: str, media_url: str) -> str:
    lines = [
        "voxsouth is running" + (f" ({settings.workers} workers)" if settings.workers > 1 else ""),
        f"  control plane      {http_url}",
        f"  media streams      {media_url}",
        f"  health, metrics    {http_url}/health/ready  {http_url}/metrics",
        f"  supervisors        {http_url}/dashboard  (live feed: {http_url}/api/feed)",
        "  SignalWire number settings (use your public https URL):",
        f"    voice webhook    {public_url}/laml/voice  (POST)",
        f"    status callback  {public_url}/laml/status  (POST)",
        "  try it without a phone:",
        "    .venv/bin/voxsouth simulate --wav tests/fixtures/speech/two_party.wav",
        "  first sign-in (API at /api/):",
        '    ORG=$(.venv/bin/voxsouth admin create-org "My org" --number +1XXXXXXXXXX)',
        "    .venv/bin/voxsouth admin create-user you@example.com   # password on stdin",
        "    .venv/bin/voxsouth admin add-member $ORG you@example.com owner",
        f"    then sign in at {http_url}/dashboard, or POST {http_url}/api/auth/login",
    ]
    generated = generated_secret_names(settings)
    if generated or not settings.public_url:
        lines.append(f"  development mode: data and generated secrets in {settings.data_dir}/")
        lines.append("  production must set VOXSOUTH_ENV=production, VOXSOUTH_PUBLIC_URL,")
        lines.append("    VOXSOUTH_MEDIA_PUBLIC_URL, VOXSOUTH_SIGNALWIRE_SIGNING_KEY,")
        lines.append("    VOXSOUTH_STREAM_TOKEN_SECRET and DATABASE_URL")
    if generated and settings.database_url is not None:
        # Another node on this database generates its own: its stream tokens, play URLs and
        # sealed keys would not be this one's.
        lines.append(f"  a shared database with secrets generated here ({', '.join(generated)}):")
        lines.append(f"    every node on it needs the same ones (copy {settings.data_dir}/secrets/")
        lines.append("    or set them), or a stream sent to another node fails its token check")
    return "\n".join(lines)


async def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    _dsn, pool = await open_database(settings)
    await pool.close()
    print("voxsouth: database is up to date")
    return 0


async def _admin(settings: Settings, args: argparse.Namespace) -> int:
    for value in (getattr(args, "number", None), getattr(args, "dial_target", None)):
        if value is not None and not is_e164(value):
            raise VoxsouthError(f"{value!r} is not an E.164 number (+ and 7 to 15 digits)")
    _dsn, pool = await open_database(settings)
    try:
        if args.admin_command == "create-org":
            org_id = await calls.create_org(
                pool,
                args.name,
                args.consent_default,
                consent_mode=args.consent_mode,
                implied_by_notice=args.implied_consent,
            )
            if args.number:
                await calls.add_phone_number(pool, org_id, args.number, args.dial_target)
            print(org_id)
        elif args.admin_command == "add-number":
            org_id = _org_id(args.org_id)
            try:
                await calls.add_phone_number(pool, org_id, args.number, args.dial_target)
            except asyncpg.ForeignKeyViolationError:
                raise VoxsouthError(f"no organization {org_id}") from None
            except asyncpg.UniqueViolationError:
                raise VoxsouthError(f"{args.number} belongs to another organization") from None
            print(f"{args.number} → {org_id}")
        elif args.admin_command == "create-user":
            password = sys.stdin.readline().rstrip("\n")
            if problem := credentials.password_problem(password):
                raise VoxsouthError(f"password {problem} (give it on standard input)")
            try:
                user_id = await accounts.create_user(
                    pool, args.email, credentials.hash_password(password)
                )
            except asyncpg.CheckViolationError:
                raise VoxsouthError(f"{args.email!r} is not an email address") from None
            except asyncpg.UniqueViolationError:
                raise VoxsouthError(f"{args.email} already has an account") from None
            print(user_id)
        elif args.admin_command == "add-member":
            org_id = _org_id(args.org_id)
            user = await accounts.user_by_email(pool, args.email)
            if user is None:
                raise VoxsouthError(f"no user {args.email}")
            try:
                await accounts.add_member(pool, org_id, user.id, args.role)
            except asyncpg.ForeignKeyViolationError:
                raise VoxsouthError(f"no organization {org_id}") from None
            print(f"{args.email} is {args.role} of {org_id}")
        else:
            org_id = _org_id(args.org_id)
            new_key = credentials.new_api_key()
            try:
                await accounts.create_api_key(
                    pool, org_id=org_id, name=args.name, prefix=new_key.prefix,
                    key_hash=new_key.key_hash, role=args.role, created_by=None,
                )  # fmt: skip
            except asyncpg.ForeignKeyViolationError:
                raise VoxsouthError(f"no organization {org_id}") from None
            print(new_key.key)
    finally:
        await pool.close()
    return 0


def _org_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise VoxsouthError(f"{value!r} is not an organization id") from None


async def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    audio = read_call_audio(args.wav)
    dtmf = []
    for item in args.dtmf:
        at, _, digit = item.partition(":")
        try:
            dtmf.append((float(at), digit))
        except ValueError:
            raise VoxsouthError(f"--dtmf takes SECONDS:DIGIT, not {item!r}") from None
    if args.calls < 1 or args.speed <= 0:
        raise VoxsouthError("--calls must be at least 1 and --speed above 0")
    dsn = await database_dsn(settings)
    to_number = args.to or await _demo_number(dsn)
    base_url = args.server or settings.http_base_url
    async with aiohttp.ClientSession() as http:
        sim = SignalWireSimulator(
            http, base_url=base_url, signing_key=settings.secret("signalwire_signing_key")
        )
        results = await asyncio.gather(
            *(
                sim.call(
                    audio,
                    to_number=to_number,
                    from_number=args.from_number,
                    speed=args.speed,
                    dtmf=dtmf,
                )
                for _ in range(args.calls)
            )
        )
        failures = 0
        for result in results:
            if result.errors:
                failures += 1
                print(f"call {result.call_sid}: {'; '.join(result.errors)}", file=sys.stderr)
            report = await wait_for_streams_done(dsn, result.call_sid, args.timeout)
            print(format_report(report))
    return 1 if failures else 0


async def _demo_number(dsn: str) -> str:
    """Development convenience: the demo org and number, created on first use."""
    pool = await create_pool(dsn, max_size=1)
    try:
        if await calls.route_number(pool, DEMO_NUMBER) is None:
            # The demo's numbers are in no US state, so its org decides the consent rule: one
            # party (the agent), so the demo shows words without a consenting caller.
            org_id = await calls.create_org(pool, DEMO_ORG, consent_default="one_party")
            with contextlib.suppress(asyncpg.UniqueViolationError):
                await calls.add_phone_number(pool, org_id, DEMO_NUMBER)
    finally:
        await pool.close()
    return DEMO_NUMBER


if __name__ == "__main__":
    sys.exit(main())
