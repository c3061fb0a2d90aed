"""Shared by the event writer's tests: a call to write events of."""

from __future__ import annotations

import uuid

import pytest

from storage import calls
from storage.db import Pool
from tests.support.numbers import new_number


@pytest.fixture
async def call_ids(pool: Pool) -> tuple[uuid.UUID, uuid.UUID]:
    org_id = await calls.create_org(pool, "Writer org")
    number = new_number()
    await calls.add_phone_number(pool, org_id, number)
    ref = await calls.open_call(
        pool, org_id=org_id, call_sid=str(uuid.uuid4()), account_sid=None, direction="inbound",
        from_number="+15550199999", to_number=number, status="in-progress",
    )  # fmt: skip
    return org_id, ref.id
