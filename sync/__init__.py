"""Upstream forwarding to ClickHouse (SPEC §10): client, ledger, sync pass, retention."""
