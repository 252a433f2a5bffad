"""Rows as OpenPanel records them (docs/contract.md §10): one dashboard for gateway and direct traffic.

Each test sends events through the app (real DuckDB) and checks a column whose meaning OpenPanel
defines: referrer inheritance and unknown referrers (`events.incoming-event.ts`,
`parse-referrer.ts`), session counts (`session-buffer.ts`), server events' ids, `__hash`
(`parsePath`), anonymous profiles and `last_seen_at` (`event.service.ts`, `profile.service.ts`).
The last test forwards a small site's traffic to a real ClickHouse engine (chdb) and runs
OpenPanel's own overview queries (`packages/db/src/services/overview.service.ts`) on it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from appliance.app import create_app
from appliance.settings import load_settings
from sync.clickhouse import Upstream
from tests.helpers import AUTH, PHONE_UA, iso, now_utc, track, write_config

SERVER_UA = "python-requests/2.31.0"
_databases = itertools.count()


class Site:
    """The app on a real DuckDB, forwarding to a chdb database of its own."""

    def __init__(self, client: TestClient[Any], upstream: Upstream) -> None:
        self.http, self.upstream = client, upstream

    def post(self, events: list[dict[str, Any]], ua: str = PHONE_UA) -> dict[str, Any]:
        response = self.http.post("/track/batch", content=msgspec.json.encode({"events": events}),
                                  headers={**AUTH, "user-agent": ua})
        assert response.status_code == 202, response.text
        body = dict(response.json())
        assert body["accepted"] == len(events), body
        return body

    def visit(self, events: list[dict[str, Any]], ua: str = PHONE_UA) -> None:
        """One visit: its first event starts the live session, the others join it in a second request
        (one request alone spanning a 30-minute bucket edge would be two sessions, docs/contract.md §5.3)."""
        self.post(events[:1], ua)
        if events[1:]:
            self.post(events[1:], ua)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        reader = self.http.app.state.gateway.writer.reader()
        try:
            return reader.execute(sql).fetchall()
        finally:
            reader.close()

    def events(self, columns: str) -> dict[str, tuple[Any, ...]]:
        """name → columns, for the clients' events (not session events)."""
        rows = self.rows(f"SELECT name, {columns} FROM events WHERE name NOT LIKE 'session_%'")
        return {r[0]: r[1:] for r in rows}

    def sync(self) -> None:
        with self.http.portal() as portal:
            result = portal.call(self.http.app.state.gateway.sync.run_once)
        assert result.error is None

    def up(self, sql: str) -> list[tuple[Any, ...]]:
        return self.upstream.query(sql.replace("{db}", self.upstream.database))


@pytest.fixture
def site(tmp_path: Path, chdb_folder: Path) -> Iterator[Site]:
    database = f"parity_{next(_databases)}"
    url = f"chdb://{chdb_folder}"
    upstream = Upstream(url, database)
    upstream.create_tables()
    settings = load_settings(write_config(tmp_path, upstream={"url": url, "database": database},
                                          sync={"interval_seconds": 3600.0}))
    with TestClient(app=create_app(settings)) as client:
        yield Site(client, upstream)


def minutes_ago(minutes: float) -> str:
    return iso(now_utc().replace(microsecond=0) - dt.timedelta(minutes=minutes))


def test_every_event_of_a_session_carries_its_referrer(site: Site) -> None:
    site.visit([track("screen_view", __path="https://shop.example.com/", __referrer="https://www.google.com/",
                     __timestamp=minutes_ago(3)),
               track("screen_view", __path="https://shop.example.com/shoes", __timestamp=minutes_ago(2)),
               # Another referrer later in the visit is replaced by the session's, as in OpenPanel.
               track("share", __path="https://shop.example.com/shoes", __referrer="https://t.co/x",
                     __timestamp=minutes_ago(1))])
    site.post([track("add_to_cart", __path="https://shop.example.com/cart")])  # a later request
    events = site.events("referrer, referrer_name, referrer_type, path")
    google = ("https://www.google.com", "Google", "search")
    assert {name: row[:3] for name, row in events.items()} == {
        "screen_view": google, "share": google, "add_to_cart": google}
    assert site.rows("SELECT count(*) FROM events WHERE referrer_name = 'Google'") == [(5,)]  # with session_start
    assert site.rows("SELECT referrer, referrer_name, referrer_type FROM sessions") == [google]


def test_unknown_referrers_and_sources_are_named_as_openpanel_names_them(site: Site) -> None:
    site.post([track("blog", __path="https://shop.example.com/", __referrer="https://blog.example.org/post/",
                     __deviceId="reader")])
    site.post([track("mail", __path="https://shop.example.com/?utm_source=Newsletter",
                     __referrer="https://www.google.com/", __deviceId="subscriber")])
    site.post([track("campaign", __path="https://shop.example.com/?utm_source=facebook", __deviceId="fan")])
    events = site.events("referrer, referrer_name, referrer_type")
    assert events["blog"] == ("https://blog.example.org/post", "https://blog.example.org/post", "")
    assert events["mail"] == ("https://www.google.com", "newsletter", "search")
    assert events["campaign"] == ("", "Facebook", "social")


def test_event_count_leaves_out_screen_views(site: Site) -> None:
    pages = ["/", "/shoes", "/shoes/red", "/cart", "/checkout"]
    site.visit([track("screen_view", __path=page, __timestamp=minutes_ago(10 - n)) for n, page in enumerate(pages)]
              + [track(name, __path="/checkout", __timestamp=minutes_ago(4 - n))
                 for n, name in enumerate(["add_to_cart", "add_to_cart", "begin_checkout", "purchase"])])
    assert site.rows("SELECT event_count, screen_view_count, is_bounce, entry_path, exit_path FROM sessions") == [
        (4, 5, False, "/", "/checkout")]


def test_server_events_have_no_device_and_only_a_named_profile(site: Site) -> None:
    answer = site.http.post("/track/batch", headers={**AUTH, "user-agent": SERVER_UA}, content=msgspec.json.encode(
        {"events": [track("nightly_export"), {"type": "track", "payload": {"name": "invoice_paid",
                                                                           "profileId": "u-7"}}]}))
    assert answer.status_code == 202
    events = site.events("device_id, profile_id, session_id, device")
    assert events == {"nightly_export": ("", "", "", "server"), "invoice_paid": ("", "u-7", "", "server")}
    assert site.rows("SELECT count(*) FROM profiles") == [(0,)]  # no session, no anonymous profile


def test_a_server_event_rides_the_profiles_live_session_without_extending_it(site: Site) -> None:
    site.visit([track("screen_view", __path="https://shop.example.com/pay", __referrer="https://www.bing.com/",
                     __timestamp=minutes_ago(2)),
               {"type": "track", "payload": {"name": "checkout", "profileId": "u-9",
                                             "properties": {"__timestamp": minutes_ago(1)}}}])
    before = site.rows("SELECT event_count, screen_view_count, ended_at FROM sessions")
    site.post([{"type": "track", "payload": {"name": "invoice_paid", "profileId": "u-9"}}], ua=SERVER_UA)
    events = site.events("device_id, session_id, referrer_name, path, os, device")
    assert events["invoice_paid"] == (*events["checkout"][:2], "Bing", "/pay", "iOS", "mobile")
    assert events["invoice_paid"][0] != ""
    assert site.rows("SELECT event_count, screen_view_count, ended_at FROM sessions") == before


def test_hash_keeps_its_hash_sign(site: Site) -> None:
    site.post([track("screen_view", __path="https://shop.example.com/faq#returns")])
    properties = json.loads(site.rows("SELECT properties FROM events WHERE name = 'screen_view'")[0][0])
    assert properties["__hash"] == "#returns"


def test_anonymous_profiles_and_last_seen_at(site: Site) -> None:
    # A visit buffered offline for two hours: the profile is seen now, when the gateway writes it.
    sent_from = now_utc().timestamp() * 1000
    site.visit([track("screen_view", __path="/", __timestamp=minutes_ago(120)),
               {"type": "identify", "payload": {"profileId": "u-1", "firstName": "Ada",
                                                "properties": {"__timestamp": minutes_ago(119)}}}])
    profiles = site.rows("SELECT id = device_id, is_external, properties, epoch_ms(updated_at), epoch_ms(created_at) "
                         "FROM profiles LEFT JOIN (SELECT DISTINCT device_id FROM events) ON id = device_id "
                         "ORDER BY is_external")
    sent_until = now_utc().timestamp() * 1000
    # The visit came in two requests: the anonymous profile was written by the first, u-1 by the second.
    first_received = site.rows("SELECT min(epoch_ms(received_at)) FROM events")[0][0]
    anonymous, identified = profiles
    assert anonymous[:2] == (True, False)
    assert json.loads(anonymous[2]) == {"path": "/", "os": "iOS", "os_version": "17.5",
                                            "browser": "Mobile Safari", "browser_version": "17.5",
                                            "device": "mobile", "brand": "Apple", "model": "iPhone"}
    assert anonymous[3] == first_received and first_received <= identified[3] <= sent_until
    assert sent_from - 1 <= first_received
    assert identified[1] is True and anonymous[4] < first_received - 100 * 60_000  # first seen: the visit's own time


def test_openpanel_overview_queries_on_forwarded_data(site: Site) -> None:
    """OpenPanel's dashboard numbers for a small day of traffic, computed by its own SQL upstream."""
    shop = "https://shop.example.com"
    # Every visit is live (younger than the 30-minute timeout), so each is one session whatever the
    # time of day; a first event exactly 30 minutes old would be historical and its visit could be
    # split at a bucket edge (docs/contract.md §5.3).
    site.visit([  # visitor A, from Google: 3 pages, a cart, a purchase (150 s)
        track("screen_view", __path=f"{shop}/", __referrer="https://www.google.com/", __timestamp=minutes_ago(26)),
        track("screen_view", __path=f"{shop}/products", __timestamp=minutes_ago(25)),
        track("add_to_cart", __path=f"{shop}/products", __timestamp=minutes_ago(24.5)),
        track("screen_view", __path=f"{shop}/checkout", __timestamp=minutes_ago(24)),
        track("revenue", __revenue=4999, __path=f"{shop}/checkout", __timestamp=minutes_ago(23.5)),
    ])
    site.visit([  # visitor B, from an unknown blog: one page, a bounce
        track("screen_view", __path=f"{shop}/", __referrer="https://news.example.org/story",
              __deviceId="visitor-b", __timestamp=minutes_ago(20)),
    ])
    site.visit([  # visitor C, from a newsletter link: two pages (2 min)
        track("screen_view", __path=f"{shop}/pricing?utm_source=newsletter", __deviceId="visitor-c",
              __timestamp=minutes_ago(15)),
        track("screen_view", __path=f"{shop}/", __deviceId="visitor-c", __timestamp=minutes_ago(13)),
    ])
    site.post([track("invoice_sent")], ua=SERVER_UA)  # a backend job: no visitor, no session
    site.sync()
    between = "created_at BETWEEN toDateTime('2000-01-01 00:00:00') AND now() + INTERVAL 1 DAY"

    # getMetricsFromSessions (the rollup's total row: the same aggregates without GROUP BY date).
    metrics = site.up(f"""
        SELECT round(sum(sign * is_bounce) * 100.0 / sum(sign), 2) as bounce_rate,
               uniqIf(profile_id, sign > 0) AS unique_visitors,
               sum(sign) AS total_sessions,
               round(avgIf(duration, duration > 0 AND sign > 0), 2) / 1000 AS _avg_session_duration,
               if(isNaN(_avg_session_duration), 0, _avg_session_duration) AS avg_session_duration,
               sum(sign * screen_view_count) AS total_screen_views,
               round(sum(sign * screen_view_count) * 1.0 / sum(sign), 2) AS views_per_session
        FROM {{db}}.sessions WHERE {between} AND project_id = 'demo' HAVING sum(sign) > 0""")
    assert metrics == [(33.33, 3, 3, 135.0, 135.0, 6, 2.0)]  # durations 150 s and 120 s (and a bounce)

    # createRevenueQuery.
    assert site.up(f"""SELECT sum(revenue) AS total_revenue FROM {{db}}.events
                       WHERE project_id = 'demo' AND name = 'revenue' AND revenue > 0 AND {between}""") == [(4999,)]

    # getTopPages.
    pages = site.up(f"""
        SELECT origin, path, uniq(session_id) as sessions, count() as pageviews, sum(revenue) as revenue
        FROM {{db}}.events
        WHERE project_id = 'demo' AND name = 'screen_view' AND path != '' AND {between}
        GROUP BY origin, path ORDER BY sessions DESC, path LIMIT 50""")
    assert pages == [(shop, "/", 3, 3, 0), (shop, "/checkout", 1, 1, 0), (shop, "/pricing", 1, 1, 0),
                     (shop, "/products", 1, 1, 0)]

    # getTopEntryExit (mode = entry) and getTopGeneric (column = referrer_name).
    entries = site.up(f"""
        SELECT entry_origin AS origin, entry_path AS path, sum(sign) as sessions,
               sum(sign * screen_view_count) as pageviews, sum(revenue * sign) as revenue
        FROM {{db}}.sessions FINAL WHERE project_id = 'demo' AND {between}
        GROUP BY entry_origin, entry_path HAVING sum(sign) > 0 ORDER BY sessions DESC LIMIT 50""")
    assert entries == [(shop, "/", 2, 4, 4999), (shop, "/pricing", 1, 2, 0)]
    referrers = site.up(f"""
        SELECT nullIf(referrer_name, '') as name, sum(sign) as sessions, sum(sign * screen_view_count) as pageviews,
               sum(revenue * sign) as revenue
        FROM {{db}}.sessions FINAL WHERE project_id = 'demo' AND {between}
        GROUP BY referrer_name HAVING sum(sign) > 0 ORDER BY sessions DESC, name LIMIT 50""")
    assert referrers == [("Google", 1, 3, 4999), ("https://news.example.org/story", 1, 1, 0), ("newsletter", 1, 2, 0)]
