"""Phone numbers for test orgs: unique within a test run, which shares one database."""

from __future__ import annotations

import itertools

_NEXT = itertools.count(1)


def new_number() -> str:
    """A fresh +1 555 9 number. Random ones collided now and then (seven digits, hundreds of
    orgs), failing a test with "belongs to another organization"."""
    # The fixed numbers the tests use are below +15559000000, or far past any count here.
    return f"+15559{next(_NEXT):06d}"
