"""A sans-I/O circuit breaker over a remote service's call outcomes, shared by the clients of
services on the internet (control.signalwire, control.voices): after repeated failures, calls
fail fast for a while, then one trial call decides whether the circuit closes again."""

from __future__ import annotations

import enum
from collections.abc import Callable


class Admission(enum.Enum):
    CLOSED = "closed"
    """Circuit closed: a normal call, with retries."""
    TRIAL = "trial"
    """Half-open: this call is the one trial, with a single attempt."""
    REFUSED = "refused"
    """Open (or a trial is in flight): fail fast without a request."""


class CircuitBreaker:
    """Sans-I/O breaker over call outcomes; time comes from `clock`.

    Every `admit()` that does not return REFUSED must be followed by exactly one of
    `record_success()`, `record_failure()` or `release()` (the call ended without an outcome,
    e.g. it was cancelled).
    """

    def __init__(self, failures: int, reset_s: float, clock: Callable[[], float]) -> None:
        self._threshold = failures
        self._reset_s = reset_s
        self._clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def is_open(self) -> bool:
        """Open or half-open: not every call goes through."""
        return self._opened_at is not None

    def retry_after_s(self) -> float | None:
        if self._opened_at is None:
            return None
        return max(0.0, self._opened_at + self._reset_s - self._clock())

    def admit(self) -> Admission:
        if self._opened_at is None:
            return Admission.CLOSED
        if self._trial_in_flight or self._clock() - self._opened_at < self._reset_s:
            return Admission.REFUSED
        self._trial_in_flight = True
        return Admission.TRIAL

    def record_success(self) -> None:
        self._consecutive = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self._consecutive += 1
        if self._trial_in_flight or self._consecutive >= self._threshold:
            self._opened_at = self._clock()
        self._trial_in_flight = False

    def release(self) -> None:
        # The trial (if this was it) told us nothing: the next call may try again at once.
        self._trial_in_flight = False
