"""The periodic ingest summary: one log line of what arrived since the last one.

Input: the gateway's metrics (`gateway_events_total`, `gateway_requests_total`). Output: a line
such as `ingest last 300s: 1203 requests, 240000 events (accepted 239990, duplicate 8,
validation 2), 1.2 MB storage, writer queue 0 rows`; nothing when nothing arrived.
"""

from __future__ import annotations

import logging
import time

from appliance.metrics import OUTCOMES, GatewayMetrics

log = logging.getLogger("appliance.ingest")


def _totals(metrics: GatewayMetrics) -> tuple[dict[str, float], float]:
    outcomes = dict.fromkeys(OUTCOMES, 0.0)
    for family in metrics.events.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                outcomes[sample.labels["outcome"]] += sample.value
    requests = sum(sample.value for family in metrics.requests.collect() for sample in family.samples
                   if sample.name.endswith("_total") and sample.labels["route"].startswith("/track"))
    return outcomes, requests


class IngestSummary:
    """Remembers the totals at the last line; `log_line()` logs the difference."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics
        self._last, self._last_requests = _totals(metrics)
        self._last_at = time.monotonic()

    def log_line(self, writer_queue_rows: int = 0) -> str | None:
        """Log and return the summary since the previous call, or None when nothing arrived."""
        outcomes, requests = _totals(self._metrics)
        now = time.monotonic()
        delta = {outcome: int(outcomes[outcome] - self._last[outcome]) for outcome in OUTCOMES}
        delta_requests = int(requests - self._last_requests)
        seconds = now - self._last_at
        self._last, self._last_requests, self._last_at = outcomes, requests, now
        if not delta_requests and not any(delta.values()):
            return None
        parts = ", ".join(f"{outcome} {count}" for outcome, count in delta.items() if count)
        line = (f"ingest last {seconds:.0f}s: {delta_requests} requests, {sum(delta.values())} events"
                f"{f' ({parts})' if parts else ''}, writer queue {writer_queue_rows} rows")
        log.info("%s", line)
        return line
