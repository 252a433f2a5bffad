"""A request's events from body to outcomes (docs/contract.md §3.4, §4): the stages between a route and the writer.

Input: an authenticated request's body, its `RequestContext`, its client. Output: the outcome of
every event, counted once per request (`gateway_events_total`): `accepted`, `duplicate`, or
rejected with its reason. Two steps, so the route can drop the body between them:

- `prepare` (a worker thread, `Gateway.prepare`): split the envelope, validate and dispatch each
  row on its own (`appliance.batch`), so one bad or failing row is that row's outcome only;
- `commit`: hand the rows to the writer and wait for the commit, then extend the live sessions
  with the new live rows; a storage failure is the answer for every row that was to be stored.

Routes stay HTTP: admission, authentication, reading the body, the context from the headers and
the shape of the answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import duckdb

from appliance.auth import Client
from appliance.batch import PreparedRows, prepare_rows
from appliance.dispatch import RequestContext
from appliance.envelope import LONE_SURROGATE_ERROR, lone_surrogates, split_batch
from appliance.errors import BadRequest, GatewayError, ServiceUnavailable, StorageFailed
from appliance.gateway import Gateway
from appliance.outcomes import Reason, Rejection
from appliance.properties import FlattenMemo, PropertyLimits
from appliance.settings import ProjectSettings
from appliance.timestamps import TimeWindow
from storage.write_request import StoredIds, WriteResult
from storage.writer import WriterStopped, is_disk_error


@dataclass(slots=True)
class BatchOutcome:
    """Every event of a batch answered: `accepted + duplicates + len(rejected)` is the item count."""

    accepted: int
    duplicates: int
    rejected: list[Rejection]  # by index


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A single event stored now (or before: a duplicate), and the ids it was stored under."""

    device_id: str
    session_id: str


@dataclass(frozen=True, slots=True)
class CrawlerEvent:
    """A single event from a crawler: acknowledged and counted, never stored (docs/contract.md §6.1)."""


async def prepare_batch(gateway: Gateway, body: bytes, context: RequestContext, client: Client) -> PreparedRows:
    """A batch body's rows, validated and dispatched, in a worker thread."""
    return await gateway.prepare(
        _prepare_batch, body, gateway.settings.limits.max_batch_events, context, _window(gateway, context.received_ms),
        gateway.property_limits, client.has_secret, gateway.flatten_memo,
    )


async def commit_batch(gateway: Gateway, prepared: PreparedRows, project: ProjectSettings) -> BatchOutcome:
    """Store a batch's rows and count its outcomes; raises the storage failure as the answer."""
    rejected = prepared.rejected
    try:
        result = await _store(gateway, prepared, project)
    except (ServiceUnavailable, StorageFailed):
        _count_rejections(gateway, project, rejected)
        raise
    rejected.extend(Rejection(index, Reason.VALIDATION, message) for index, message in result.rejected.items())
    duplicates = len(result.duplicates)
    accepted = prepared.valid_count - len(result.rejected) - duplicates
    if accepted + duplicates + len(rejected) != prepared.item_count:  # an outcome was lost: never answer that
        raise AssertionError("outcomes do not add up to the events received")
    rejected.sort(key=lambda rejection: rejection.index)
    _count(gateway, project, accepted=accepted, duplicate=duplicates)
    _count_rejections(gateway, project, rejected)
    return BatchOutcome(accepted, duplicates, rejected)


async def store_event(gateway: Gateway, body: bytes, context: RequestContext,
                      client: Client) -> StoredEvent | CrawlerEvent:
    """Prepare and store the single event of `POST /track`; its refusal is raised as the answer
    (`BadRequest` for a rule it breaks, `StorageFailed` for an internal error)."""
    refused = {0: LONE_SURROGATE_ERROR} if lone_surrogates(body) else {}
    prepared = await gateway.prepare(prepare_rows, [body], refused, context, _window(gateway, context.received_ms),
                                     gateway.property_limits, client.has_secret, gateway.flatten_memo)
    project = client.project
    if prepared.rejected:
        rejection = prepared.rejected[0]
        _count(gateway, project, **{rejection.reason: 1})
        if rejection.reason is Reason.BOT:
            return CrawlerEvent()
        if rejection.reason is Reason.INTERNAL:
            raise StorageFailed(rejection.error)
        raise BadRequest(rejection.error)
    result = await _store(gateway, prepared, project)
    if 0 in result.rejected:
        _count(gateway, project, validation=1)
        raise BadRequest(result.rejected[0])
    stored: StoredIds | None = result.duplicates.get(0)
    _count(gateway, project, duplicate=int(stored is not None), accepted=int(stored is None))
    if stored is not None:
        return StoredEvent(stored.device_id, stored.session_id)
    return StoredEvent(*prepared.dispatched.identity_by_index[0])


def storage_error(exc: Exception) -> GatewayError:
    """A storage failure as an answer: 503 + Retry-After when waiting can help, else 500."""
    if isinstance(exc, WriterStopped):
        return ServiceUnavailable(f"storage: {exc}; nothing was stored")
    if is_disk_error(exc):
        # The real error is kept: the operator reading the client's log learns what happened.
        return ServiceUnavailable(f"storage: the disk is full or failing ({exc}); nothing was stored",
                                  retry_after_seconds=60)
    return StorageFailed(f"storage: commit failed ({type(exc).__name__}); nothing was stored, resend")


async def _store(gateway: Gateway, prepared: PreparedRows, project: ProjectSettings) -> WriteResult:
    """Commit a request's rows; then its new live rows extend the live sessions (docs/contract.md §5.3).
    When nothing could be stored, the request's valid events count as `internal`."""
    dispatched = prepared.dispatched
    try:
        result = await gateway.writer.write(dispatched.write)
    except (WriterStopped, duckdb.Error) as exc:
        _count(gateway, project, internal=prepared.valid_count)
        raise storage_error(exc) from exc
    gateway.live.record(dispatched.live(result.duplicates))
    return result


def _count(gateway: Gateway, project: ProjectSettings, **outcomes: int) -> None:
    """Add a request's outcomes to `gateway_events_total` (once per request, not per event)."""
    gateway.metrics.count_events(project.id, outcomes)


def _count_rejections(gateway: Gateway, project: ProjectSettings, rejected: list[Rejection]) -> None:
    """Count rejected rows by reason; log the first validation error, rate-limited per project."""
    by_reason: dict[str, int] = {}
    first_invalid: Rejection | None = None
    for rejection in rejected:
        by_reason[rejection.reason] = by_reason.get(rejection.reason, 0) + 1
        if first_invalid is None and rejection.reason is Reason.VALIDATION:
            first_invalid = rejection
    _count(gateway, project, **by_reason)
    if first_invalid is not None:
        gateway.refusals.log(logging.WARNING, f"rows {project.id}", "project %s: %d row(s) rejected in a batch, "
                             "e.g. row %d: %s", project.id, by_reason[Reason.VALIDATION], first_invalid.index,
                             first_invalid.error)


def _prepare_batch(
    body: bytes, max_events: int, context: RequestContext, window: TimeWindow, limits: PropertyLimits,
    revenue_allowed: bool, memo: FlattenMemo,
) -> PreparedRows:
    """Split the envelope and prepare its rows; runs in a worker thread."""
    split = split_batch(body, max_events)
    return prepare_rows(split.items, split.refused, context, window, limits, revenue_allowed, memo)


def _window(gateway: Gateway, received_ms: int) -> TimeWindow:
    limits = gateway.settings.limits
    return TimeWindow(received_ms, limits.max_event_age_days, limits.future_tolerance_seconds)
