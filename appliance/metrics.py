"""The gateway's Prometheus metrics (`GET /metrics`), one registry per app.

Input: counts reported by the request path, the writer and the sync job as things happen, plus a
snapshot of stored state (backlog, quarantine, open sessions, disk) taken when `/metrics` is
scraped. Output: Prometheus text from `prometheus_client`.

Each app owns its `CollectorRegistry` (never the global one), so several apps in one process
(tests) never share or collide on a metric. The request path pays one counter increment per
outcome per request, never one per event: a 2,000-event batch costs the same as one event.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from appliance import __version__

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

OUTCOMES = ("accepted", "duplicate", "validation", "internal", "bot")
# Request routes by path; anything else is "other", so random paths cannot grow the label set.
ROUTES = frozenset({"/track", "/track/batch", "/track/device-id", "/healthz", "/healthz/upstream", "/readyz",
                    "/metrics", "/admin", "/admin/status", "/admin/sync", "/admin/backup"})
# Upstream failures: "refused" (the server refused the data, rows quarantined), "unreachable"
# (connection, timeout, 5xx: retried), "ambiguous" (no answer after sending: reconciled, retried).
UPSTREAM_ERROR_KINDS = ("unreachable", "ambiguous", "refused")


def route_label(path: str) -> str:
    """The `route` label of a request path."""
    if path in ROUTES:
        return path
    if path == "/schema" or path.startswith("/schema/"):
        return "/schema"
    return "other"


class GatewayMetrics:
    """Every `gateway_*` metric, registered in a registry of its own."""

    def __init__(self, gateway_id: str, projects: Sequence[str] = ()) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry, platform=platform)
        self.events = Counter("gateway_events", "Events received, by project and outcome",
                              ["project", "outcome"], registry=registry)
        self.requests = Counter("gateway_requests", "HTTP requests answered, by route and status",
                                ["route", "status"], registry=registry)
        self.request_duration = Histogram(
            "gateway_request_duration_seconds", "Time from request start to the end of the answer, by route",
            ["route"], registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
        # 503s apart (load shed, disk cap, storage down): most are answered before the body is read,
        # so among the answered requests' durations they would pull the percentiles down.
        self.refused_request_duration = Histogram(
            "gateway_refused_request_duration_seconds",
            "Time from request start to the end of a 503 answer (load shed, disk cap, storage down), by route",
            ["route"], registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))
        self.commit_duration = Histogram(
            "gateway_commit_duration_seconds", "Duration of one storage transaction (a group commit)",
            registry=registry, buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
        self.writer_queue_rows = Gauge("gateway_writer_queue_rows", "Rows waiting for the storage writer",
                                       registry=registry)
        self.pending_events = Gauge("gateway_pending_events",
                                    "Events admitted and not yet answered (503 past limits.max_pending_events)",
                                    registry=registry)
        self.writer_queue_requests = Gauge("gateway_writer_queue_requests",
                                           "Requests and maintenance calls waiting for the storage writer",
                                           registry=registry)
        self.sessions_open = Gauge("gateway_sessions_open", "Sessions not yet closed", registry=registry)
        self.backlog_rows = Gauge("gateway_upstream_backlog_rows", "Stored rows not yet confirmed upstream",
                                  ["table"], registry=registry)
        self.oldest_pending = Gauge("gateway_upstream_oldest_pending_seconds",
                                    "Age of the oldest batch recorded but not yet confirmed upstream (0 = none)",
                                    ["table"], registry=registry)
        self.last_success = Gauge("gateway_upstream_last_success_timestamp_seconds",
                                  "When a sync pass last finished without error (0 = never since start)",
                                  registry=registry)
        self.upstream_errors = Counter("gateway_upstream_errors", "Sync passes stopped by an upstream error, "
                                       "and rows the upstream refused, by kind", ["kind"], registry=registry)
        self.synced_rows = Counter("gateway_upstream_sent_rows", "Rows confirmed upstream, by table", ["table"],
                                   registry=registry)
        self.quarantined = Gauge("gateway_upstream_quarantined_rows", "Rows the upstream refused, kept aside",
                                 registry=registry)
        self.storage_bytes = Gauge("gateway_storage_bytes", "Size of the DuckDB file and its WAL", registry=registry)
        self.disk_free = Gauge("gateway_disk_free_bytes", "Free bytes on the storage volume", registry=registry)
        self.duckdb_memory = Gauge("gateway_duckdb_memory_bytes",
                                   "Memory DuckDB holds (block cache, working memory); at most storage.memory_limit",
                                   registry=registry)
        self.accepting = Gauge("gateway_accepting", "1 while new events can be stored, else 0", registry=registry)
        self.start_time = Gauge("gateway_start_time_seconds", "When this gateway process started", registry=registry)
        Info("gateway_build", "Version of the running gateway", registry=registry).info(
            {"version": __version__, "gateway_id": gateway_id})
        self.start_time.set(time.time())
        for project in projects:  # series exist from the start, so rate() sees the first event
            for outcome in OUTCOMES:
                self.events.labels(project, outcome)
        for kind in UPSTREAM_ERROR_KINDS:
            self.upstream_errors.labels(kind)

    def count_events(self, project: str, counts: Mapping[str, int]) -> None:
        """Add a request's outcomes, e.g. `{"accepted": 1998, "validation": 2}`."""
        for outcome, count in counts.items():
            if count:
                self.events.labels(project, outcome).inc(count)

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Set the gauges from a snapshot (`Gateway.metrics_snapshot`)."""
        self.writer_queue_rows.set(state["writer_queue_rows"])
        self.writer_queue_requests.set(state["writer_queue_requests"])
        self.pending_events.set(state["pending_events"])
        self.sessions_open.set(state["open_sessions"])
        self.quarantined.set(state["quarantined_rows"])
        for table, entry in state["backlog"].items():
            self.backlog_rows.labels(table).set(entry["rows"])
            self.oldest_pending.labels(table).set(entry["oldest_pending_seconds"])
        self.last_success.set(state["last_success_seconds"])
        self.storage_bytes.set(state["storage_bytes"])
        self.disk_free.set(state["disk_free_bytes"])
        self.duckdb_memory.set(state["duckdb_memory_bytes"])
        self.accepting.set(1 if state["accepting"] else 0)

    def render(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
