"""What an org's day looked like, for its owners' and admins' daily summary email."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from storage.db import QUERY_TIMEOUT_S, Executor


async def days_activity(conn: Executor, day: date) -> list[dict[str, Any]]:
    """Per org with calls that started on `day` (UTC): its calls, escalations and consent
    verdicts that day, and the addresses of its owners and admins."""
    rows = await conn.fetch(
        """WITH day_calls AS (
               SELECT * FROM calls
               WHERE started_at >= $1::date AND started_at < $1::date + 1
           )
           SELECT c.org_id, o.name,
                  count(*) AS calls,
                  count(*) FILTER (WHERE c.status = 'completed') AS completed,
                  count(*) FILTER (WHERE c.recording_consent) AS consent_granted,
                  count(*) FILTER (WHERE NOT c.recording_consent) AS consent_refused,
                  (SELECT count(*) FROM escalations e
                   WHERE e.org_id = c.org_id AND e.raised_at >= $1::date
                     AND e.raised_at < $1::date + 1) AS escalations,
                  (SELECT count(*) FROM escalations e
                   WHERE e.org_id = c.org_id AND e.status = 'open') AS escalations_open,
                  (SELECT array_agg(u.email ORDER BY u.email) FROM memberships m
                   JOIN users u ON u.id = m.user_id
                   WHERE m.org_id = c.org_id AND m.role IN ('owner', 'admin')) AS recipients
           FROM day_calls c JOIN organizations o ON o.id = c.org_id
           GROUP BY c.org_id, o.name""",
        day, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [dict(r) for r in rows]


def summary_text(activity: dict[str, Any], day: date) -> str:
    return (
        f"{activity['name']} on {day:%A %d %B %Y} (UTC):\n\n"
        f"Calls: {activity['calls']} ({activity['completed']} completed)\n"
        f"Recording consent: {activity['consent_granted']} granted, "
        f"{activity['consent_refused']} refused\n"
        f"Escalations raised: {activity['escalations']} "
        f"({activity['escalations_open']} open now, all days)\n"
    )


def summary_key(org_id: uuid.UUID, day: date, address: str) -> str:
    return f"daily-summary:{org_id}:{day.isoformat()}:{address}"
