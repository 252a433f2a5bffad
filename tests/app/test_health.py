"""Health, readiness and the disk cap (docs/contract.md §3.6, §9)."""

from __future__ import annotations

from pathlib import Path

import msgspec
from litestar.testing import TestClient

from appliance.app import create_app
from appliance.settings import load_settings
from tests.app.conftest import AppClient
from tests.helpers import AUTH, track, write_config


def test_healthz_and_readyz(app_client: AppClient) -> None:
    assert app_client.http.get("/healthz").json() == {"status": "ok"}
    assert app_client.http.get("/readyz").json() == {"status": "ready"}


def test_schema_is_refused_outside_admin_networks(app_client: AppClient) -> None:
    # The test client's peer ("testclient") is no address in server.admin_networks; the schema
    # served to loopback is checked on the real server (tests/e2e/test_status_page.py).
    response = app_client.http.get("/schema/openapi.json")
    assert response.status_code == 403
    assert "admin_networks" in response.json()["message"]


def test_unknown_route_is_json_404(app_client: AppClient) -> None:
    response = app_client.http.get("/nope")
    assert response.status_code == 404
    assert response.json()["status"] == 404


def test_over_the_disk_cap_new_events_get_503_and_nothing_is_stored(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, storage={"max_disk_bytes": 1}))
    with TestClient(app=create_app(settings)) as client:
        response = client.post("/track/batch", content=msgspec.json.encode({"events": [track()]}), headers=AUTH)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "60"
        assert "storage.max_disk_bytes=1" in response.json()["message"]
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "max_disk_bytes" in ready.json()["reason"]
        assert client.get("/healthz").status_code == 200
        reader = client.app.state.gateway.writer.reader()
        assert reader.execute("SELECT count(*) FROM events").fetchone() == (0,)
