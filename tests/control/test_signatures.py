"""cXML webhook signatures (scheme B), checked against twilio-python's published vectors.

Vectors: twilio/twilio-python tests/unit/test_request_validator.py (key "12345").
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from control.signatures import (
    SIGNATURE_HEADERS,
    compute_signature,
    url_variants,
    verify_signature,
)

KEY = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675309"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
]
EXPECTED = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
SIGNED_WITH_443 = "kvajT1Ptam85bY51eRf/AJRuM3w="  # same request, URL written with :443
SIGNED_HTTP_WITH_80 = "0ZXoZLH/DfblKGATFgpif+LLRf4="  # http:// URL written with :80


def test_published_vector() -> None:
    assert compute_signature(KEY, URL, PARAMS) == EXPECTED
    assert verify_signature(KEY, URL, PARAMS, EXPECTED)


def test_parameter_submission_order_does_not_matter_for_distinct_names() -> None:
    assert verify_signature(KEY, URL, reversed(PARAMS), EXPECTED)


def test_params_may_be_a_one_shot_iterator() -> None:
    # aiohttp hands us a view; a generator must still be usable for every URL variant.
    assert verify_signature(KEY, URL, (p for p in PARAMS), SIGNED_WITH_443)


def test_wrong_key_fails() -> None:
    assert not verify_signature("54321", URL, PARAMS, EXPECTED)


@pytest.mark.parametrize("index", range(len(PARAMS)))
def test_tampered_param_value_fails(index: int) -> None:
    tampered = list(PARAMS)
    name, value = tampered[index]
    tampered[index] = (name, value + "0")
    assert not verify_signature(KEY, URL, tampered, EXPECTED)


def test_added_or_dropped_param_fails() -> None:
    assert not verify_signature(KEY, URL, [*PARAMS, ("CallStatus", "ringing")], EXPECTED)
    assert not verify_signature(KEY, URL, PARAMS[:-1], EXPECTED)


def test_tampered_url_fails() -> None:
    assert not verify_signature(KEY, URL.replace("foo=1", "foo=2"), PARAMS, EXPECTED)
    assert not verify_signature(KEY, URL.replace("https", "http"), PARAMS, EXPECTED)


@pytest.mark.parametrize("signature", [None, "", "   ", EXPECTED[:-1], EXPECTED + "x", "é" * 28])
def test_missing_or_garbled_signature_fails(signature: str | None) -> None:
    assert not verify_signature(KEY, URL, PARAMS, signature)


def test_empty_key_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        verify_signature("", URL, PARAMS, EXPECTED)
    with pytest.raises(ValueError):
        compute_signature("", URL, PARAMS)


def test_signed_with_443_verifies_against_url_without_port() -> None:
    assert verify_signature(KEY, URL, PARAMS, SIGNED_WITH_443)


def test_signed_without_port_verifies_against_url_with_443() -> None:
    with_port = URL.replace(".com/", ".com:443/")
    assert verify_signature(KEY, with_port, PARAMS, EXPECTED)


def test_http_default_port_both_ways() -> None:
    http_url = URL.replace("https", "http")
    signed_without_port = compute_signature(KEY, http_url, PARAMS)
    assert verify_signature(KEY, http_url, PARAMS, SIGNED_HTTP_WITH_80)
    assert verify_signature(KEY, http_url.replace(".com/", ".com:80/"), PARAMS, signed_without_port)


def test_port_of_the_other_scheme_is_not_standard() -> None:
    signed_with_80 = compute_signature(KEY, URL.replace(".com/", ".com:80/"), PARAMS)
    assert not verify_signature(KEY, URL, PARAMS, signed_with_80)


def test_non_standard_port_only_as_is() -> None:
    url_1234 = URL.replace(".com/", ".com:1234/")
    signed_with_1234 = compute_signature(KEY, url_1234, PARAMS)
    assert verify_signature(KEY, url_1234, PARAMS, signed_with_1234)
    # Unlike twilio-python, a signature over the port-less URL is not accepted for :1234 ...
    assert not verify_signature(KEY, url_1234, PARAMS, EXPECTED)
    # ... nor one over :1234 for the port-less URL.
    assert not verify_signature(KEY, URL, PARAMS, signed_with_1234)


def test_url_variants() -> None:
    assert url_variants(URL) == [URL, "https://mycompany.com:443/myapp.php?foo=1&bar=2"]
    assert url_variants("https://mycompany.com:443/x") == [
        "https://mycompany.com:443/x",
        "https://mycompany.com/x",
    ]
    assert url_variants("http://h/x") == ["http://h/x", "http://h:80/x"]
    assert url_variants("http://h:80/x") == ["http://h:80/x", "http://h/x"]
    assert url_variants("https://h:8443/x") == ["https://h:8443/x"]
    assert url_variants("ftp://h/x") == ["ftp://h/x"]
    assert url_variants("not a url") == ["not a url"]


def test_url_variants_keep_userinfo_and_everything_but_the_port() -> None:
    assert url_variants("https://user:p%40ss@h.example/cb?a=1&b=%20#frag") == [
        "https://user:p%40ss@h.example/cb?a=1&b=%20#frag",
        "https://user:p%40ss@h.example:443/cb?a=1&b=%20#frag",
    ]
    assert url_variants("https://user:pw@h.example:443") == [
        "https://user:pw@h.example:443",
        "https://user:pw@h.example",
    ]


def test_url_variants_ipv6_host() -> None:
    assert url_variants("https://[2001:db8::1]/cb") == [
        "https://[2001:db8::1]/cb",
        "https://[2001:db8::1]:443/cb",
    ]
    assert url_variants("https://[2001:db8::1]:443/cb")[1] == "https://[2001:db8::1]/cb"
    assert url_variants("https://[2001:db8::1]:8443/cb") == ["https://[2001:db8::1]:8443/cb"]


def test_userinfo_signed_url_verifies_through_port_variant() -> None:
    signed_url = "https://user:pw@mycompany.com:443/myapp.php"
    signature = compute_signature(KEY, signed_url, PARAMS)
    assert verify_signature(KEY, "https://user:pw@mycompany.com/myapp.php", PARAMS, signature)


def test_duplicate_names_keep_submission_order() -> None:
    # twilio-python's duplicate vector: it sorts values, we keep submission order, so the
    # vector holds for submission order 1234, 5678 and not for 5678, 1234.
    base = [("Sid", "CA123"), ("SidAccount", "AC123")]
    ascending = [*base, ("Digits", "1234"), ("Digits", "5678")]
    descending = [*base, ("Digits", "5678"), ("Digits", "1234")]
    assert compute_signature(KEY, URL, ascending) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    assert verify_signature(KEY, URL, ascending, "IK+Dwps556ElfBT0I3Rgjkr1wJU=")
    assert not verify_signature(KEY, URL, descending, "IK+Dwps556ElfBT0I3Rgjkr1wJU=")


def test_duplicates_are_not_collapsed() -> None:
    once = compute_signature(KEY, URL, [("To", "a")])
    twice = compute_signature(KEY, URL, [("To", "a"), ("To", "a")])
    assert once != twice


def test_names_sort_case_sensitively() -> None:
    # Upper case sorts before lower case: "Zeta" then "alpha".
    assert compute_signature(KEY, URL, [("alpha", "1"), ("Zeta", "2")]) == compute_signature(
        KEY, URL + "Zeta2alpha1", []
    )


def test_unicode_values_round_trip() -> None:
    params = [("SpeechResult", "Grüße, 你好 👋"), ("From", "+4930123")]
    signature = compute_signature(KEY, URL, params)
    assert verify_signature(KEY, URL, params, signature)
    altered = [("SpeechResult", "Grusse, 你好 👋"), params[1]]
    assert not verify_signature(KEY, URL, altered, signature)


def test_unicode_key_and_values_are_signed_as_utf8() -> None:
    # An independent HMAC over the UTF-8 bytes, as the platform computes it.
    digest = hmac.new("clé".encode(), (URL + "Bodyé").encode(), hashlib.sha1).digest()
    assert compute_signature("clé", URL, [("Body", "é")]) == base64.b64encode(digest).decode()


def test_signalwire_header_is_looked_up_first() -> None:
    assert SIGNATURE_HEADERS[0] == "X-SignalWire-Signature"
    assert "X-Twilio-Signature" in SIGNATURE_HEADERS
