"""Device and session ids: the check vectors of docs/contract.md §5.1 and §5.2."""

from __future__ import annotations

import uuid

from appliance.identity import (
    INSERT_ID_NAMESPACE,
    device_id,
    event_id,
    event_id_text,
    session_bucket,
    session_id_for,
)

UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/148.0.0.0"
THIRTY_MINUTES_MS = 30 * 60_000


def test_device_id_check_vector() -> None:
    assert device_id(UA, "1.2.3.4", "proj-1", "salt-current") == "6e42516ff4ab941df7c82964cd4f4b41"


def test_device_id_without_user_agent_uses_placeholder() -> None:
    assert device_id("", "1.2.3.4", "p", "s") == device_id("unknown/1.0", "1.2.3.4", "p", "s")


def test_session_id_check_vectors() -> None:
    device = "6e42516ff4ab941df7c82964cd4f4b41"
    first = session_id_for("proj-1", device, 1780920000000, THIRTY_MINUTES_MS)
    assert first == "HajqCDFfuYleNipKr7DnYA"
    assert session_id_for("proj-1", device, 1780920004999, THIRTY_MINUTES_MS) == first
    assert session_id_for("proj-1", device, 1780920005000, THIRTY_MINUTES_MS) == "SbihssaI3CzUl04u4fR0Hw"


def test_grace_period_belongs_to_previous_bucket() -> None:
    edge = 1780920000000  # a multiple of 30 minutes
    assert session_bucket(edge + 4999, THIRTY_MINUTES_MS) == edge // THIRTY_MINUTES_MS - 1
    assert session_bucket(edge + 5000, THIRTY_MINUTES_MS) == edge // THIRTY_MINUTES_MS


def test_event_id_from_insert_id_is_stable_per_project() -> None:
    assert event_id("p", "abc") == event_id("p", "abc")
    assert event_id("p", "abc") != event_id("q", "abc")
    assert event_id("p", "abc").version == 5
    assert event_id("p", None) != event_id("p", None)
    assert isinstance(event_id("p", None), uuid.UUID)


def test_event_id_text_is_the_rfc_4122_name_based_uuid() -> None:
    """The stored id must stay what `uuid.uuid5` gives: a resend after an upgrade is a duplicate."""
    for project, insert_id in [("p", "abc"), ("bench", "0" * 64), ("proj-ü", "ÿ-ids with spaces")]:
        assert event_id_text(project, insert_id) == str(uuid.uuid5(INSERT_ID_NAMESPACE, f"{project}:{insert_id}"))
    assert uuid.UUID(event_id_text("p", None)).version == 4
