"""Voice targets as people write them (sans-I/O): numbers, time zones, CSV rows."""

from __future__ import annotations

import pytest

from control.targets import MAX_ROWS, TargetError, make_target, normalise_number, parse_csv


@pytest.mark.parametrize(
    ("written", "e164"),
    [
        ("(706) 555-0100", "+17065550100"),
        ("706.555.0100", "+17065550100"),
        ("+1 706 555 0100", "+17065550100"),
        ("+44 20 7946 0018", "+442079460018"),
    ],
)
def test_numbers_are_stored_in_e164_from_any_usual_spelling(written: str, e164: str) -> None:
    assert normalise_number(written) == e164


@pytest.mark.parametrize("written", ["555-0100", "not a number", "+1 000 000 0000", "+99 1234"])
def test_what_is_not_a_phone_number_is_refused_by_name(written: str) -> None:
    with pytest.raises(TargetError) as caught:
        normalise_number(written)
    assert caught.value.field == "number"


def test_a_time_zone_is_inferred_from_the_number_where_it_has_one() -> None:
    georgia = make_target("+17065550100")
    assert (georgia.time_zone, georgia.time_zone_set) == ("America/New_York", False)
    assert make_target("+13125550100").time_zone == "America/Chicago"
    assert make_target("+442079460018").time_zone == "Europe/London"
    named = make_target("+17065550100", time_zone="America/Denver")
    assert (named.time_zone, named.time_zone_set) == ("America/Denver", True)


def test_a_number_with_several_time_zones_needs_one_given_and_it_must_exist() -> None:
    with pytest.raises(TargetError, match="give one") as caught:
        make_target("+61412345678")  # an Australian mobile: any of several zones
    assert caught.value.field == "time_zone"
    assert make_target("+61412345678", time_zone="Australia/Perth").time_zone == "Australia/Perth"
    with pytest.raises(TargetError, match="IANA") as caught:
        make_target("+17065550100", time_zone="Eastern")
    assert caught.value.field == "time_zone"


def test_a_csv_file_gives_its_good_rows_and_reports_each_bad_one_by_line() -> None:
    parsed = parse_csv(
        "number,name,time_zone,tags,plan,account\n"
        "(706) 555-0100,Ann Lee,,vip;renewal|q3,gold,A-1\n"
        "not a number,Bob,,,,\n"
        "706-555-0100,Ann again,,,,\n"
        "\n"
        "+61412345678,Cy,,,,\n"
        "+61412345678,Cy,Australia/Perth,,silver,\n"
        "+13125550100,Di,Mars/Olympus,,,\n"
        "+13125550101,Ed,,,,,surplus\n"
    )
    [(line, ann), (line_cy, cy)] = parsed.targets
    assert line == 2
    assert (ann.number, ann.name, ann.time_zone) == ("+17065550100", "Ann Lee", "America/New_York")
    assert ann.tags == ("vip", "renewal", "q3")
    assert ann.fields == {"plan": "gold", "account": "A-1"}
    assert (line_cy, cy.time_zone, cy.fields) == (7, "Australia/Perth", {"plan": "silver"})
    assert [(r.row, r.field) for r in parsed.rejected] == [
        (3, "number"),
        (4, "number"),  # the same number as line 2
        (6, "time_zone"),
        (8, "time_zone"),
        (9, "file"),
    ]
    assert "line 2" in parsed.rejected[1].message


def test_a_file_without_a_number_column_or_with_too_many_rows_is_refused_whole() -> None:
    with pytest.raises(TargetError, match="number"):
        parse_csv("phone,name\n+17065550100,Ann\n")
    with pytest.raises(TargetError, match="column"):
        parse_csv("number,name,name\n+17065550100,Ann,Ann\n")
    rows = "".join(f"+1706555{i % 10000:04d}\n" for i in range(MAX_ROWS + 1))
    with pytest.raises(TargetError, match="at most"):
        parse_csv("number\n" + rows)
