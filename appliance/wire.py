"""Request and response shapes on the wire (docs/contract.md §3), with their prebuilt msgspec codecs.

Input: raw request bytes. Output: typed Structs for `validate.py`. The batch envelope keeps each
item as `msgspec.Raw`, so one malformed item is rejected on its own instead of failing the whole
request; each item is then decoded by `item_decoder` into one of the tagged payload Structs.
Unknown payload fields are allowed (SDKs add fields over time); the known ones are typed.
"""

from __future__ import annotations

from typing import Any

import msgspec

ProfileIdValue = str | int | float


class TrackPayload(msgspec.Struct):
    name: str
    properties: dict[str, Any] = {}
    profileId: ProfileIdValue | None = None
    groups: list[str] = []


class IdentifyPayload(msgspec.Struct):
    profileId: ProfileIdValue
    firstName: str | None = None
    lastName: str | None = None
    email: str | None = None
    avatar: str | None = None
    properties: dict[str, Any] = {}


class IncrementPayload(msgspec.Struct):
    profileId: ProfileIdValue
    property: str
    value: int | float = 1
    properties: dict[str, Any] = {}


class GroupPayload(msgspec.Struct):
    id: str
    type: str
    name: str
    properties: dict[str, Any] = {}


class AssignGroupPayload(msgspec.Struct):
    groupIds: list[str]
    profileId: ProfileIdValue | None = None
    properties: dict[str, Any] = {}


class ReplayPayload(msgspec.Struct):
    chunk_index: int
    events_count: int
    is_full_snapshot: bool
    started_at: str
    ended_at: str
    payload: str
    properties: dict[str, Any] = {}


class TrackItem(msgspec.Struct, tag_field="type", tag="track"):
    payload: TrackPayload


class IdentifyItem(msgspec.Struct, tag_field="type", tag="identify"):
    payload: IdentifyPayload


class IncrementItem(msgspec.Struct, tag_field="type", tag="increment"):
    payload: IncrementPayload


class DecrementItem(msgspec.Struct, tag_field="type", tag="decrement"):
    payload: IncrementPayload


class GroupItem(msgspec.Struct, tag_field="type", tag="group"):
    payload: GroupPayload


class AssignGroupItem(msgspec.Struct, tag_field="type", tag="assign_group"):
    payload: AssignGroupPayload


class ReplayItem(msgspec.Struct, tag_field="type", tag="replay"):
    payload: ReplayPayload


class AliasItem(msgspec.Struct, tag_field="type", tag="alias"):
    payload: dict[str, Any] = {}


EventItem = (
    TrackItem
    | IdentifyItem
    | IncrementItem
    | DecrementItem
    | GroupItem
    | AssignGroupItem
    | ReplayItem
    | AliasItem
)


class BatchEnvelope(msgspec.Struct):
    events: list[msgspec.Raw]


class RejectedRow(msgspec.Struct):
    index: int
    reason: str
    error: str


class BatchResponse(msgspec.Struct):
    accepted: int
    duplicates: int
    rejected: list[RejectedRow]


class TrackResponse(msgspec.Struct):
    deviceId: str
    sessionId: str


class DeviceIdResponse(msgspec.Struct):
    deviceId: str
    sessionId: str
    message: str


class ErrorBody(msgspec.Struct):
    status: int
    error: str
    message: str


item_decoder = msgspec.json.Decoder(EventItem)
envelope_decoder = msgspec.json.Decoder(BatchEnvelope)
encoder = msgspec.json.Encoder()
