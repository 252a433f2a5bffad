"""Request and response shapes on the wire (docs/contract.md §3), with their prebuilt msgspec codecs.

Input: raw request bytes. Output: typed Structs for `validate.py`. The batch envelope keeps each
item as `msgspec.Raw`, so one malformed item is rejected on its own instead of failing the whole
request; each item is then decoded by `item_decoder` into one of the tagged payload Structs.
Unknown payload fields are allowed (SDKs add fields over time); the known ones are typed;
`properties` stays raw JSON until `appliance.properties` has checked its size.
"""

from __future__ import annotations

from typing import Any

import msgspec

ProfileIdValue = str | int | float
# Properties stay raw JSON until their size is checked (appliance.properties): a row holding
# millions of tiny items is refused before any of them becomes a Python object.
EMPTY_OBJECT = msgspec.Raw(b"{}")


class TrackPayload(msgspec.Struct):
    name: str
    properties: msgspec.Raw = EMPTY_OBJECT
    profileId: ProfileIdValue | None = None
    groups: list[str] | None = None  # null is "no groups", as OpenPanel's schema (`nullish`)


class IdentifyPayload(msgspec.Struct):
    profileId: ProfileIdValue
    firstName: str | None = None
    lastName: str | None = None
    email: str | None = None
    avatar: str | None = None
    properties: msgspec.Raw = EMPTY_OBJECT


class IncrementPayload(msgspec.Struct):
    profileId: ProfileIdValue
    property: str
    value: int | float = 1
    properties: msgspec.Raw = EMPTY_OBJECT


class GroupPayload(msgspec.Struct):
    id: str
    type: str
    name: str
    properties: msgspec.Raw = EMPTY_OBJECT


class AssignGroupPayload(msgspec.Struct):
    groupIds: list[str]
    profileId: ProfileIdValue | None = None
    properties: msgspec.Raw = EMPTY_OBJECT


class ReplayPayload(msgspec.Struct):
    chunk_index: int
    events_count: int
    is_full_snapshot: bool
    started_at: str
    ended_at: str
    payload: str
    properties: msgspec.Raw = EMPTY_OBJECT


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
    payload: msgspec.Raw = EMPTY_OBJECT


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


class BodyCredentials(msgspec.Struct):
    """`clientId` / `clientSecret` beside the event or the batch, as older SDKs send them.

    Typed `Any` so a wrong type is ignored rather than failing: the headers decide then.
    """

    clientId: Any = None
    clientSecret: Any = None


class PayloadShape(msgspec.Struct):
    groups: msgspec.Raw = msgspec.Raw(b"[]")
    groupIds: msgspec.Raw = msgspec.Raw(b"[]")


class ItemShape(msgspec.Struct):
    """Only the list fields of a large item, still raw: sized before they become objects."""

    payload: PayloadShape = msgspec.field(default_factory=PayloadShape)


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
item_shape_decoder = msgspec.json.Decoder(ItemShape)
envelope_decoder = msgspec.json.Decoder(BatchEnvelope)
credentials_decoder = msgspec.json.Decoder(BodyCredentials)
encoder = msgspec.json.Encoder()
