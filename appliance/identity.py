"""Device ids, session ids and event ids (docs/contract.md §5.1, §5.2, §8).

Input: the request's user agent and client address, the project, the daily salt, the event
time. Output: 32-hex device ids, 22-char deterministic session ids, UUID event ids. Pure
functions: the salts themselves live in DuckDB (`storage.salts`).
"""

from __future__ import annotations

import base64
import hashlib
import uuid

UNKNOWN_USER_AGENT = "unknown/1.0"
SESSION_GRACE_MS = 5_000

# Fixed forever: event ids derived from `__insertId` must be the same on every gateway and in
# every release, or a resend after an upgrade would be stored twice.
INSERT_ID_NAMESPACE = uuid.UUID("8c5f2b1e-3d4a-5b6c-9d7e-0f1a2b3c4d5e")
_INSERT_ID_NAMESPACE_BYTES = INSERT_ID_NAMESPACE.bytes


def device_id(user_agent: str, client_ip: str, project_id: str, salt: str) -> str:
    """The anonymous device id of docs/contract.md §5.1 (32 lowercase hex chars)."""
    ua = user_agent or UNKNOWN_USER_AGENT
    return hashlib.shake_256(f"{ua}:{client_ip}:{project_id}:{salt}".encode()).hexdigest(16)


def session_bucket(event_ms: int, timeout_ms: int) -> int:
    """The session bucket of an event time; the first 5 s of a bucket belong to the one before."""
    bucket = event_ms // timeout_ms
    if event_ms - bucket * timeout_ms < SESSION_GRACE_MS:
        bucket -= 1
    return bucket


def bucket_session_id(project_id: str, device: str, bucket: int) -> str:
    """The deterministic session id of a device's bucket (22 base64url chars, no padding)."""
    digest = hashlib.sha256(f"sess:v1:{project_id}:{device}:{bucket}".encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def session_id_for(project_id: str, device: str, event_ms: int, timeout_ms: int) -> str:
    """The deterministic session id an event time falls into."""
    return bucket_session_id(project_id, device, session_bucket(event_ms, timeout_ms))


def event_id(project_id: str, insert_id: str | None) -> uuid.UUID:
    """A stable id for client-supplied `__insertId`s (UUID version 5), else a fresh random one."""
    return uuid.UUID(event_id_text(project_id, insert_id))


def event_id_text(project_id: str, insert_id: str | None) -> str:
    """`event_id` as the text stored, made without a `UUID` object: this runs once per event,
    and the object's construction and formatting were a third of the id's cost."""
    if insert_id is None:
        return str(uuid.uuid4())
    name = _INSERT_ID_NAMESPACE_BYTES + f"{project_id}:{insert_id}".encode()
    digest = bytearray(hashlib.sha1(name, usedforsecurity=False).digest())  # what uuid5 hashes with
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5 (RFC 4122 §4.3)
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    text = digest[:16].hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
