"""Reading the server's /metrics: snapshots, deltas between two, quantiles from buckets."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

Snapshot = Mapping[tuple[str, frozenset[tuple[str, str]]], float]
"""(sample name, labels) → value."""


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = float(sample.value)
    return out


def total(snap: Snapshot, name: str, **labels: str) -> float:
    """Sum of the samples named `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in snap.items() if n == name and want <= ls)


def by_label(snap: Snapshot, name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for (n, ls), v in snap.items():
        if n == name:
            key = dict(ls).get(label, "")
            out[key] = out.get(key, 0.0) + v
    return out


@dataclass(frozen=True, slots=True)
class Histogram:
    buckets: tuple[tuple[float, float], ...]
    """(upper bound, cumulative count), ascending, ending with +Inf."""
    sum: float

    @property
    def count(self) -> float:
        return self.buckets[-1][1] if self.buckets else 0.0

    def quantile(self, q: float) -> tuple[float, bool] | None:
        """Prometheus' histogram_quantile: linear within the bucket holding rank q·count.

        Returns (value, above): `above` means the rank fell in the +Inf bucket and the value is
        the largest finite bound, a lower limit only. None when the histogram is empty.
        """
        n = self.count
        if n <= 0:
            return None
        rank = q * n
        lower, below = 0.0, 0.0
        for bound, cumulative in self.buckets:
            if cumulative >= rank:
                if math.isinf(bound):
                    return lower, True
                if cumulative == below:
                    return bound, False
                return lower + (bound - lower) * (rank - below) / (cumulative - below), False
            lower, below = bound, cumulative
        return lower, True


def histogram(after: Snapshot, name: str, before: Snapshot | None = None) -> Histogram:
    """The histogram `name` (all label sets summed), as the change from `before` if given."""

    def cumulative(snap: Snapshot) -> dict[float, float]:
        out: dict[float, float] = {}
        for (n, ls), v in snap.items():
            if n == f"{name}_bucket":
                bound = float(dict(ls)["le"])
                out[bound] = out.get(bound, 0.0) + v
        return out

    now = cumulative(after)
    then = cumulative(before) if before is not None else {}
    buckets = tuple(sorted((b, c - then.get(b, 0.0)) for b, c in now.items()))
    s = total(after, f"{name}_sum") - (total(before, f"{name}_sum") if before else 0.0)
    return Histogram(buckets, s)


def format_quantile(value: tuple[float, bool] | None, scale: float, digits: int) -> str:
    """`value` times `scale`, with '>' when it is only a lower limit; '-' when empty."""
    if value is None:
        return "-"
    v, above = value
    return f"{'>' if above else ''}{v * scale:.{digits}f}"
