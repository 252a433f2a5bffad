"""Load shedding: a bound on the events admitted and not yet answered (docs/contract.md §9).

Input: `limits.max_pending_events`. Output, per ingest request and before any of its body is
read: a `Ticket` holding a reservation of events, or `ServiceUnavailable` (503 + Retry-After)
when that reservation does not fit. A request reserves the most it may carry (a batch:
`max_batch_events`; `/track`: one), lowers the reservation to its real count once the body is
split, and gives it back when it is answered, stored or not.

Why events and why before the body: the writer's cost is per event, so the events ahead of a
request decide how long it waits; refusing before reading keeps a reconnect storm from costing
the memory of its bodies, and a device told "503, retry in 2 s" keeps its events, while one left
waiting for tens of seconds times out and resends them. A bound that admits nothing could never
recover, so a request is always admitted while nothing else is pending.
"""

from __future__ import annotations

import threading
from types import TracebackType

from appliance.errors import ServiceUnavailable

RETRY_AFTER_SECONDS = 2


class Admission:
    """Counts the events reserved by requests in flight (the event loop's and worker threads')."""

    def __init__(self, max_pending_events: int) -> None:
        self.max_pending_events = max_pending_events
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def pending_events(self) -> int:
        return self._pending

    def overloaded(self, events: int = 1) -> bool:
        """Would a request of `events` be refused now?"""
        pending = self._pending
        return pending > 0 and pending + events > self.max_pending_events

    def admit(self, events: int) -> Ticket:
        """Reserve `events` for one request, or refuse it with 503 + Retry-After."""
        with self._lock:
            if self._pending > 0 and self._pending + events > self.max_pending_events:
                raise ServiceUnavailable(
                    f"busy: {self._pending} events are waiting to be stored (limit {self.max_pending_events}); "
                    f"nothing of this request was read, resend it", retry_after_seconds=RETRY_AFTER_SECONDS)
            self._pending += events
        return Ticket(self, events)

    def _give_back(self, events: int) -> None:
        with self._lock:
            self._pending -= events


class Ticket:
    """One request's reservation; a context manager that gives it back on exit."""

    def __init__(self, admission: Admission, events: int) -> None:
        self._admission = admission
        self._events = events

    def lower_to(self, events: int) -> None:
        """The request turned out to carry `events` (at most what it reserved)."""
        if events < self._events:
            self._admission._give_back(self._events - events)
            self._events = events

    def release(self) -> None:
        if self._events:
            self._admission._give_back(self._events)
            self._events = 0

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.release()
