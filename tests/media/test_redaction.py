"""media.redaction on text as engines write it and as callers say it."""

from __future__ import annotations

import pytest

from media.redaction import KINDS, luhn_valid, redact

VISA = "4111 1111 1111 1111"  # a test number: passes the Luhn check
SPOKEN_VISA = "four one one one " + "one " * 11 + "one"


@pytest.mark.parametrize(
    ("said", "stored"),
    [
        (f"My card number is {VISA}.", "My card number is [card]."),
        (f"It's {VISA.replace(' ', '-')}, expiry next year.", "It's [card], expiry next year."),
        ("4111111111111111", "[card]"),
        (f"yeah it's {SPOKEN_VISA}", "yeah it's [card]"),
        ("four one double one, one one one one, one one one one, one one one one", "[card]"),
        # Without the card named, 16 digits failing the check are some other number…
        (
            "the tracking number is 1234 5678 9012 3450",
            "the tracking number is 1234 5678 9012 3450",
        ),
        # … but named, a misheard digit must not let the rest through.
        ("my visa is 4111 1111 1111 1112", "my visa is [card]"),
        ("my social is 123-45-6789", "my social is [ssn]"),
        (
            "social security number one two three four five six seven eight nine",
            "social security number [ssn]",
        ),
        ("my bank account number is 12345678", "my bank account number is [account]"),
        ("sort code two oh four one one five", "sort code [account]"),
        ("and the security code on the back is 737", "and the security code on the back is [cvv]"),
        ("it expires oh four twenty seven", "it expires [expiry]"),
        ("expiry date is 04/27", "expiry date is [expiry]"),
        ("date of birth is the fourth of April, 1940", "date of birth is [dob]"),
        ("I was born on 4/4/1940", "I was born on [dob]"),
        ("call me on 415 555 2671", "call me on [phone]"),
        (
            "my mobile is oh seven nine double one, one two three, four five six",
            "my mobile is [phone]",
        ),
        ("it's jane.doe@example.com", "it's [email]"),
        ("jane dot doe at example dot com", "[email]"),
    ],
)
def test_what_is_sensitive_is_replaced_by_its_kind(said: str, stored: str) -> None:
    assert redact(said).text == stored


@pytest.mark.parametrize(
    "said",
    [
        "It is four five six seven eight.",
        "It's the 91228. It was delivered with a massive dent in the door.",
        "I paid $25.50 at 3:30 on the 4th, order 88412.",
        "You get about 60 pounds back minus a 25 pound admin fee.",
        "I have one question about my bill from two thousand and twenty three.",
        "The reference is LHRHC441, flight 2207.",
        "Press 1 to agree or 2 to decline.",
        "Oh, one more thing: oh well, I owe you four pounds.",
        "My account number with you is 12345678.",  # a customer account: not a bank's
        "It's the card I opened in 2019.",
        "The tracking number is 7162087871.",  # a valid US phone number's shape
    ],
)
def test_ordinary_numbers_are_left_as_they_were_said(said: str) -> None:
    result = redact(said)
    assert (result.text, result.changed) == (said, False)


def test_what_was_replaced_is_counted_by_kind_never_kept() -> None:
    result = redact(f"card {VISA}, code 123, and my email is a@b.co, or call 415 555 2671")
    assert result.counts == {"card": 1, "phone": 1, "email": 1}  # "code" alone names no cvv
    assert "4111" not in result.text and "a@b.co" not in result.text


def test_only_the_kinds_asked_for_are_replaced() -> None:
    said = f"card {VISA} and phone 415 555 2671"
    assert redact(said, {"phone"}).text == f"card {VISA} and phone [phone]"
    assert redact(said, ()).text == said
    assert redact(said, KINDS - {"card"}).counts == {"phone": 1}


def test_a_long_number_still_being_read_out_is_hidden_from_partials() -> None:
    so_far = "yes it's four one one one one one one one one"
    assert redact(so_far).text == so_far  # nine digits, nothing named: no kind, in a final
    assert redact(so_far, partial=True).text == "yes it's [digits]"


def test_a_number_named_by_the_other_speakers_question_is_redacted() -> None:
    assert redact("seven three seven", context="What's the security code on the back?").text == (
        "[cvv]"
    )
    assert redact("the fourth of April, 1940", context="And your date of birth?").text == "[dob]"
    assert redact("oh four twenty seven", context="When does it expire?").text == "[expiry]"
    assert redact("seven three seven").text == "seven three seven"  # asked nothing


def test_a_card_read_out_in_two_breaths_is_redacted_in_both() -> None:
    first = redact("my card number is four one one one, one one one one")
    assert (first.text, first.trailing) == ("my card number is [card]", "card")
    second = redact("one one one one, one one one one, thanks", continues=first.trailing)
    assert second.text == "[card], thanks"
    assert redact("one two three", continues=None).text == "one two three"


def test_a_long_number_the_engine_misheard_is_still_a_card() -> None:
    # Digits dropped or misheard: the Luhn check fails, but it was asked for as a card…
    assert redact("5 5 1 3 2 7 3 9 7 4", context="And the card number?").text == "[card]"
    # … or it starts the way a card network's numbers do.
    said = "Okay, the number is 4 7 3 3 2 0 0 3 7 7 4 0"
    assert redact(said).text == "Okay, the number is [card]"


def test_what_names_a_number_must_be_close_before_it() -> None:
    said = "my card was declined, so I called the bank, and they told me to ring 415 555 2671"
    assert redact(said).text == (
        "my card was declined, so I called the bank, and they told me to ring [phone]"
    )


def test_the_luhn_check() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112")
