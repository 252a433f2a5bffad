"""Hostile requests for fuzzing, and the invariants every answer must keep.

One generator serves both drivers: the hypothesis suite (`tests/fuzz`, driven by
`st.randoms()`, plus strategy-built JSON values) and the long run (`bench/fuzz.py`, a seeded
`random.Random`). `Ledger` checks each answer as it arrives (no 5xx, outcomes add up, good rows
accepted) and, at the end, the stored events (every accepted row once, nothing of a refused one).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import random
import socket
import string
import zlib
from dataclasses import dataclass, field
from typing import Any

CLIENT_ID = "5f0c4d1e-8a3b-4c2d-9e7f-1a2b3c4d5e6f"
CLIENT_SECRET = "demo-secret"
AUTH = {"openpanel-client-id": CLIENT_ID, "openpanel-client-secret": CLIENT_SECRET}
PHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"

_ODD_TEXT = ["²", "①", "١٢٣", "\u202e", "\x00", "\ufeff", "🙂", "e\u0301", "\U0010ffff", "\U0001d7d8\U0001d7d9", "½", "-0", "1e309",
             "NaN", "Infinity", "2026-13-45T25:61:61Z", "0001-01-01T00:00:00+01:00", "9" * 400]
_ODD_NUMBERS: list[Any] = [0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 1e308, -1e308, 5e-324, 0.1, 1.5, 10**18]


@dataclass
class Case:
    """One request and what its answer must show."""

    kind: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""
    rows: int = 0  # items in a batch whose envelope is valid by construction (0: unknown)
    good: dict[int, str] = field(default_factory=dict)  # index → insert id of rows that must be accepted
    tracked: dict[int, str] = field(default_factory=dict)  # index → insert id of every row carrying one


class Generator:
    """Hostile (and some ordinary) requests from a `random.Random`-like source."""

    def __init__(self, rng: random.Random, prefix: str) -> None:
        self.rng = rng
        self.prefix = prefix
        self.counter = 0

    def insert_id(self) -> str:
        self.counter += 1
        return f"{self.prefix}-{self.counter}"

    # ---- values -------------------------------------------------------------------------------

    def text(self, longest: int = 40) -> str:
        rng = self.rng
        choice = rng.random()
        if choice < 0.3:
            return rng.choice(_ODD_TEXT)
        if choice < 0.6:
            return "".join(rng.choice(string.printable) for _ in range(rng.randint(0, longest)))
        return "".join(chr(rng.choice([rng.randint(32, 0x7FF), rng.randint(0xE000, 0xFFFD),
                                       rng.randint(0x10000, 0x10FFFF)])) for _ in range(rng.randint(0, longest)))

    def value(self, depth: int = 0) -> Any:
        rng = self.rng
        kind = rng.randint(0, 9 if depth < 4 else 6)
        if kind == 0:
            return None
        if kind == 1:
            return rng.choice([True, False])
        if kind in (2, 3):
            return rng.choice(_ODD_NUMBERS)
        if kind in (4, 5, 6):
            return self.text()
        if kind in (7, 8):
            return {self.text(12): self.value(depth + 1) for _ in range(rng.randint(0, 4))}
        return [self.value(depth + 1) for _ in range(rng.randint(0, 4))]

    # ---- rows (JSON text of one item, whether it must be accepted, its insert id) ---------------

    def good_row(self) -> tuple[str, bool, str | None]:
        insert_id = self.insert_id()
        properties = {"__insertId": insert_id, "screen": self.rng.choice(["home", "cart", "pay"]),
                      "n": self.rng.randint(0, 1000)}
        return json.dumps({"type": "track", "payload": {"name": "fuzz_good", "properties": properties}}), True, insert_id

    def hostile_row(self) -> tuple[str, bool, str | None]:
        rng = self.rng
        insert_id = self.insert_id()
        kind = rng.randint(0, 13)
        props: dict[str, Any] = {"__insertId": insert_id}
        payload: dict[str, Any] = {"name": "fuzz_odd"}
        if kind == 0:
            props["__timestamp"] = rng.choice([*_ODD_TEXT, *_ODD_NUMBERS, "1" * rng.randint(14, 6000)])
        elif kind == 1:  # lone surrogate: written as an escape, since Python's json cannot hold one raw
            half = rng.choice(["d800", "dbff", "dc00", "dfff", "DABC"])
            text = '{"type":"track","payload":{"name":"fuzz_odd","properties":{"__insertId":"ID","x":"\\uHALF"}}}'
            return text.replace("ID", insert_id).replace("HALF", half), False, insert_id
        elif kind == 2:
            props["big"] = [0] * rng.randint(1001, 20_000)
        elif kind == 3:
            props.update({f"k{n}": n for n in range(rng.randint(1001, 3000))})
        elif kind == 4:
            props["long"] = "x" * rng.randint(16_385, 70_000)
        elif kind == 5:
            nested: Any = 1
            for _ in range(rng.randint(9, 200)):
                nested = {"d": nested}
            props["deep"] = nested
        elif kind == 6:
            payload["name"] = self.value()
        elif kind == 7:
            props[self.text()] = self.value()
            props["__ip"] = rng.choice(["1.2.3", "::ffff:1.2.3.4", "999.1.1.1", self.text(10)])
        elif kind == 8:
            payload["profileId"] = self.value()
            payload["groups"] = self.value()
        elif kind == 9:
            props["__revenue"] = self.value()
            payload["name"] = rng.choice(["revenue", "fuzz_odd"])
        elif kind == 10:
            return json.dumps({"type": rng.choice(["replay", "identify", "increment", "group", "alias", "zzz"]),
                               "payload": {self.text(8): self.value() for _ in range(rng.randint(0, 5))}}), False, None
        elif kind == 11:
            return json.dumps(self.value()), False, None
        elif kind == 12:
            props["wide"] = {"n" * 2000: {"m" * 2000: list(range(rng.randint(10, 40)))}}
        else:
            props.update({self.text(16): self.value() for _ in range(rng.randint(1, 8))})
        payload["properties"] = props
        return json.dumps({"type": "track", "payload": payload}), False, insert_id

    # ---- requests -----------------------------------------------------------------------------

    def case(self) -> Case:
        rng = self.rng
        roll = rng.random()
        if roll < 0.55:
            return self.mixed_batch()
        if roll < 0.62:
            return self.single_event()
        if roll < 0.70:
            return self.broken_envelope()
        if roll < 0.78:
            return self.encoded_body()
        if roll < 0.84:
            return self.bad_auth()
        if roll < 0.90:
            return self.admin_query()
        if roll < 0.99:
            return self.raw_bytes_in_a_row()
        return self.large_batch()

    def _batch(self, rows: list[tuple[str, bool, str | None]], kind: str) -> Case:
        body = ('{"events":[' + ",".join(text for text, _, _ in rows) + "]}").encode()
        case = Case(kind, "POST", "/track/batch", {**AUTH, "user-agent": PHONE_UA}, body, rows=len(rows))
        for index, (_, good, insert_id) in enumerate(rows):
            if insert_id is not None:
                case.tracked[index] = insert_id
                if good:
                    case.good[index] = insert_id
        return case

    def mixed_batch(self) -> Case:
        rows = [self.good_row() if self.rng.random() < 0.6 else self.hostile_row() for _ in range(self.rng.randint(1, 12))]
        return self._batch(rows, "mixed batch")

    def large_batch(self) -> Case:
        rows = [self.good_row() if self.rng.random() < 0.9 else self.hostile_row()
                for _ in range(self.rng.randint(200, 2000))]
        return self._batch(rows, "large batch")

    def single_event(self) -> Case:
        text, good, insert_id = self.good_row() if self.rng.random() < 0.4 else self.hostile_row()
        case = Case("single event", "POST", "/track", {**AUTH, "user-agent": PHONE_UA}, text.encode())
        if insert_id is not None:
            case.tracked[0] = insert_id
            if good:
                case.good[0] = insert_id
        return case

    def broken_envelope(self) -> Case:
        rng = self.rng
        good = json.dumps({"type": "track", "payload": {"name": "fuzz_env", "properties": {"__insertId": self.insert_id()}}})
        body = rng.choice([
            b"", b"null", b"[]", b"{}", b'{"events":null}', b'{"events":[]}', b'{"events":{}}',
            b'{"events":[' + good.encode() + b",NaN]}", b'{"events":[' + good.encode(),
            b'{"events":[' + b"1," * rng.randint(3000, 400_000) + b"1]}",
            b'{"events":[' + b"[" * rng.randint(100, 5000) + b"]}",
            b'{"events":[' + ",".join([good] * 2001).encode() + b"]}",
            bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 2000))),
        ])
        return Case("broken envelope", "POST", rng.choice(["/track/batch", "/track"]), dict(AUTH), body)

    def encoded_body(self) -> Case:
        rng = self.rng
        text, _, _ = self.good_row()
        plain = ('{"events":[' + text + "]}").encode()
        choice = rng.randint(0, 6)
        headers = dict(AUTH)
        if choice == 0:  # a gzip bomb: far past the inflated cap
            body, headers["content-encoding"] = gzip.compress(b"{" + b" " * (12 * 1024 * 1024)), "gzip"
        elif choice == 1:
            body, headers["content-encoding"] = gzip.compress(plain)[: rng.randint(1, 30)], "gzip"
        elif choice == 2:
            body, headers["content-encoding"] = zlib.compress(plain), rng.choice(["deflate", "br", "zstd", "gzip, gzip"])
        elif choice == 3:
            body, headers["content-encoding"] = bytes(rng.getrandbits(8) for _ in range(200)), "gzip"
        elif choice == 4:  # many tiny items, compressed well
            item = b'{"type":"track","payload":{"name":"boom","properties":{"a":[' + b"0," * rng.randint(10_000, 500_000)
            body, headers["content-encoding"] = gzip.compress(b'{"events":[' + item + b"0]}}}]}"), "gzip"
        elif choice == 5:
            body, headers["content-length"] = plain, rng.choice(["²", "-1", "1" * 40, "abc"])
        else:
            body, headers["content-encoding"] = gzip.compress(plain), "x-gzip"
        return Case("encoded body", "POST", "/track/batch", headers, body)

    def bad_auth(self) -> Case:
        rng = self.rng
        headers = rng.choice([{}, {"openpanel-client-id": CLIENT_ID}, {**AUTH, "openpanel-client-secret": "nope"},
                              {"openpanel-client-id": "²", "openpanel-client-secret": "x"},
                              {"openpanel-client-id": CLIENT_ID.upper(), "openpanel-client-secret": CLIENT_SECRET}])
        text, _, _ = self.good_row()
        return Case("bad auth", "POST", rng.choice(["/track", "/track/batch"]), headers,
                    ('{"events":[' + text + "]}").encode())

    def admin_query(self) -> Case:
        value = self.rng.choice(["²", "①", "-1", "0", "1" * 5000, "%00", "1e3", "", "x", "%F0%9F%99%82"])
        return Case("admin query", "POST", f"/admin/sync?max_batches={value}", {})

    def raw_bytes_in_a_row(self) -> Case:
        rng = self.rng
        good, _, good_id = self.good_row()
        junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 16)))
        bad = b'{"type":"track","payload":{"name":"fuzz_odd","properties":{"x":"' + junk.replace(b'"', b"").replace(
            b"\\", b"") + b'"}}}'
        body = b'{"events":[' + good.encode() + b"," + bad + b"]}"
        case = Case("invalid UTF-8 in a row", "POST", "/track/batch", dict(AUTH), body, rows=2)
        case.tracked[0] = good_id or ""
        return case


@dataclass
class Ledger:
    """What the answers said, and the invariant violations seen so far."""

    accepted: dict[str, int] = field(default_factory=dict)  # insert id → times acknowledged as accepted
    refused: set[str] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)

    def check(self, case: Case, status: int, body: bytes) -> None:
        """Invariants of one answer; records which insert ids were accepted or refused."""
        if status >= 500:
            self.violations.append(f"{case.kind}: {status} {body[:200]!r}")
            return
        if status not in (200, 202):
            self.refused.update(case.tracked.values())
            if case.rows and case.good and status == 400 and case.kind.endswith("batch"):
                self.violations.append(f"{case.kind}: a valid envelope answered 400: {body[:200]!r}")
            return
        if case.path == "/track":
            if b'"bot"' not in body:
                for insert_id in case.tracked.values():
                    self.accepted[insert_id] = self.accepted.get(insert_id, 0) + 1
            return
        if case.path != "/track/batch":
            return
        answer = json.loads(body)
        rejected = {row["index"]: row for row in answer["rejected"]}
        count = answer["accepted"] + answer["duplicates"] + len(answer["rejected"])
        if case.rows and count != case.rows:
            self.violations.append(f"{case.kind}: outcomes {count} != {case.rows} items")
        if answer["duplicates"]:
            self.violations.append(f"{case.kind}: {answer['duplicates']} duplicates of never-sent ids")
        for index in case.good:
            if index in rejected:
                self.violations.append(f"{case.kind}: good row {index} rejected: {rejected[index]}")
        for index, insert_id in case.tracked.items():
            if index in rejected:
                self.refused.add(insert_id)
            elif case.rows:
                self.accepted[insert_id] = self.accepted.get(insert_id, 0) + 1

    def check_stored(self, stored: dict[str, int]) -> None:
        """Every accepted row stored exactly once; nothing of a refused row stored."""
        for insert_id, times in self.accepted.items():
            if times != 1 or stored.get(insert_id) != 1:
                self.violations.append(f"accepted {insert_id!r} answered {times}x, stored {stored.get(insert_id, 0)}x")
        for insert_id in self.refused:
            if insert_id in stored:
                self.violations.append(f"refused {insert_id!r} is stored")


STORED_IDS_SQL = """SELECT json_extract_string(properties, '$.__insertId') AS insert_id, count(*) FROM events
                    WHERE name NOT IN ('session_start', 'session_end') AND insert_id IS NOT NULL GROUP BY 1"""


def exchange(host: str, port: int, case: Case, timeout: float = 60.0) -> tuple[int, bytes]:
    """Send `case` over a fresh connection exactly as built (odd header bytes included: HTTP
    client libraries refuse to send them) and return the status and body of the answer."""
    headers = {"host": f"{host}:{port}", "connection": "close", **{k.lower(): v for k, v in case.headers.items()}}
    headers.setdefault("content-length", str(len(case.body)))
    head = f"{case.method} {case.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection((host, port), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            # Refused early (413 before the whole body): the answer is still readable.
            sock.sendall(head.encode() + case.body)
        answer = bytearray()
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            answer += chunk
    status_line, _, rest = bytes(answer).partition(b"\r\n")
    parts = status_line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        raise ConnectionError(f"no HTTP answer: {bytes(answer[:200])!r}")
    head_part, _, body = rest.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head_part.lower():
        body = _unchunk(body)
    return int(parts[1]), body


def _unchunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)
