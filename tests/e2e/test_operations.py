"""Running the gateway as an operator would: mistakes named in one line, logs, SIGHUP, systemd's
notifications, `status` exit codes and a backup of the live store."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgspec

from appliance import __version__
from tests.e2e.conftest import REPO, GatewayServer
from tests.helpers import AUTH, PHONE_UA, query, track, write_config


def cli(config: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance", *command, "--config", str(config)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def post(gateway: GatewayServer, count: int, prefix: str = "e", headers: dict[str, str] = AUTH) -> httpx.Response:
    body = msgspec.json.encode({"events": [track(f"{prefix}{i}", insert_id=f"{prefix}-{i}") for i in range(count)]})
    return httpx.post(f"{gateway.url}/track/batch", content=body, headers={**headers, "user-agent": PHONE_UA},
                      timeout=30)


def wait_for(condition: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_version_and_console_script() -> None:
    for command in ([sys.executable, "-m", "appliance"], [str(Path(sys.executable).parent / "edge-gateway")]):
        result = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and result.stdout.strip() == f"edge-gateway {__version__}"


def test_mistakes_are_one_line_exit_2_and_never_listening(tmp_path: Path) -> None:
    missing_geo = write_config(tmp_path, geo={"database": "GeoLite2-City.mmdb"})
    checked = cli(missing_geo, "check")
    assert checked.returncode == 2
    assert f"problem: geo.database: {tmp_path / 'GeoLite2-City.mmdb'} does not exist" in checked.stdout
    served = cli(missing_geo, "serve")
    assert (served.returncode, served.stdout) == (2, "")
    assert served.stderr.splitlines() == [f"error: geo.database: {tmp_path / 'GeoLite2-City.mmdb'} does not exist"]

    (tmp_path / "GeoLite2-City.mmdb").write_text("not a database")
    assert "is not a MaxMind database" in cli(missing_geo, "check").stdout

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = write_config(tmp_path, server={"port": port})
        served = cli(busy, "serve")
    assert (served.returncode, served.stdout) == (2, "")
    assert served.stderr.splitlines() == [f"error: server.host/server.port: cannot listen on 127.0.0.1:{port}: "
                                          "already in use"]

    # The store is held by a running gateway: the second one names the lock, in one line.
    config = write_config(tmp_path)
    first = GatewayServer(tmp_path).start()
    try:
        second = cli(config, "serve")
        assert second.returncode == 2 and "listening" not in second.stdout
        assert len(second.stderr.splitlines()) == 1 and "Could not set lock" in second.stderr
    finally:
        assert first.stop() == 0


def test_json_logs_rate_limited_401s_summary_and_sighup(tmp_path: Path) -> None:
    config = write_config(tmp_path, logging={"format": "json", "summary_interval_seconds": 0.5,
                                             "repeat_interval_seconds": 60.0})
    gateway = GatewayServer(tmp_path).start()
    try:
        wrong = {**AUTH, "openpanel-client-secret": "wrong"}
        for _ in range(5):
            assert post(gateway, 1, headers=wrong).status_code == 401
        assert post(gateway, 3).json()["accepted"] == 3
        wait_for(lambda: any('"ingest last' in line and "accepted 3" in line for line in gateway.output))
        logs = [json.loads(line) for line in gateway.output if line.startswith("{")]
        assert {"time", "level", "logger", "message"} <= set(logs[0])
        refusals = [entry["message"] for entry in logs if entry["message"].startswith("401 on /track/batch")]
        assert len(refusals) == 1 and "openpanel-client-secret" in refusals[0]
        summaries = [entry["message"] for entry in logs if entry["message"].startswith("ingest last")]
        assert sum("5 requests, 0 events" in line for line in summaries) <= 1  # the 401s, if alone
        assert any("3 events (accepted 3)" in line for line in summaries)
        assert not any(entry["logger"].startswith("apscheduler") for entry in logs)
        # Every line of the process is either JSON or the one "listening" line on stdout.
        assert all(line.startswith(("{", "gateway listening on ")) for line in gateway.output)

        config.write_text(config.read_text().replace('format = "json"', 'format = "json"\nlevel = "warning"'))
        gateway.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        wait_for(lambda: any("SIGHUP: logging reloaded (level warning" in line for line in gateway.output))
        seen = len(gateway.output)
        assert post(gateway, 2, prefix="after").json()["accepted"] == 2
        time.sleep(1.5)  # three summary intervals: at level warning, no summary line
        assert not any("ingest last" in line for line in gateway.output[seen:])
        assert httpx.get(f"{gateway.url}/readyz").status_code == 200  # SIGHUP did not stop it
    finally:
        assert gateway.stop() == 0


def test_sd_notify_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    write_config(tmp_path)
    address = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(address))
        listener.settimeout(10)
        gateway = GatewayServer(tmp_path, env={"NOTIFY_SOCKET": str(address), "WATCHDOG_USEC": "600000"}).start()
        try:
            messages = [listener.recv(4096).decode() for _ in range(3)]
            assert messages[0].splitlines()[0] == "READY=1"
            assert messages[0].splitlines()[1] == f"STATUS=accepting events on {gateway.url}"
            assert messages[1:] == ["WATCHDOG=1", "WATCHDOG=1"]
        finally:
            assert gateway.stop() == 0
        rest = []
        listener.settimeout(0.5)
        try:
            while True:
                rest.append(listener.recv(4096).decode())
        except TimeoutError:
            pass
    stopping = [message for message in rest if message.startswith("STOPPING=1")]
    assert len(stopping) == 1


def test_status_exit_codes_and_backup_of_the_live_store(tmp_path: Path) -> None:
    # An upstream nobody listens on: the sync fails, so the gateway is degraded.
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead_port = unused.getsockname()[1]
    config = write_config(tmp_path, upstream={"url": f"http://127.0.0.1:{dead_port}", "timeout_seconds": 1.0},
                          sync={"interval_seconds": 3600.0})
    gateway = GatewayServer(tmp_path).start()
    try:
        healthy = cli(config, "status")
        assert healthy.returncode == 0, healthy.stdout
        assert "HEALTHY" in healthy.stdout.splitlines()[0]
        assert post(gateway, 40).json()["accepted"] == 40
        assert httpx.post(f"{gateway.url}/admin/sync", timeout=30).json()["error"]
        degraded = cli(config, "status")
        assert degraded.returncode == 1
        assert "DEGRADED" in degraded.stdout and "last sync failed" in degraded.stdout
        assert any(line.split()[:2] == ["events", "41"] for line in degraded.stdout.splitlines())
        as_json = json.loads(cli(config, "status", "--json").stdout)
        assert as_json["health"]["state"] == "degraded" and as_json["backlog"]["events"]["rows"] == 41

        copy = tmp_path / "backup" / "copy.duckdb"
        copy.parent.mkdir()
        backed_up = cli(config, "backup", str(copy))
        assert backed_up.returncode == 0, backed_up.stderr
        assert query(copy, "SELECT count(*) FROM events WHERE name LIKE 'e%'") == [(40,)]
        again = cli(config, "backup", str(copy))
        assert again.returncode == 1 and "exists" in again.stderr
    finally:
        assert gateway.stop() == 0
    assert cli(config, "status").returncode == 2

