"""What ships for production: the systemd unit, the production config, the alert rules, and a
fresh install into a temporary root that starts and answers /readyz."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from appliance.metrics import GatewayMetrics
from appliance.settings import load_settings
from tests.e2e.conftest import REPO
from tests.unit.test_settings import _documented_keys

UNIT = REPO / "systemd" / "edge-gateway.service"
INSTALLED_BINARY = "/opt/edge-gateway/current/bin/edge-gateway"


def test_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    text = UNIT.read_text()
    assert text.count(INSTALLED_BINARY) == 2  # ExecStartPre (check) and ExecStart (serve)
    assert re.search(r"^ExecStartPre=\S+ check --config ", text, re.M)
    for line in ("Type=notify", "WatchdogSec=", "ExecReload=/bin/kill -HUP $MAINPID", "MemoryMax="):
        assert line in text
    # A setting given twice silently takes its last value: only list settings may repeat.
    keys = [line.split("=", 1)[0] for line in text.splitlines() if "=" in line and not line.startswith("#")]
    repeated = {key for key in keys if keys.count(key) > 1} - {"SystemCallFilter", "ExecStartPre", "Environment"}
    assert not repeated, repeated
    # The unit as shipped, with its binary pointed at this test's interpreter.
    unit = tmp_path / "edge-gateway.service"
    unit.write_text(text.replace(INSTALLED_BINARY, f"{sys.executable} -m appliance"))
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stderr
    assert verify.stderr.strip() == ""
    security = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                              capture_output=True, text=True, timeout=60)
    assert security.returncode == 0, security.stderr
    score = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout).group(1))  # type: ignore[union-attr]
    assert score <= 2.5, security.stdout


def test_production_config_has_every_key_and_absolute_state_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    production = REPO / "deploy" / "config.toml"
    monkeypatch.setenv("GATEWAY_UPSTREAM_URL", "https://user:secret@clickhouse.example:8443")
    monkeypatch.setenv("SITE_DEMO_SECRET", "from-the-environment")
    settings = load_settings(production)
    assert settings.storage.path == "/var/lib/edge-gateway/gateway.duckdb"
    assert settings.storage.cache_dir == "/var/lib/edge-gateway/cache"
    assert settings.projects[0].client_secret == "from-the-environment"
    keys = set(re.findall(r"^#?\s*([a-z_]+)\s*=", production.read_text(), re.M))
    documented = {key for section in _documented_keys().values() for key in section}
    assert documented <= keys


def test_alert_rules_use_only_exported_metrics() -> None:
    rules = yaml.safe_load((REPO / "deploy" / "alerts.yml").read_text())["groups"][0]["rules"]
    exported = {metric.name for metric in GatewayMetrics("x").registry.collect()}
    exported |= {f"{name}_total" for name in exported} | {"up"}
    for rule in rules:
        used = set(re.findall(r"\b(gateway_[a-z_]+|up)\b", rule["expr"]))
        assert used and used <= exported, (rule["alert"], used - exported)
    names = {rule["alert"] for rule in rules}
    assert {"EdgeGatewayNotAccepting", "EdgeGatewayUpstreamBacklogGrowing", "EdgeGatewayLastSyncTooOld",
            "EdgeGatewayDiskLow"} <= names


@pytest.mark.slow
def test_fresh_install_into_a_temporary_root_serves(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(REPO)],
                   check=True, timeout=600, capture_output=True)
    wheel = next(dist.glob("edge_gateway-*.whl"))
    root = tmp_path / "root"
    python = shutil.which("python3") or sys.executable
    install = subprocess.run([str(REPO / "deploy" / "install.sh"), "--root", str(root), "--wheel", str(wheel),
                              "--python", python], capture_output=True, text=True, timeout=1200)
    assert install.returncode == 0, install.stdout + install.stderr
    binary = root / INSTALLED_BINARY.lstrip("/")
    config = root / "etc" / "edge-gateway" / "config.toml"
    assert (root / "etc" / "systemd" / "system" / "edge-gateway.service").read_text() == UNIT.read_text()
    venv_python = binary.parent / "python"
    assert subprocess.run([str(venv_python), "-c", "import chdb"], capture_output=True).returncode != 0
    # The production config as installed; only the port differs (a free one, chosen at bind).
    config.write_text(config.read_text().replace("port = 8080", "port = 0").replace('"0.0.0.0"', '"127.0.0.1"'))
    # The secrets the production config reads from the environment (secrets.env under systemd);
    # the upstream is unreachable, which must not keep the gateway from storing events.
    env = {**os.environ, "GATEWAY_UPSTREAM_URL": "http://127.0.0.1:9", "SITE_DEMO_SECRET": "fresh-install-secret"}
    check = subprocess.run([str(binary), "check", "--config", str(config)], capture_output=True, text=True,
                           env=env, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    process = subprocess.Popen([str(binary), "serve", "--config", str(config)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    try:
        assert process.stdout is not None
        url = ""
        deadline = time.monotonic() + 60
        for line in process.stdout:
            if line.startswith("gateway listening on "):
                url = line.split()[-1]
                break
            assert time.monotonic() < deadline
        assert url, "the installed gateway did not start"
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200
        assert (root / "var" / "lib" / "edge-gateway" / "gateway.duckdb").exists()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        if process.stdout:
            process.stdout.close()
