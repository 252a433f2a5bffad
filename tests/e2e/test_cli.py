"""Operator commands against real files, a real gateway and the ClickHouse HTTP front."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import REPO, GatewayServer
from tests.e2e.test_upstream_faults import UpstreamFront, post
from tests.helpers import write_config


def run(config: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance", *command, "--config", str(config)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def test_upstream_init_creates_then_checks(tmp_path: Path) -> None:
    config = write_config(tmp_path, upstream={"url": "chdb://upstream"})
    first = run(config, "upstream-init")
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created openpanel.") == 5 and "(single node)" in first.stdout
    again = run(config, "upstream-init")
    assert again.returncode == 0 and "created" not in again.stdout
    assert "all 5 tables can take the gateway's rows" in again.stdout
    # OpenPanel's current sessions table has no properties column: nothing is sent to it.
    assert "note: openpanel.sessions has no column for properties: not forwarded" in again.stdout


def test_upstream_init_reports_a_table_that_cannot_take_the_rows(tmp_path: Path) -> None:
    front = UpstreamFront(tmp_path)  # creates the tables; then one is made wrong
    try:
        # A different but compatible type is no problem; one that cannot hold text is.
        front.upstream.command("ALTER TABLE openpanel.groups MODIFY COLUMN type LowCardinality(String)")
        front.upstream.command("ALTER TABLE openpanel.groups MODIFY COLUMN name Array(String)")
        config = write_config(tmp_path, upstream={"url": front.url})
        result = run(config, "upstream-init")
    finally:
        front.stop()
    assert result.returncode == 1
    problems = [line for line in result.stdout.splitlines() if line.startswith("problem:")]
    assert problems == ["problem: openpanel.groups.name: type Array(String) cannot take the gateway's string"]


def test_upstream_init_against_an_unreachable_clickhouse_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write_config(tmp_path, upstream={"url": f"http://default:hunter2@127.0.0.1:{port}", "timeout_seconds": 5.0})
    result = run(config, "upstream-init")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"upstream.url: cannot connect to 127.0.0.1:{port}: "), lines
    assert "hunter2" not in result.stderr


def test_status_and_sync_with_and_without_the_gateway(tmp_path: Path) -> None:
    front = UpstreamFront(tmp_path)
    try:
        config = write_config(tmp_path, upstream={"url": front.url}, sync={"interval_seconds": 3600.0,
                                                                          "batch_rows": 500})
        gateway = GatewayServer(tmp_path).start()
        post(gateway, "a", 1200)
        through_gateway = run(config, "sync")  # the gateway holds the files: the CLI asks it
        assert through_gateway.returncode == 0, through_gateway.stderr
        # 1200 events, their session_start, the session row and the visitor's anonymous profile
        assert through_gateway.stdout.strip().splitlines()[-1] == "sent 1203 rows, 0 waiting"
        post(gateway, "b", 700)
        assert gateway.stop() == 0
        stopped = run(config, "status", "--json")
        assert stopped.returncode == 2  # down
        status = json.loads(stopped.stdout)
        assert status["gateway"] == "not running" and status["backlog"]["events"]["rows"] == 700
        assert status["health"] == {"code": 2, "state": "down", "reasons": ["the gateway is not running"]}
        on_files = run(config, "sync")
        assert on_files.returncode == 0, on_files.stderr
        # Progress per batch; the same visit's session row goes again with its new totals.
        assert on_files.stdout.splitlines() == ["events: 500 rows sent", "events: 700 rows sent",
                                                "sessions: 1 rows sent", "done: 701 rows sent, 0 quarantined"]
        assert front.count("SELECT count(), uniqExact(id) FROM openpanel.events") == [(1901, 1901)]
        assert front.count("SELECT count(), sum(event_count) FROM openpanel.sessions FINAL") == [(1, 1900)]
    finally:
        front.stop()
