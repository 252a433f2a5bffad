"""Command line: `edge-gateway serve|check|status|sync|upstream-init|backup --config PATH`
(also `python -m appliance …`).

`serve` checks files and folders first (`appliance.preflight`), binds the socket itself (so
`port = 0` works) and runs the app on uvicorn (`appliance.server.ManagedServer`: readiness,
systemd notifications and watchdog, SIGHUP). Every configuration or
environment mistake is one line naming it on stderr and exit 2. "gateway listening on URL" is
printed only once the store is open and requests are answered; SIGTERM/SIGINT stop gracefully
(exit 0); SIGHUP re-reads `[logging]` from the config file.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import gc
import logging
import resource
import signal
import socket
import sys

import msgspec
import pyarrow as pa
import uvicorn

from appliance import __version__
from appliance.app import create_app
from appliance.cli import admin_url_file
from appliance.connections import guarded_protocol
from appliance.logs import configure_logging
from appliance.preflight import local_findings
from appliance.server import ManagedServer
from appliance.settings import Settings, SettingsError, load_settings

_COMMANDS = (
    ("serve", "run the gateway"),
    ("check", "check the configuration, files, folders and permissions (--upstream: and the upstream)"),
    ("upstream-init", "create the upstream ClickHouse tables when missing and check their columns"),
    ("sync", "forward everything stored to the upstream now, with progress"),
    ("status", "health, backlog per table, last sync (exit 0 healthy, 1 degraded, 2 down)"),
    ("backup", "write a consistent copy of the store to a new DuckDB file, while the gateway runs"),
)


log = logging.getLogger("appliance")

# File descriptors the process needs besides client connections: DuckDB, diskcache, the geo
# database, upstream connections, worker threads' files.
_FD_HEADROOM = 256


class StartupError(Exception):
    """A configuration or environment mistake found while starting; the message names it."""


def _bind(settings: Settings) -> socket.socket:
    """The listening socket, or a StartupError naming the address and the reason."""
    host, port = settings.server.host, settings.server.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        raise StartupError(f"server.host/server.port: cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock


def _fit_connection_cap(settings: Settings) -> Settings:
    """Raise the open-file limit as far as allowed; lower `max_connections` to what it permits.

    Running out of descriptors makes accept() fail for everyone, silently; a cap below the limit
    refuses the excess with a 503 and a log line instead (appliance.connections).
    """
    wanted = settings.server.max_connections + _FD_HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
        soft = new_soft
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return settings
    cap = max(1, soft - _FD_HEADROOM)
    log.warning("open-file limit is %d: server.max_connections lowered from %d to %d (raise LimitNOFILE)",
                soft, settings.server.max_connections, cap)
    server = msgspec.structs.replace(
        settings.server, max_connections=cap,
        max_connections_per_client=min(cap, settings.server.max_connections_per_client),
    )
    return msgspec.structs.replace(settings, server=server)


def serve(settings: Settings, config_path: str) -> int:
    """Run the gateway until SIGTERM/SIGINT; returns the exit code."""
    problems = [finding.text for finding in local_findings(settings) if not finding.ok]
    if problems:
        raise StartupError(problems[0])
    # Until the server installs its own handler, a SIGHUP must not end the process.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    settings = _fit_connection_cap(settings)
    sock = _bind(settings)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        lifespan="on",
        access_log=False,
        log_level="info",
        timeout_graceful_shutdown=int(settings.server.graceful_shutdown_seconds),
        server_header=False,
        # uvicorn would rewrite the peer address from X-Forwarded-For for 127.0.0.1 on its own;
        # forwarding headers are judged by `server.trusted_proxies` alone (appliance.enrich.client_ip).
        proxy_headers=False,
        http=guarded_protocol(settings.server),
        timeout_keep_alive=settings.server.keep_alive_timeout_seconds,  # type: ignore[arg-type]
    )
    configure_logging(settings.logging)  # uvicorn.Config installed its own handlers: ours again
    server = ManagedServer(config, app, settings, config_path, admin_url_file(settings))
    # uvicorn handles SIGTERM/SIGINT itself, then re-raises the signal through the handler that
    # was installed before it. A no-op handler there makes a graceful stop exit 0 instead of
    # dying by the signal (systemd would log that as a failure).
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: None)
    # The event loop shares the GIL with the writer and the worker thread, which hold it for long
    # stretches of Python; at the default 5 ms a waiting loop gets it back late on every wake-up,
    # and refusing a request with 503 took up to 0.5-0.8 s under load (50 clients, p99). At 1 ms:
    # about 0.2 s, for the same throughput.
    sys.setswitchinterval(0.001)
    use_system_allocator_for_arrow()
    fix_malloc_mmap_threshold()
    tune_garbage_collection()
    server.run(sockets=[sock])
    if server.startup_error is not None:
        raise StartupError(server.startup_error)
    # uvicorn returns normally after a graceful stop; a failed startup leaves `started` False.
    return 0 if server.started else 1


def use_system_allocator_for_arrow() -> None:
    """Arrow's buffers (each commit's batch tables, sync's blocks) come from the C library's
    malloc instead of Arrow's bundled mimalloc, which keeps freed pages of every thread that
    allocated: the peak RSS of 600k events that each start a session drops by ~27 MB (393/400
    to 367/373 MiB, `bench/ingest.py --mix sparse --max-requests 300`), same throughput."""
    pa.set_memory_pool(pa.system_memory_pool())


# glibc's `mallopt` parameter (malloc.h) and the size from which every allocation gets a mapping
# of its own, given back to the system when it is freed.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 256 * 1024


def fix_malloc_mmap_threshold() -> None:
    """Large buffers go back to the system when freed, instead of staying in the heap as holes.

    glibc maps an allocation above its mmap threshold on its own and unmaps it on free; but the
    threshold starts at 128 KiB and rises to the size of every mapped block freed (up to 32 MiB),
    so after the first large request the big buffers of every request and commit (bodies, Arrow
    columns, decoded lists) came from the heap, and the free space between them stayed resident:
    76-106 MB free inside malloc at peak when every event starts a session. Setting the threshold
    turns the rise off. `bench/ingest.py --mix sparse`: peak RSS 402/410 → 386/384 MiB at 1.2M
    events, 467 → 450 MiB at 3M; CPU per event within the noise (190/191 → 192/197 µs at 1.2M,
    209 → 205 at 3M). A no-op where the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


# Net new container objects between two youngest-generation collections (Python's default: 700),
# and how many of those collections make one of the next generation (10, 10).
GC_THRESHOLDS = (50_000, 20, 100)


def tune_garbage_collection() -> None:
    """Collect reference cycles far less often, and never walk what the imports made.

    A 2000-event request makes tens of thousands of short-lived objects (decoded rows, their
    property dicts, the rows to store) that die without forming cycles; at Python's default
    thresholds the collector ran ~150 times a second under load, and every full collection
    walked every live object holding the GIL: 3.7 s of 37 s of server CPU (10%), full
    collections ~55 ms each (`bench/ingest.py`, app mix, 30 s). With these thresholds it ran a
    few times in 30 s. Cyclic garbage still goes, only in larger steps (at most ~50,000 objects
    wait for it). `gc.freeze()` moves what exists now (modules, classes, parsers) out of every
    collection's way for good."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-gateway", description="Edge analytics gateway")
    parser.add_argument("--version", action="version", version=f"edge-gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in _COMMANDS:
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("--config", default="config.toml", help="path of config.toml (default: ./config.toml)")
        if name == "check":
            command.add_argument("--upstream", action="store_true", help="also connect to the upstream")
        if name == "status":
            command.add_argument("--json", action="store_true", help="print the status as JSON")
        if name == "backup":
            command.add_argument("destination", help="path of the new DuckDB file (must not exist)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.logging)
    if args.command == "check":
        from appliance.cli import check

        return check(settings, args.config, upstream=args.upstream)
    if args.command == "serve":
        try:
            return serve(settings, args.config)
        except StartupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    from appliance import cli

    if args.command == "status":
        return cli.status(settings, as_json=args.json)
    if args.command == "backup":
        return cli.backup(settings, args.destination)
    operator_commands = {"upstream-init": cli.upstream_init, "sync": cli.sync}
    return operator_commands[args.command](settings)


def entry_point() -> None:
    """The `edge-gateway` console script."""
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
