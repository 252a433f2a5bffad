"""The last hour of the gateway's own numbers, for the status page's charts.

Input: a sample every `SAMPLE_SECONDS` (a scheduled job): counters from the metrics (events by
outcome) and the upstream backlog. Output: up to an hour of `Sample`s, oldest first. Kept in
memory only: after a restart the charts start again, which is what "since start" means on the page.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from appliance.metrics import GatewayMetrics

SAMPLE_SECONDS = 30.0
_KEEP = int(3600 / SAMPLE_SECONDS) + 1


@dataclass(frozen=True, slots=True)
class Sample:
    at_seconds: float  # epoch seconds
    accepted: float  # events accepted since start
    rejected: float  # validation + internal since start
    backlog_rows: int  # rows waiting for the upstream, all tables


def event_totals(metrics: GatewayMetrics) -> dict[str, float]:
    """`gateway_events_total` summed over projects, by outcome."""
    totals: dict[str, float] = collections.defaultdict(float)
    for family in metrics.events.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                totals[sample.labels["outcome"]] += sample.value
    return totals


class History:
    """A ring of samples covering the last hour."""

    def __init__(self) -> None:
        self._samples: collections.deque[Sample] = collections.deque(maxlen=_KEEP)

    def add(self, at_seconds: float, metrics: GatewayMetrics, backlog_rows: int) -> Sample:
        """Record the counters of `metrics` and `backlog_rows` as of `at_seconds`."""
        totals = event_totals(metrics)
        sample = Sample(at_seconds, totals["accepted"], totals["validation"] + totals["internal"], backlog_rows)
        self._samples.append(sample)
        return sample

    def samples(self) -> list[Sample]:
        return list(self._samples)
