"""A campaign of many targets dialled by two server processes against a fake SignalWire.

    python -m bench.dialler [--targets 10000] [--cps 50] [--cap 25] [--lifetime 0.4]

Starts an embedded Postgres (in a temporary folder, removed at the end), the fake SignalWire
in this process (tests/support/fake_signalwire.py, with a `Lifecycle`: each call it is asked to
create ends after `--lifetime` seconds and posts its signed final status callback to the server
that placed it, as SignalWire does), and two real server processes sharing the database. It
makes one org, `--targets` voice targets and a running campaign (calling hours all day, cap
`--cap`), then waits for the campaign to complete and prints, from the fake's side:

- calls placed, and numbers called more than once (must be 0);
- the rate: calls over the time from the first create request to the last, against `--cps`,
  and the most creates in any one second;
- the most calls in flight at once (created, not yet ended), against the cap.

Targets: no number called twice, every target called, never more than the cap in flight, the
rate never above `--cps` by more than 5 %; and either the rate within 5 % of `--cps`, or (when
calls last long enough that `--cps` of them would overfill the cap) exactly the cap in flight.
`--cps 50 --cap 100 --lifetime 0.4` is bound by the rate, `--cps 50 --cap 10 --lifetime 1` by
the cap.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import secrets
import sys
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import time as clock_time
from pathlib import Path
from typing import Any

from bench.server_proc import run_bench, server_process
from storage import calls, campaigns, targets
from storage.db import Pool, create_pool
from storage.embedded import start_embedded
from tests.support.fake_signalwire import Lifecycle, RecordedRequest, running_fake_signalwire

FROM_NUMBER = "+17065550100"


async def amain(args: argparse.Namespace, tmp: Path) -> int:
    dsn = await start_embedded(tmp / "postgres")
    key = secrets.token_urlsafe(32)
    project, token = str(uuid.uuid4()), secrets.token_urlsafe(16)
    lifecycle = Lifecycle(signing_key=key, lifetime_s=args.lifetime)
    async with running_fake_signalwire(project, token, lifecycle) as fake:
        settings = {
            "VOXSOUTH_SIGNALWIRE_SPACE_URL": fake.url,
            "VOXSOUTH_SIGNALWIRE_PROJECT_ID": project,
            "VOXSOUTH_SIGNALWIRE_API_TOKEN": token,
            "VOXSOUTH_SIGNALWIRE_CALLS_PER_SECOND": str(args.cps),
            "VOXSOUTH_DIALLER_EVERY_S": "0.2",
        }
        with (
            server_process(dsn, tmp / "a", "none", key, settings),
            server_process(dsn, tmp / "b", "none", key, settings),
        ):
            pool = await create_pool(dsn)  # the servers have migrated it
            try:
                campaign_id = await make_campaign(pool, args)
                began = time.monotonic()
                print(f"dialling {args.targets} targets at {args.cps} calls/s, cap {args.cap}…",
                      flush=True)  # fmt: skip
                while True:  # a bench's progress poll, not a test's synchronisation
                    await asyncio.sleep(1.0)
                    status = await pool.fetchval(
                        "SELECT status FROM campaigns WHERE id = $1", campaign_id
                    )
                    if status == "completed":
                        break
                    if time.monotonic() - began > args.timeout:
                        print(f"bench.dialler: not completed in {args.timeout} s", file=sys.stderr)
                        return 1
                outcomes = await pool.fetch(
                    "SELECT state, outcome, count(*) AS n FROM campaign_targets "
                    "WHERE campaign_id = $1 GROUP BY state, outcome",
                    campaign_id,
                )
            finally:
                await pool.close()
    return report(args, fake.created_at, fake.ended_at, fake.requests, [dict(r) for r in outcomes])


async def make_campaign(pool: Pool, args: argparse.Namespace) -> uuid.UUID:
    org_id = await calls.create_org(pool, "Dialler bench")
    await calls.add_phone_number(pool, org_id, FROM_NUMBER)
    await pool.execute(
        "UPDATE organizations SET plan = 'enterprise', campaign_max_concurrent = $2 "
        "WHERE id = $1",
        org_id, args.cap,
    )  # fmt: skip
    numbers = [f"+1404{2_000_000 + i:07d}" for i in range(args.targets)]
    for at in range(0, len(numbers), 5000):
        await targets.save_targets(pool, org_id, [{
            "number": n, "name": None, "time_zone": "America/New_York", "time_zone_set": True,
            "tags": [], "fields": {},
        } for n in numbers[at : at + 5000]], replace=False)  # fmt: skip
    made = await campaigns.create(pool, org_id, {
        "name": "bench", "flow": {"say": "hello"}, "from_number": FROM_NUMBER,
        "max_concurrent": args.cap, "window_start": clock_time(0),
        "window_end": clock_time(23, 59, 59),
        "created_by": "bench",
    })  # fmt: skip
    await campaigns.enroll(pool, org_id, made["id"], tag=None, target_ids=None)
    await campaigns.move(pool, org_id, made["id"], "start")
    return uuid.UUID(str(made["id"]))


def report(
    args: argparse.Namespace,
    created: dict[str, float],
    ended: dict[str, float],
    requests: Sequence[RecordedRequest],
    outcomes: Sequence[Mapping[str, Any]],
) -> int:
    called = Counter(dict(r.form)["To"] for r in requests if r.operation == "create")
    twice = sum(1 for n in called.values() if n > 1)
    starts = sorted(created.values())
    span = starts[-1] - starts[0]
    rate = (len(starts) - 1) / span if span > 0 else float("inf")
    most_in_a_second = max(bisect.bisect_left(starts, s + 1.0) - i for i, s in enumerate(starts))
    events = sorted([(t, 1) for t in created.values()] + [(t, -1) for t in ended.values()])
    in_flight = most = 0
    for _t, change in events:
        in_flight += change
        most = max(most, in_flight)
    print(f"calls placed            {len(starts)} to {len(called)} numbers; called twice: {twice}")
    print(f"rate                    {rate:.2f} calls/s over {span:.1f} s "
          f"(target {args.cps}; {100 * (rate / args.cps - 1):+.1f} %)")  # fmt: skip
    print(f"most in one second      {most_in_a_second}")
    print(f"most in flight at once  {most} (cap {args.cap})")
    print("targets by outcome      " + ", ".join(
        f"{r['state']}/{r['outcome']}: {r['n']}" for r in outcomes))  # fmt: skip
    # The cap binds when calls last long enough that `cps` of them would overfill it: then
    # the rate is the cap's, below `cps`; otherwise the rate is `cps`'s.
    cap_bound = most == args.cap
    ok = (twice == 0 and len(called) == args.targets and most <= args.cap
          and rate <= 1.05 * args.cps and (cap_bound or rate >= 0.95 * args.cps))  # fmt: skip
    print(f"bound by                {'the concurrency cap' if cap_bound else 'the rate'}")
    print("targets met" if ok else "targets NOT met")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dialler", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--cps", type=float, default=50.0)
    parser.add_argument("--cap", type=int, default=25)
    parser.add_argument("--lifetime", type=float, default=0.4, help="seconds each call lasts")
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)
    return run_bench("dialler", lambda tmp: amain(args, tmp))


if __name__ == "__main__":
    sys.exit(main())
