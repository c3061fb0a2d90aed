"""media.loop_lag: when the loop counts as behind, without a loop."""

from __future__ import annotations

from media.loop_lag import LagTracker


def test_the_loop_is_behind_only_while_it_stays_late() -> None:
    tracker = LagTracker(threshold_s=0.1, consecutive=3)
    for lag in (0.5, 0.05, 0.2, 0.3):  # a stall, then on time: no run of three
        tracker.record(lag)
        assert not tracker.behind
    tracker.record(0.15)  # the third late one in a row
    assert tracker.behind
    tracker.record(0.4)
    assert tracker.behind
    tracker.record(0.09)  # on time again
    assert not tracker.behind
