"""The official OpenPanel JS SDK (`@openpanel/sdk` from npm, on the machine's Node.js) against the
real gateway: track, identify, increment, decrement, setGroup, upsertGroup and revenue land as
docs/contract.md §3.2, §6.3 and §7 say. `npm ci --prefix tests/e2e/sdk` installs it (the README's test command does)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.e2e.conftest import GatewayServer
from tests.helpers import CLIENT_ID, CLIENT_SECRET, query

SDK_FOLDER = Path(__file__).resolve().parent / "sdk"


def test_official_sdk_calls_land(server: GatewayServer) -> None:
    node = shutil.which("node")
    assert node, "Node.js is needed for this test"
    assert (SDK_FOLDER / "node_modules" / "@openpanel" / "sdk").is_dir(), "run: npm ci --prefix tests/e2e/sdk"
    run = subprocess.run(
        [node, "drive.mjs"], cwd=SDK_FOLDER, capture_output=True, text=True, timeout=60,
        env={**os.environ, "GATEWAY_URL": server.url, "CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": CLIENT_SECRET},
    )
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout.strip().splitlines()[-1])
    # The SDK answers null when it gave up on an error; every call must have been accepted.
    assert all(results[call] is not None for call in results), results
    assert set(results["track"]) == {"deviceId", "sessionId"}

    assert server.stop() == 0
    db = server.database
    events = {r[0]: r[1:] for r in query(db, "SELECT name, profile_id, revenue, properties, sdk_name, device FROM events")}
    assert set(events) == {"sdk_signup", "revenue", "sdk_checkout"}  # Node is a server agent: no session events
    assert json.loads(events["sdk_signup"][2]) == {"plan": "pro", "cart.items": "2"}
    assert events["sdk_signup"][3:] == ("node", "server")
    assert events["revenue"][:2] == ("sdk-user", 1299)
    assert json.loads(events["revenue"][2]) == {"currency": "EUR"}
    assert events["sdk_checkout"][0] == "sdk-user"

    profile = query(db, "SELECT first_name, last_name, email, properties, groups FROM profiles WHERE id = 'sdk-user'")
    first, last, email, properties, groups = profile[0]
    assert (first, last, email, groups) == ("Ada", "Lovelace", "ada@example.com", ["acme"])
    assert json.loads(properties)["visits"] == "2" and json.loads(properties)["tier"] == "gold"
    assert query(db, "SELECT id, type, name, properties FROM groups") == [("acme", "company", "Acme", '{"seats":"40"}')]
