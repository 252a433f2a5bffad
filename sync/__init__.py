"""Upstream forwarding to ClickHouse (docs/contract.md §10): client, ledger, sync pass, retention."""
