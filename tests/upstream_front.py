"""A test-only ClickHouse HTTP front over chdb, which can be told to fail like a real server.

    python tests/upstream_front.py --path DIR      # prints "front listening on http://127.0.0.1:PORT"

It speaks enough of ClickHouse's HTTP interface for clickhouse-connect: queries (SQL in the body
or `query`, `param_*` bindings, `default_format`), and inserts (`INSERT ... FORMAT Native`, or
`INSERT ... SELECT ... FROM input('structure') FORMAT Arrow`, with the block in the body,
gzip/deflate/lz4/zstd encoded or not, settings such as the `insert_deduplication_token` as URL
parameters). It records every request it receives and runs
in its own process (chdb is one engine per process). `POST /__fault?mode=...` sets how it fails:

- `ok`: answer normally;
- `refuse`: close every connection without answering (as a dead or restarting server);
- `error500`: answer `500` with a ClickHouse server error (a non-data one, so retryable);
- `hang`: accept the request and never answer until the mode changes;
- `drop_after_commit`: run the insert, then close the connection without answering.
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import gzip
import json
import os
import re
import tempfile
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from chdb import session as chdb_session

_INSERT = re.compile(r"(?is)^\s*INSERT\s+INTO\s+(?P<target>.+?)\s+FORMAT\s+(?P<format>\w+)\s*$")
# `INSERT INTO t (...) SELECT ... FROM input('structure') FORMAT f`: the body read as `structure`.
_INSERT_SELECT = re.compile(r"(?is)^\s*INSERT\s+INTO\s+(?P<target>.+?)\s+(?P<select>SELECT\s.+?)\s+"
                            r"FROM\s+input\((?P<structure>'(?:[^'\\]|\\.)*')\)\s+FORMAT\s+(?P<format>\w+)\s*$")
# URL parameters that are part of the HTTP protocol, not ClickHouse settings.
_PROTOCOL = {"query", "database", "default_format", "query_id", "session_id", "session_timeout",
             "compress", "decompress", "enable_http_compression", "wait_end_of_query", "user", "password",
             "client_protocol_version", "session_check", "quota_key", "send_progress_in_http_headers",
             "http_headers_progress_interval_ms", "output_format_arrow_string_as_string"}


class Front:
    def __init__(self, path: str) -> None:
        self.session = chdb_session.Session(path)
        self.lock = threading.Lock()  # chdb sessions are not for concurrent use
        self.mode = "ok"
        self.inserts: list[dict[str, Any]] = []


def _decode(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "lz4":
        import lz4.frame

        return bytes(lz4.frame.decompress(body))
    if encoding == "zstd":
        import zstandard

        return bytes(zstandard.ZstdDecompressor().decompress(body, max_output_size=1 << 30))
    return body


def _form_fields(body: bytes, content_type: str) -> dict[str, str]:
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(body.decode(), keep_blank_values=True))
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = part.get_payload(decode=True).decode()
    return fields


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def make_handler(front: Front) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            self._handle(b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                body = self._read_chunked()
            else:
                body = self.rfile.read(length) if length else b""
            self._handle(body)

        def _read_chunked(self) -> bytes:
            data = bytearray()
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()

        def _handle(self, body: bytes) -> None:
            url = urlsplit(self.path)
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            if url.path == "/__fault":
                front.mode = params.get("mode", "ok")
                return self._reply(200, b"ok\n", {})
            if url.path == "/__inserts":
                return self._reply(200, json.dumps(front.inserts).encode(), {})
            if url.path == "/ping":
                return self._reply(200, b"Ok.\n", {})
            mode = front.mode
            if mode == "refuse":
                self.close_connection = True
                return
            if mode == "hang":
                while front.mode == "hang":
                    time.sleep(0.05)
                self.close_connection = True
                return
            if mode == "error500":
                return self._error(500, 999, "Code: 999. DB::Exception: Keeper is unavailable (injected)")
            body = _decode(body, self.headers.get("content-encoding", ""))
            content_type = self.headers.get("content-type", "")
            if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
                # Long parameter values travel as a form in the body instead of the URL.
                params.update(_form_fields(body, content_type))
                body = b""
            query = params.get("query", "")
            if not query and body[:11].upper() == b"INSERT INTO":
                # clickhouse-connect sends the statement as the body's first line, then the data.
                statement, _, body = body.partition(b"\n")
                query = statement.decode()
            try:
                if _INSERT.match(query) or _INSERT_SELECT.match(query):
                    self._insert(query, body, params)
                    if mode == "drop_after_commit":
                        self.close_connection = True
                        return None
                    return self._reply(200, b"", {"X-ClickHouse-Summary": '{"written_rows":"0"}'})
                sql = (query + "\n" + body.decode()) if query and body else (query or body.decode())
                fmt = params.get("default_format", "TabSeparated")
                bindings = {k.removeprefix("param_"): v for k, v in params.items() if k.startswith("param_")}
                with front.lock:
                    result = front.session.query(sql, fmt, params=bindings) if bindings else front.session.query(
                        sql, fmt)
                return self._reply(200, result.bytes() or b"", {"X-ClickHouse-Format": fmt})
            except Exception as exc:
                text = str(exc)
                code = re.search(r"Code: (\d+)", text)
                return self._error(500 if not code else 400, int(code.group(1)) if code else 1000, text)

        def _insert(self, query: str, body: bytes, params: dict[str, str]) -> None:
            settings = {k: v for k, v in params.items() if k not in _PROTOCOL and not k.startswith("param_")}
            clause = ", ".join(f"{k} = {_literal(v) if not v.isdigit() else v}" for k, v in settings.items())
            with tempfile.NamedTemporaryFile(suffix=".block", delete=False) as block:
                block.write(body)
            try:
                select = _INSERT_SELECT.match(query)
                if select is not None:
                    # chdb has no request body for `input()`: the same block from a file.
                    target = select["target"]
                    sql = (f"INSERT INTO {target}{' SETTINGS ' + clause if clause else ''} {select['select']} "
                           f"FROM file({_literal(block.name)}, {select['format']}, {select['structure']})")
                else:
                    match = _INSERT.match(query)
                    assert match is not None
                    target = match["target"]
                    sql = (f"INSERT INTO {target} FROM INFILE {_literal(block.name)}"
                           f"{' SETTINGS ' + clause if clause else ''} FORMAT {match['format']}")
                with front.lock:
                    front.session.query(sql, "TabSeparated")
                front.inserts.append({"target": target, "token": settings.get("insert_deduplication_token")})
            finally:
                os.unlink(block.name)

        def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-ClickHouse-Timezone", "UTC")
            self.send_header("X-ClickHouse-Server-Display-Name", "upstream-front")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, code: int, message: str) -> None:
            self._reply(status, message.encode(), {"X-ClickHouse-Exception-Code": str(code)})

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", required=True)
    args = parser.parse_args()
    front = Front(args.path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(front))
    server.daemon_threads = True
    print(f"front listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
