"""Upstream forwarding to ClickHouse (SPEC §10); built in a later issue, nothing runs yet."""
