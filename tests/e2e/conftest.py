"""E2E tier: the real `python -m appliance serve` on a free port, talked to over HTTP."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import write_config

REPO = Path(__file__).resolve().parents[2]
_START_TIMEOUT_SECONDS = 30.0


class GatewayServer:
    """One gateway process over a config folder; can be started again after it stops."""

    def __init__(self, folder: Path, max_open_files: int | None = None, env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.max_open_files = max_open_files  # RLIMIT_NOFILE (soft and hard) of the server process
        self.env = {**os.environ, **env} if env else None
        self.config = folder / "config.toml"
        self.database = folder / "var" / "gateway.duckdb"
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.output: list[str] = []

    def start(self, ready: bool = True) -> GatewayServer:
        """Start and wait for the "listening" line, then (unless `ready=False`) for /readyz 200."""
        self.output = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "appliance", "serve", "--config", str(self.config)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env,
            preexec_fn=self._limit_open_files if self.max_open_files else None,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith("gateway listening on "):
                self.url = line.split()[-1]
                break
            if time.monotonic() > deadline:
                break
        if not self.url:
            self.process.kill()
            self.process.wait()
            self.process.stdout.close()
            raise RuntimeError("gateway did not start:\n" + "".join(self.output))
        # Keep draining the output so the server never blocks on a full pipe.
        threading.Thread(target=self._drain, args=(self.process,), daemon=True).start()
        while ready and time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        if not ready:
            return self
        raise RuntimeError("gateway never became ready:\n" + "".join(self.output))

    def _limit_open_files(self) -> None:
        assert self.max_open_files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.max_open_files, self.max_open_files))

    def _drain(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        with process.stdout:
            for line in process.stdout:
                self.output.append(line)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def peak_rss_bytes(self) -> int:
        """The process's high-water resident set size (VmHWM)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: the graceful path."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self.process = None
        return code

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.process = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GatewayServer]:
    write_config(tmp_path)
    gateway = GatewayServer(tmp_path).start()
    yield gateway
    if gateway.process is not None:
        gateway.kill()
