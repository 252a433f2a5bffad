"""App tier: Litestar's test client on `create_app`, with a real DuckDB file in a temp folder."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.app import create_app
from appliance.settings import Settings
from tests.helpers import PHONE_UA


class AppClient:
    """The test client plus direct reads of the app's DuckDB (through a second connection)."""

    def __init__(self, client: TestClient[Any]) -> None:
        self.http = client

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        reader = self.http.app.state.gateway.writer.reader()
        try:
            return reader.execute(sql, list(params)).fetchall()
        finally:
            reader.close()

    def count(self, table: str = "events") -> int:
        """Rows of `table`; for `events`, the clients' events (not the gateway's session events)."""
        where = " WHERE name NOT IN ('session_start', 'session_end')" if table == "events" else ""
        return int(self.rows(f"SELECT count(*) FROM {table}{where}")[0][0])


@pytest.fixture
def app_client(settings: Settings) -> Iterator[AppClient]:
    # A phone's user agent by default: the test client's own ("testclient") is a server agent.
    with TestClient(app=create_app(settings)) as client:
        client.headers["user-agent"] = PHONE_UA
        yield AppClient(client)
