"""Typed settings, loaded once from `config.toml` (docs/contract.md §2).

Input: the path of a TOML file. Output: a frozen `Settings` tree that every other part of the
gateway receives explicitly (`create_app(settings)`); nothing reads files or the environment at
import time. Unknown keys are refused with the key's path named, so a typo never silently falls
back to a default. Relative paths (including `chdb://` upstreams) are resolved against the config file's folder;
a project secret or the upstream URL written as `env:NAME` is read from environment variable NAME.
"""

from __future__ import annotations

import ipaddress
import os
import re
import uuid
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from appliance.origins import InvalidOrigin, OriginPolicy

_UUID_LOWER = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class SettingsError(Exception):
    """The configuration cannot be used; the message says which key and why."""


class _Section(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class GatewaySettings(_Section, frozen=True):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "site-01"


class ServerSettings(_Section, frozen=True):
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8080
    trusted_proxies: list[str] = []
    admin_networks: list[str] = msgspec.field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    graceful_shutdown_seconds: Annotated[float, msgspec.Meta(gt=0)] = 20.0
    # Connections (appliance.connections): a client gets this long to send a request's headers,
    # counted from the connection's start or the end of its previous answer.
    header_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    max_header_bytes: Annotated[int, msgspec.Meta(ge=4096)] = 65536
    keep_alive_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    max_connections: Annotated[int, msgspec.Meta(ge=1)] = 1024
    max_connections_per_client: Annotated[int, msgspec.Meta(ge=1)] = 128
    # Who may scrape GET /metrics (Prometheus on the box, or the monitoring host's address).
    metrics_networks: list[str] = msgspec.field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])


class LoggingSettings(_Section, frozen=True):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"
    # How often a line sums up what was ingested (0 = never).
    summary_interval_seconds: Annotated[float, msgspec.Meta(ge=0)] = 300.0
    # The same cause of a 401 or a rejection is logged at most once per this many seconds.
    repeat_interval_seconds: Annotated[float, msgspec.Meta(ge=0)] = 60.0


class StorageSettings(_Section, frozen=True):
    path: str = "var/gateway.duckdb"
    cache_dir: str = "var/cache"
    retention_days: Annotated[int, msgspec.Meta(ge=1)] = 7
    max_disk_bytes: Annotated[int, msgspec.Meta(ge=0)] = 0
    min_free_disk_bytes: Annotated[int, msgspec.Meta(ge=0)] = 256 * 1024 * 1024
    # A checkpoint holds the writer (and every request behind it), for a time that grows with the
    # WAL: small and frequent ones keep that wait short. Every 3 s instead of 10 s (now that
    # scheduled checkpoints do not compact, `storage.database`), at half the saturating rate of
    # the app mix the p99 per 2000-event batch fell from ~390 to ~210 ms (checkpoints of ~100 MB
    # of WAL took 0.33 s), throughput and CPU per event were no worse (sparse mix: slightly
    # better), and the WAL peaks at ~70-100 MB instead of ~240-320 MB (bench/ingest.py). The
    # price is paid once a night: more partly filled row groups for the daily compaction to
    # merge (docs/behavior.md).
    checkpoint_wal_bytes: Annotated[int, msgspec.Meta(ge=1024 * 1024)] = 16 * 1024 * 1024
    checkpoint_interval_seconds: Annotated[float, msgspec.Meta(gt=0)] = 3.0
    # DuckDB's memory, mostly its cache of the store's blocks, which fills up to this as the store
    # grows (bench/soak.py: +245 MB in 12 min at 1GB); beyond it DuckDB reads from disk or spills.
    # Sized for a 1 GB box: the process peaks at ~450-600 MB (README, "Sizing").
    memory_limit: Annotated[str, msgspec.Meta(pattern=r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")] = "64MB"
    # DuckDB's worker threads (its default: one per core). The writer's statements are small, and
    # on a small box the cores are busy preparing requests: with one thread a 2-core box spent
    # 6% less CPU per event of the sparse mix (7% on the app mix), closed quiet sessions 20%
    # faster, and held a few MB less; a start on a store of 20M events took 13.8 instead of
    # 10.9 s, compaction and forwarding the same (README, "Sizing").
    threads: Annotated[int, msgspec.Meta(ge=1, le=256)] = 1


class LimitSettings(_Section, frozen=True):
    max_batch_events: Annotated[int, msgspec.Meta(ge=1)] = 2000
    # Events admitted and not yet answered (appliance.admission); a request that does not fit
    # gets 503 + Retry-After before its body is read. Five full batches: at ~9k events/s the
    # last one admitted is answered within ~1.5 s (50 clients: accepted p99 1.5 s, was 2.3-2.8 s
    # at 16000, for the same throughput).
    max_pending_events: Annotated[int, msgspec.Meta(ge=1)] = 10000
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 10 * 1024 * 1024
    max_event_age_days: Annotated[int, msgspec.Meta(ge=1)] = 5
    future_tolerance_seconds: Annotated[int, msgspec.Meta(ge=0)] = 60
    # What one event may hold (appliance.properties), checked while it is decoded and flattened.
    max_properties_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 65536
    max_property_keys: Annotated[int, msgspec.Meta(ge=1)] = 1000
    max_array_items: Annotated[int, msgspec.Meta(ge=1)] = 1000
    max_string_chars: Annotated[int, msgspec.Meta(ge=80)] = 16384


class SessionSettings(_Section, frozen=True):
    timeout_minutes: Annotated[int, msgspec.Meta(ge=1, le=24 * 60)] = 30
    close_interval_seconds: Annotated[float, msgspec.Meta(gt=0)] = 30.0


class GeoSettings(_Section, frozen=True):
    database: str = ""


class SiteSettings(_Section, frozen=True):
    country: str = ""
    region: str = ""
    city: str = ""
    latitude: float | None = None
    longitude: float | None = None


class UpstreamSettings(_Section, frozen=True):
    url: str = ""
    database: str = "openpanel"
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    # OpenPanel's clustered layout: `upstream-init` creates Distributed tables over
    # `*_replicated` ones ON CLUSTER this name; "" = a single node.
    cluster: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.{}-]*$")] = ""
    # May the gateway (and `upstream-init`) set `non_replicated_deduplication_window` on upstream
    # tables that lack it? If not, it reconciles by id before every insert instead.
    set_deduplication_window: bool = True


class SyncSettings(_Section, frozen=True):
    interval_seconds: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    batch_rows: Annotated[int, msgspec.Meta(ge=1)] = 50000


class HealthSettings(_Section, frozen=True):
    # /healthz/upstream and `status` report the upstream as failing once no sync pass has
    # succeeded for this long (an unreachable ClickHouse is otherwise only visible in the backlog).
    max_upstream_silence_seconds: Annotated[float, msgspec.Meta(gt=0)] = 900.0
    # systemd's watchdog is fed only while a no-op call through the writer returns within this.
    watchdog_writer_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 30.0


class ProjectSettings(_Section, frozen=True):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    client_id: str
    client_secret: Annotated[str, msgspec.Meta(min_length=1)]
    # Browser pages that may send without the secret (docs/contract.md §3.1); syntax in `appliance.origins`.
    allowed_origins: list[str] = []
    unknown_agents: Literal["server", "device"] = "server"


class Settings(_Section, frozen=True):
    gateway: GatewaySettings = GatewaySettings()
    server: ServerSettings = ServerSettings()
    logging: LoggingSettings = LoggingSettings()
    health: HealthSettings = HealthSettings()
    storage: StorageSettings = StorageSettings()
    limits: LimitSettings = LimitSettings()
    sessions: SessionSettings = SessionSettings()
    geo: GeoSettings = GeoSettings()
    site: SiteSettings = SiteSettings()
    upstream: UpstreamSettings = UpstreamSettings()
    sync: SyncSettings = SyncSettings()
    projects: list[ProjectSettings] = []


def load_settings(path: str | os.PathLike[str]) -> Settings:
    """Read, validate and resolve the TOML file at `path`."""
    config_path = Path(path)
    try:
        raw = config_path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"cannot read config file {config_path}: {exc.strerror}") from exc
    return parse_settings(raw, base_dir=config_path.resolve().parent)


def parse_settings(raw: bytes | str, base_dir: Path) -> Settings:
    """Validate TOML text; relative paths are taken from `base_dir`."""
    try:
        settings = msgspec.toml.decode(raw, type=Settings)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid configuration: {_settings_path(str(exc))}") from exc
    except msgspec.DecodeError as exc:
        raise SettingsError(f"config file is not valid TOML: {exc}") from exc
    _check(settings)
    return msgspec.structs.replace(
        settings,
        storage=msgspec.structs.replace(
            settings.storage,
            path=str(_resolve(base_dir, settings.storage.path)),
            cache_dir=str(_resolve(base_dir, settings.storage.cache_dir)),
        ),
        upstream=msgspec.structs.replace(
            settings.upstream, url=_resolve_chdb(base_dir, _from_env(settings.upstream.url, "upstream.url"))
        ),
        geo=msgspec.structs.replace(
            settings.geo,
            database=str(_resolve(base_dir, settings.geo.database)) if settings.geo.database else "",
        ),
        projects=[_with_secret_from_env(project) for project in settings.projects],
    )


def _settings_path(message: str) -> str:
    # msgspec says "... - at `$.server.port`"; operators know keys as "server.port".
    text, sep, where = message.partition(" - at `$")
    if not sep:
        return message
    key = where.rstrip("`").lstrip(".")
    return f"{key}: {text}" if key else text


def _resolve(base_dir: Path, value: str) -> Path:
    candidate = Path(value)
    return candidate if candidate.is_absolute() else base_dir / candidate


def _resolve_chdb(base_dir: Path, url: str) -> str:
    # chdb://var/upstream is relative to the config file, like the other paths.
    if not url.startswith("chdb://"):
        return url
    return f"chdb://{_resolve(base_dir, url.removeprefix('chdb://'))}"


def _from_env(value: str, key: str) -> str:
    """`env:NAME` → the value of environment variable NAME (secrets stay out of the file)."""
    if not value.startswith("env:"):
        return value
    variable = value.removeprefix("env:")
    found = os.environ.get(variable, "")
    if not found:
        raise SettingsError(f"{key}: environment variable {variable} is not set")
    return found


def _with_secret_from_env(project: ProjectSettings) -> ProjectSettings:
    secret = _from_env(project.client_secret, f"projects[{project.id}].client_secret")
    return msgspec.structs.replace(project, client_secret=secret)


def _check(settings: Settings) -> None:
    """Rules that span keys or need more than a type."""
    seen_ids: set[str] = set()
    seen_clients: set[str] = set()
    for index, project in enumerate(settings.projects):
        where = f"projects[{index}]"
        if not _UUID_LOWER.match(project.client_id) or str(uuid.UUID(project.client_id)) != project.client_id:
            raise SettingsError(f"{where}.client_id: must be a lowercase UUID, got {project.client_id!r}")
        if project.id in seen_ids:
            raise SettingsError(f"{where}.id: project id {project.id!r} is used twice")
        if project.client_id in seen_clients:
            raise SettingsError(f"{where}.client_id: client id {project.client_id!r} is used twice")
        try:
            OriginPolicy.parse(project.allowed_origins)
        except InvalidOrigin as exc:
            raise SettingsError(f"{where}.allowed_origins{exc}") from exc
        seen_ids.add(project.id)
        seen_clients.add(project.client_id)
    for key in ("trusted_proxies", "admin_networks", "metrics_networks"):
        for index, network in enumerate(getattr(settings.server, key)):
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise SettingsError(f"server.{key}[{index}]: {exc}") from exc
    if settings.site.country and not re.fullmatch(r"[A-Z]{2}", settings.site.country):
        raise SettingsError(f"site.country: must be an ISO-3166 alpha-2 code, got {settings.site.country!r}")
    url = settings.upstream.url
    if url and not url.startswith(("http://", "https://", "chdb://", "env:")):
        raise SettingsError(f"upstream.url: scheme must be http://, https:// or chdb://, got {url!r}")
