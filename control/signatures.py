"""Signatures of SignalWire/Twilio cXML form webhooks (protocols.md section c, scheme B).

The platform signs each webhook with the project's Signing Key::

    base64(HMAC-SHA1(key, url + name1 + value1 + name2 + value2 + ...))

where `url` is the full URL as the platform requested it and the POST parameters are stably
sorted by name. This module only computes and checks that value: the caller supplies the
externally visible URL (not the one behind a proxy), the form parameters in submission order
(e.g. `(await request.post()).items()`), and the header value found under one of
`SIGNATURE_HEADERS`. JSON bodies (`bodySHA256`) are out of scope: our webhooks are forms.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from operator import itemgetter
from urllib.parse import urlsplit

SIGNATURE_HEADERS: tuple[str, ...] = ("X-SignalWire-Signature", "X-Twilio-Signature")
"""Headers carrying the signature, in the order to look them up (SignalWire's own first)."""

_STANDARD_PORTS: dict[str, str] = {"https": "443", "http": "80"}


def compute_signature(key: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Return the base64 HMAC-SHA1 signature of `url` and the form `params` under `key`.

    Parameters are stably sorted by name, so a repeated name keeps its values in submission
    order and every duplicate counts (`To=a&To=b` signs as `ToaTob`, which differs from
    `To=b&To=a`): the semantics of SignalWire's current SDK. Raises ValueError for an empty
    key, which would make every signature forgeable.
    """
    if not key:
        raise ValueError("signing key must not be empty")
    # sorted() is stable; str order is code-point order, which equals the UTF-8 byte order the
    # platform sorts by.
    ordered = sorted(params, key=itemgetter(0))
    message = url + "".join(name + value for name, value in ordered)
    digest = hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def url_variants(url: str) -> list[str]:
    """Return the URLs to try when verifying, `url` itself first.

    The platform is inconsistent about writing the default port, so (SignalWire's current SDK
    semantics): no port gives `[url, url with :443 (https) or :80 (http)]`; the scheme's
    standard port gives `[url, url without it]`; any other port, another scheme or an
    unparsable authority gives `[url]`. Userinfo (`user:pass@`) is kept in every variant,
    and only the port changes: path, query and fragment are kept byte for byte.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" in the host
        return [url]
    standard = _STANDARD_PORTS.get(parts.scheme)
    prefix = url.find("//") + 2
    # urlsplit may normalise (strip blanks, drop tabs); edit only a netloc found verbatim.
    if (
        standard is None
        or not parts.netloc
        or url[prefix : prefix + len(parts.netloc)] != (parts.netloc)
    ):
        return [url]
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if hostport.startswith("["):  # IPv6 literal: the port follows the closing bracket
        close = hostport.find("]") + 1
        host, colon, port = hostport[:close], hostport[close : close + 1], hostport[close + 1 :]
        if colon not in ("", ":"):
            return [url]
    else:
        host, colon, port = hostport.partition(":")
    if not colon:
        other_port = f"{host}:{standard}"
    elif port == standard:
        other_port = host
    else:
        return [url]
    rest = url[prefix + len(parts.netloc) :]
    return [url, f"{url[:prefix]}{userinfo}{at}{other_port}{rest}"]


def verify_signature(
    key: str, url: str, params: Iterable[tuple[str, str]], signature: str | None
) -> bool:
    """Return True if `signature` matches `url` (or one of its `url_variants`) and `params`.

    A missing or empty signature is False, never an error. Comparison is constant-time.
    Raises ValueError for an empty key (a configuration error, not a bad request).
    """
    if not key:
        raise ValueError("signing key must not be empty")
    if not signature:
        return False
    items = list(params)  # consumed once per URL variant
    # compare_digest rejects non-ASCII str, and a header can hold anything: compare bytes.
    received = signature.encode("utf-8", errors="surrogateescape")
    matched = False
    for candidate in url_variants(url):
        expected = compute_signature(key, candidate, items).encode("ascii")
        # No early exit: the time taken does not reveal which variant matched.
        matched |= hmac.compare_digest(expected, received)
    return matched
