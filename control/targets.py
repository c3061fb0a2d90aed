"""Voice targets as people give them: a number in any usual spelling, a time zone named or
inferred from the number, tags and custom fields; and a CSV file of them, checked row by row.

Pure: numbers are read with `phonenumbers` (Google's libphonenumber data), time zones checked
against the IANA database (`zoneinfo`); nothing here touches the database.
"""

from __future__ import annotations

import csv
import io
import zoneinfo
from dataclasses import dataclass, field
from typing import Final

import phonenumbers
from phonenumbers import timezone as number_zones

DEFAULT_REGION: Final = "US"
"""How a number without a country code is read (a US contact center's lists)."""
MAX_TAGS: Final = 50
MAX_FIELDS: Final = 50
MAX_NAME: Final = 200
MAX_FIELD_NAME: Final = 100
MAX_FIELD_VALUE: Final = 1000
MAX_ROWS: Final = 50_000
TAG_SEPARATORS: Final = (";", "|")
"""Between tags in one CSV cell (a comma would split the cell)."""
KNOWN_COLUMNS: Final = frozenset({"number", "name", "time_zone", "tags"})


class TargetError(ValueError):
    """What is wrong with a target, in words for the person who gave it; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def normalise_number(text: str, region: str = DEFAULT_REGION) -> str:
    """The number in E.164 (`+17065550100`), from any usual spelling ("(706) 555-0100",
    "+44 20 7946 0018"). Raises TargetError for one that is not a valid phone number."""
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise TargetError("number", f"{text[:40]!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise TargetError("number", f"{text[:40]!r} is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def inferred_time_zone(e164: str) -> str | None:
    """The number's time zone when its prefix has exactly one (most US area codes do; a
    mobile number's country may have several, and then none is guessed)."""
    zones = number_zones.time_zones_for_number(phonenumbers.parse(e164))
    if len(zones) != 1 or zones[0] == number_zones.UNKNOWN_TIMEZONE:
        return None
    return str(zones[0])


def checked_time_zone(name: str) -> str:
    """`name` if it is an IANA time zone ("America/Chicago"); raises TargetError otherwise."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise TargetError("time_zone", f"{name[:64]!r} is not an IANA time zone") from None
    return name


@dataclass(frozen=True, slots=True)
class Target:
    number: str
    """E.164."""
    time_zone: str
    time_zone_set: bool
    """A person named the time zone (else it was inferred from the number)."""
    name: str | None = None
    tags: tuple[str, ...] = ()
    fields: dict[str, str] = field(default_factory=dict)


def make_target(
    number: str,
    *,
    name: str | None = None,
    time_zone: str | None = None,
    tags: tuple[str, ...] = (),
    fields: dict[str, str] | None = None,
) -> Target:
    """A checked target; raises TargetError naming the first thing wrong."""
    e164 = normalise_number(number)
    if time_zone:
        zone, chosen = checked_time_zone(time_zone), True
    else:
        inferred = inferred_time_zone(e164)
        if inferred is None:
            raise TargetError("time_zone", f"no single time zone for {e164}: give one")
        zone, chosen = inferred, False
    if name is not None and not 1 <= len(name) <= MAX_NAME:
        raise TargetError("name", f"a name is 1 to {MAX_NAME} characters")
    clean_tags = tuple(dict.fromkeys(t.strip() for t in tags if t.strip()))
    if len(clean_tags) > MAX_TAGS or any(len(t) > MAX_FIELD_NAME for t in clean_tags):
        raise TargetError("tags", f"at most {MAX_TAGS} tags of {MAX_FIELD_NAME} characters")
    fields = fields or {}
    if len(fields) > MAX_FIELDS:
        raise TargetError("fields", f"at most {MAX_FIELDS} custom fields")
    for key, value in fields.items():
        if not 1 <= len(key) <= MAX_FIELD_NAME or len(value) > MAX_FIELD_VALUE:
            raise TargetError(
                "fields", f"a field's name is 1 to {MAX_FIELD_NAME} characters and its value "
                f"at most {MAX_FIELD_VALUE}",
            )  # fmt: skip
    return Target(e164, zone, chosen, name, clean_tags, dict(fields))


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    """The row's line in the file (the header is line 1)."""
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class CsvTargets:
    targets: list[tuple[int, Target]]
    """Each good row's line and its target."""
    rejected: list[RowError]


def parse_csv(text: str) -> CsvTargets:
    """Targets from a CSV file with a header row: `number` (required), `name`, `time_zone`,
    `tags` (separated by ; or |), and any other column as a custom field (empty cells left
    out). A row that repeats an earlier row's number is rejected. Raises TargetError for a file
    that cannot be read as such (no header, no number column, too many rows)."""
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="\0extra")
    header = [h.strip() for h in reader.fieldnames or ()]
    if "number" not in header:
        raise TargetError("file", "the first line must name the columns, one of them `number`")
    if len(set(header)) != len(header) or "" in header:
        raise TargetError("file", "every column needs a name of its own")
    reader.fieldnames = header
    good: list[tuple[int, Target]] = []
    rejected: list[RowError] = []
    seen: dict[str, int] = {}
    for count, raw in enumerate(reader, start=1):
        if count > MAX_ROWS:
            raise TargetError("file", f"at most {MAX_ROWS} rows in one file")
        line = reader.line_num
        if "\0extra" in raw:
            rejected.append(RowError(line, "file", "more cells than the header has columns"))
            continue
        cells = {k: (v or "").strip() for k, v in raw.items()}
        if not any(cells.values()):
            continue  # a blank line
        tags = cells.get("tags", "")
        for separator in TAG_SEPARATORS[1:]:
            tags = tags.replace(separator, TAG_SEPARATORS[0])
        try:
            target = make_target(
                cells["number"],
                name=cells.get("name") or None,
                time_zone=cells.get("time_zone") or None,
                tags=tuple(tags.split(TAG_SEPARATORS[0])),
                fields={k: v for k, v in cells.items() if k not in KNOWN_COLUMNS and v},
            )
        except TargetError as exc:
            rejected.append(RowError(line, exc.field, exc.message))
            continue
        if (first := seen.get(target.number)) is not None:
            rejected.append(RowError(line, "number", f"the same number as line {first}"))
            continue
        seen[target.number] = line
        good.append((line, target))
    return CsvTargets(good, rejected)
