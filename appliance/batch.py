"""A request's CPU-bound middle: raw items → validated rows → rows to store, each row on its own.

Input: the raw items of one request (`envelope.split_batch`, or the single body of `/track`), the
items already refused while splitting, the request's context, time window and property limits.
Output: `PreparedRows`: the `Dispatched` rows for the writer and one `Rejection` per row that
will not be stored. Route handlers run `prepare_rows` in a worker thread, so a large or hostile
body never holds the event loop while other clients wait.

Every row gets exactly one outcome here or from the writer: a rule the row breaks is
`validation`; an unexpected exception while validating or dispatching one row is `internal` for
that row only (logged with its traceback) and the other rows go on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import msgspec

from appliance.dispatch import Dispatched, RequestContext, dispatch
from appliance.enrich.useragent import AgentKind
from appliance.outcomes import Reason, Rejection
from appliance.properties import FlattenMemo, PropertyLimits
from appliance.timestamps import TimeWindow
from appliance.validate import ValidEvent, validate_item
from storage.session_aggregates import event_batch

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal error on this row; nothing of it was stored, resending is safe"


@dataclass(slots=True)
class PreparedRows:
    """What a request stores and what it refused before storage."""

    item_count: int
    dispatched: Dispatched
    valid_count: int  # rows handed to the writer
    rejected: list[Rejection] = field(default_factory=list)


def prepare_rows(
    items: list[msgspec.Raw] | list[bytes],
    refused: dict[int, str],
    context: RequestContext,
    window: TimeWindow,
    limits: PropertyLimits,
    revenue_allowed: bool = True,
    memo: FlattenMemo | None = None,
) -> PreparedRows:
    """Validate every item, drop a crawler's, dispatch the rest (see the module docstring).

    `revenue_allowed` is False for clients without the secret (`appliance.validate`). `memo`
    holds the property objects already flattened under `limits` (the gateway's, kept across
    requests); without one, the request gets its own.
    """
    valid: list[ValidEvent] = []
    rejected = [Rejection(index, Reason.VALIDATION, error) for index, error in refused.items()]
    if memo is None:
        memo = FlattenMemo()  # the context SDKs repeat on every event is flattened once per request
    for index, raw in enumerate(items):
        if index in refused:
            continue
        outcome = _validate_one(index, raw, window, limits, revenue_allowed, memo)
        if isinstance(outcome, Rejection):
            rejected.append(outcome)
        else:
            valid.append(outcome)
    if context.agent.kind is AgentKind.BOT and valid:
        # A crawler's events are acknowledged and counted, never stored (docs/contract.md §6.1).
        name = context.agent.browser or "crawler"
        rejected.extend(Rejection(event.index, Reason.BOT, f"bot: {name}") for event in valid)
        valid = []
    dispatched, failed = _dispatch_each_on_its_own(context, valid)
    rejected.extend(failed)
    return PreparedRows(len(items), _with_event_columns(dispatched), len(valid) - len(failed), rejected)


def _with_event_columns(dispatched: Dispatched) -> Dispatched:
    """The request's events as the columns the writer stores (`event_batch`), built here in the
    worker thread rather than on the writer's; only the live rows stay rows, for the live sessions."""
    write = dispatched.write
    if write.events:
        dispatched.write = msgspec.structs.replace(write, events=[], event_columns=event_batch(write.events))
    return dispatched


def _validate_one(
    index: int, raw: msgspec.Raw | bytes, window: TimeWindow, limits: PropertyLimits, revenue_allowed: bool,
    memo: FlattenMemo,
) -> ValidEvent | Rejection:
    try:
        return validate_item(index, raw, window, limits, revenue_allowed=revenue_allowed, memo=memo)
    except Exception:
        log.exception("row %d: unexpected error while validating", index)
        return Rejection(index, Reason.INTERNAL, INTERNAL_ERROR)


def _dispatch_each_on_its_own(
    context: RequestContext, events: list[ValidEvent]
) -> tuple[Dispatched, list[Rejection]]:
    """Dispatch all rows at once; if that fails, row by row, so only the failing rows are lost."""
    try:
        return dispatch(context, events), []
    except Exception:  # noqa: BLE001 - isolated below, row by row
        log.warning("dispatch of %d rows failed; dispatching them one by one", len(events))
    merged = Dispatched()
    failed: list[Rejection] = []
    for event in events:
        try:
            alone = dispatch(context, [event])
        except Exception:
            log.exception("row %d: unexpected error while dispatching", event.index)
            failed.append(Rejection(event.index, Reason.INTERNAL, INTERNAL_ERROR))
            continue
        offset = len(merged.write.events)
        merged.write.events.extend(alone.write.events)
        merged.write.profile_changes.extend(alone.write.profile_changes)
        merged.write.groups.extend(alone.write.groups)
        merged.write.replays.extend(alone.write.replays)
        merged.identity_by_index.update(alone.identity_by_index)
        merged.live_positions.extend(offset + position for position in alone.live_positions)
        merged.live_rows.extend(alone.live_rows)
    return merged, failed
