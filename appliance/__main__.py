"""Command line: `python -m appliance serve|check --config PATH`.

`serve` runs the app on uvicorn. It binds the socket itself, so `port = 0` works (tests use it)
and the chosen address is printed before the first request is accepted. SIGTERM and SIGINT are
uvicorn's: stop accepting, let in-flight requests finish (up to
`server.graceful_shutdown_seconds`), run the lifespan's shutdown, exit 0.
"""

from __future__ import annotations

import argparse
import logging
import resource
import signal
import socket
import sys

import msgspec
import uvicorn

from appliance.app import create_app
from appliance.cli import admin_url_file
from appliance.connections import guarded_protocol
from appliance.settings import Settings, SettingsError, load_settings

log = logging.getLogger("appliance")

# File descriptors the process needs besides client connections: DuckDB, diskcache, the geo
# database, upstream connections, worker threads' files.
_FD_HEADROOM = 256


def _bind(settings: Settings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.server.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.server.host, settings.server.port))
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


def serve(settings: Settings) -> int:
    """Run the gateway until SIGTERM/SIGINT; returns the exit code."""
    settings = _fit_connection_cap(settings)
    sock = _bind(settings)
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        create_app(settings),
        lifespan="on",
        access_log=False,
        log_level="info",
        timeout_graceful_shutdown=int(settings.server.graceful_shutdown_seconds),
        server_header=False,
        http=guarded_protocol(settings.server),
        timeout_keep_alive=settings.server.keep_alive_timeout_seconds,  # type: ignore[arg-type]
        # uvicorn would rewrite the peer address from X-Forwarded-For for 127.0.0.1 on its own;
        # forwarding headers are judged by `server.trusted_proxies` alone (appliance.enrich.client_ip).
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    # uvicorn handles SIGTERM/SIGINT itself, then re-raises the signal through the handler that
    # was installed before it. A no-op handler there makes a graceful stop exit 0 instead of
    # dying by the signal (systemd would log that as a failure).
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: None)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    print(f"gateway listening on {url}", flush=True)
    # Where operator commands find this gateway (the config may say port 0).
    address_file = admin_url_file(settings)
    try:
        address_file.parent.mkdir(parents=True, exist_ok=True)
        address_file.write_text(url + "\n")
    except OSError as exc:  # a full disk must not stop the gateway from starting (it answers 503)
        log.warning("cannot write %s (%s); operator commands need the address given", address_file, exc)
    try:
        server.run(sockets=[sock])
    finally:
        address_file.unlink(missing_ok=True)
    # uvicorn returns normally after a graceful stop; a failed startup leaves `started` False.
    return 0 if server.started else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance", description="Edge analytics gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("serve", "run the gateway"),
        ("check", "validate the configuration and exit"),
        ("upstream-init", "create the upstream ClickHouse tables when missing and check their columns"),
        ("sync", "forward everything stored to the upstream now, with progress"),
        ("status", "backlog per table, last sync, open sessions"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--config", default="config.toml", help="path of config.toml (default: ./config.toml)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check":
        print(f"configuration {args.config} is valid: {len(settings.projects)} project(s)")
        return 0
    if args.command == "serve":
        return serve(settings)
    from appliance import cli

    operator_commands = {"upstream-init": cli.upstream_init, "sync": cli.sync, "status": cli.status}
    return operator_commands[args.command](settings)


if __name__ == "__main__":
    sys.exit(main())
