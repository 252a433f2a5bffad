"""A disk that really fills: a tmpfs volume of a few MiB under the gateway's storage (needs root).

The gateway answers 503 with Retry-After and the real error, never 500; /readyz names the
problem; it starts on a full disk and refuses events instead of exiting; it accepts again by
itself once space returns; every acknowledged event is stored exactly once.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import GatewayServer
from tests.e2e.test_metrics import scrape, value
from tests.helpers import AUTH, query, track, write_config

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (CI runs as root)")


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    volume = tmp_path / "volume"
    volume.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(volume)], check=True)
    try:
        yield volume
    finally:
        subprocess.run(["umount", "-l", str(volume)], check=False)


def _fill(volume: Path, leave_bytes: int) -> Path:
    """A filler file that leaves about `leave_bytes` free on the volume."""
    filler = volume / "filler"
    stats = os.statvfs(volume)
    size = max(0, stats.f_bavail * stats.f_frsize - leave_bytes)
    with filler.open("ab") as out, contextlib.suppress(OSError):
        out.write(b"\0" * size)
    return filler


def _config(folder: Path, volume: Path, **storage: object) -> None:
    write_config(folder, storage={"path": str(volume / "gateway.duckdb"), "cache_dir": str(volume / "cache"),
                                  **storage})


def _batch(server: GatewayServer, start: int, count: int = 500) -> httpx.Response:
    events = [track("fill", insert_id=f"f{n}", blob="x" * 2000) for n in range(start, start + count)]
    return httpx.post(f"{server.url}/track/batch", json={"events": events}, headers=AUTH, timeout=60)


def test_a_disk_that_fills_gets_503_with_the_real_error_and_recovers(tmp_path: Path, small_volume: Path) -> None:
    _config(tmp_path, small_volume, min_free_disk_bytes=0)  # no floor: the writes themselves hit ENOSPC
    server = GatewayServer(tmp_path).start()
    filler = _fill(small_volume, leave_bytes=3 * 1024 * 1024)
    internal_before = value(scrape(server), "gateway_events_total", project="demo", outcome="internal")
    acknowledged: set[str] = set()
    full = None
    for start in range(0, 100_000, 500):
        response = _batch(server, start)
        assert response.status_code in (202, 503), response.text  # never 500
        if response.status_code == 503:
            full = response
            break
        acknowledged.update(f"f{n}" for n in range(start, start + 500))
    assert full is not None, "the volume never filled"
    assert full.headers["retry-after"] == "60"
    assert "No space left on device" in full.json()["message"]
    ready = httpx.get(f"{server.url}/readyz", timeout=10)
    assert ready.status_code == 503 and "No space left on device" in ready.json()["reason"]
    # The refused batch's 500 valid rows could not be stored: each counts as `internal`.
    internal_after = value(scrape(server), "gateway_events_total", project="demo", outcome="internal")
    assert internal_after - internal_before == 500

    filler.unlink()  # space returns: accepted again without a restart
    after = _batch(server, 200_000, count=10)
    assert after.status_code == 202, after.text
    acknowledged.update(f"f{n}" for n in range(200_000, 200_010))
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
    assert server.stop() == 0
    stored = query(small_volume / "gateway.duckdb", "SELECT json_extract_string(properties, '$.__insertId'), count(*) FROM events "
                                    "WHERE name = 'fill' GROUP BY 1")
    assert {insert_id for insert_id, _ in stored} == acknowledged
    assert {count for _, count in stored} == {1}


def test_the_gateway_starts_on_a_full_disk_and_refuses_events(tmp_path: Path, small_volume: Path) -> None:
    _config(tmp_path, small_volume, min_free_disk_bytes=268435456)  # the default floor, on a 40 MiB volume
    server = GatewayServer(tmp_path).start()  # ready: the floor is at most 5% of the volume
    assert _batch(server, 0, count=10).status_code == 202
    assert server.stop() == 0
    filler = _fill(small_volume, leave_bytes=0)
    server.start(ready=False)  # the same folder, started again while the disk is full
    for _ in range(100):
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200:
                break
    assert server.process is not None and server.process.poll() is None, "".join(server.output)
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    ready = httpx.get(f"{server.url}/readyz", timeout=10)
    assert ready.status_code == 503 and "free on the storage volume" in ready.json()["reason"]
    refused = _batch(server, 10, count=10)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "60"
    filler.unlink()
    accepted = None
    deadline = time.monotonic() + 20  # disk readings are up to a second old; a commit may fail first
    while time.monotonic() < deadline:
        accepted = _batch(server, 10, count=10)
        if accepted.status_code == 202:
            break
        time.sleep(0.2)
    assert accepted is not None and accepted.status_code == 202, accepted.text if accepted is not None else ""
    assert server.stop() == 0
    assert query(small_volume / "gateway.duckdb", "SELECT count(*) FROM events WHERE name = 'fill'") == [(20,)]
