"""Property-based fuzzing of the HTTP API against the real server (hypothesis).

Every example is a request from `tests.hostile` (mixed batches of good and hostile rows, broken
envelopes, odd encodings, bad credentials, odd admin queries) or a batch whose properties are
JSON values built by hypothesis. Invariants, per answer: never a 5xx; a batch's outcomes add up
to its items; every good row of a mixed batch is accepted. At the end: every accepted row is
stored exactly once, nothing of a refused row is stored, the server is still ready, and its peak
RSS stayed bounded. `bench/fuzz.py` runs the same generator for 100,000 requests.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import GatewayServer
from tests.helpers import query, write_config
from tests.hostile import AUTH, PHONE_UA, STORED_IDS_SQL, Case, Generator, Ledger, exchange

# Bounded for CI; the long run is bench/fuzz.py.
EXAMPLES = 200
_PEAK_RSS_LIMIT = 400 * 1024 * 1024


class _Run:
    def __init__(self, server: GatewayServer) -> None:
        self.server = server
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        self.address = (host, int(port))
        self.ledger = Ledger()
        self.sent = 0

    def send(self, case: Case) -> None:
        status, body = exchange(*self.address, case)
        self.sent += 1
        self.ledger.check(case, status, body)
        assert not self.ledger.violations, self.ledger.violations


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Run]:
    folder = tmp_path_factory.mktemp("fuzz")
    write_config(folder)
    server = GatewayServer(folder).start()
    fuzz = _Run(server)
    yield fuzz
    if server.process is not None:
        server.kill()


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=20), children, max_size=6),
    max_leaves=40,
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False))
def test_generated_hostile_requests(run: _Run, rng: random.Random) -> None:
    generator = Generator(rng, prefix=f"h{run.sent}")
    run.send(generator.case())


@settings(max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.dictionaries(st.text(max_size=30), _json_values, max_size=8), min_size=1, max_size=8),
       name=st.one_of(st.text(max_size=90), st.integers(), st.none()))
def test_strategy_built_properties(run: _Run, values: list[dict[str, Any]], name: Any) -> None:
    rows = []
    case = Case("strategy batch", "POST", "/track/batch", {**AUTH, "user-agent": PHONE_UA}, rows=2 * len(values))
    for index, properties in enumerate(values):
        insert_id = f"s{run.sent}-{index}"
        odd = {**properties, "__insertId": insert_id}
        good_id = f"s{run.sent}-{index}-good"
        rows.append({"type": "track", "payload": {"name": name, "properties": odd}})
        rows.append({"type": "track", "payload": {"name": "fuzz_good", "properties": {"__insertId": good_id}}})
        case.tracked[2 * index] = insert_id
        case.tracked[2 * index + 1] = good_id
        case.good[2 * index + 1] = good_id
    case.body = json.dumps({"events": rows}).encode()
    run.send(case)


def test_afterwards_ready_bounded_and_stored_exactly_as_answered(run: _Run) -> None:
    assert run.sent >= EXAMPLES  # the examples above ran against this server
    assert httpx.get(f"{run.server.url}/readyz", timeout=10).status_code == 200
    assert run.server.peak_rss_bytes() < _PEAK_RSS_LIMIT
    assert run.server.stop() == 0
    stored = dict(query(Path(run.server.database), STORED_IDS_SQL))
    run.ledger.check_stored(stored)
    assert not run.ledger.violations, run.ledger.violations[:20]
    assert any(count for count in stored.values())
