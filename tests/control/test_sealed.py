"""control.sealed: an org's service key sealed for storage opens only with the same server key
and for the same org."""

from __future__ import annotations

import uuid

import pytest

from control.sealed import Sealer, SealError

ORG, OTHER_ORG = uuid.UUID(int=1), uuid.UUID(int=2)
KEY = "dg-3f9a1c7e5b2d4f6a8c0e"


def test_a_sealed_key_opens_for_its_org_and_does_not_show_in_what_is_stored() -> None:
    sealer = Sealer("server-credentials-key")
    sealed = sealer.seal(KEY, ORG)
    assert KEY.encode() not in sealed
    assert sealer.open(sealed, ORG) == KEY
    assert sealer.seal(KEY, ORG) != sealed  # a fresh nonce each time


@pytest.mark.parametrize(
    "case", ["another org", "another server key", "damaged", "not sealed at all"]
)
def test_a_sealed_key_does_not_open_anywhere_else(case: str) -> None:
    sealer = Sealer("server-credentials-key")
    sealed = sealer.seal(KEY, ORG)
    with pytest.raises(SealError):
        if case == "another org":
            sealer.open(sealed, OTHER_ORG)
        elif case == "another server key":
            Sealer("rotated-credentials-key").open(sealed, ORG)
        elif case == "damaged":
            sealer.open(sealed[:-1] + bytes([sealed[-1] ^ 1]), ORG)
        else:
            sealer.open(KEY.encode(), ORG)
