-- OpenPanel ClickHouse DDL for a fresh CLUSTERED install. TEST FIXTURE / REFERENCE ONLY (not replayable:
-- ON CLUSTER, Replicated*MergeTree and the {cluster}/{installation}/{shard}/{replica} macros need a real cluster).
--
-- Generated 2026-11-29 from Openpanel-dev/openpanel commit ed7bdddbadbe556719ac4b08963905a2de717ddd,
-- packages/db/code-migrations. Not hand-written: OpenPanel's own migration up() functions were executed,
-- in the numeric order code-migrations/migrate.ts uses, by a small Node 20 runner (TypeScript loaded with
-- jiti 2.7.0, @clickhouse/client 1.18.5 as pinned upstream) with --cluster (getIsCluster() true),
-- SELF_HOSTED unset. No engine executed anything: the client talked to a capture-only ClickHouse-HTTP
-- front that recorded every statement and answered the migrations' few read queries as a fresh install
-- would (no tables yet, empty tables: min(created_at) = 1970-01-01 and count() = 0, no idx_profile_id
-- index / epv_keys projection, no completed mutations, one replica). The statements below are exactly
-- what was sent, in order (blank lines squeezed as the migrations' own .sql files do); for 3..16 they are
-- identical to the .sql files those migrations write under --dry, plus the statements 18 and 19 send
-- (those two ignore --dry).
-- Migrations applied (ClickHouse), in order:
--   1-settings, 3-init-ch, 4-add-sessions, 5-add-imports-table, 6-add-revenue-column, 8-order-keys,
--   10-add-session-replay, 11-add-groups, 12-add-gsc, 13-cohorts, 14-profile-event-property-summary-mv,
--   15-backfill-cohort-mvs, 16-restructure-profiles, 18-events-profile-id-index, 19-event-property-values-projections
--   (1-settings is an empty no-op and 15 finds no events, so neither emits a statement.)
-- Skipped as Postgres-only: 2-accounts, 7-migrate-events-to-series, 9-migrate-options,
--   17-migrate-deprecated-ranges.
-- Fresh install: no data-moving INSERT ... SELECT is generated (backfill/copy branches of 3, 4, 8, 15, 16
-- not taken). Statements are separated by ";\n\n"; a "-- <migration>" line precedes each migration's first.

-- 3-init-ch.ts
CREATE DATABASE IF NOT EXISTS openpanel ON CLUSTER '{cluster}';

CREATE TABLE IF NOT EXISTS self_hosting_replicated ON CLUSTER '{cluster}' (
  `created_at` Date,
  `domain` String,
  `count` UInt64
)
ENGINE = ReplicatedMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}')
PARTITION BY toYYYYMM(created_at)
ORDER BY (domain, created_at);

CREATE TABLE IF NOT EXISTS self_hosting ON CLUSTER '{cluster}' AS self_hosting_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), self_hosting_replicated, cityHash64(domain));

CREATE TABLE IF NOT EXISTS events_replicated ON CLUSTER '{cluster}' (
  `id` UUID DEFAULT generateUUIDv4(),
  `name` LowCardinality(String),
  `sdk_name` LowCardinality(String),
  `sdk_version` LowCardinality(String),
  `device_id` String CODEC(ZSTD(3)),
  `profile_id` String CODEC(ZSTD(3)),
  `project_id` String CODEC(ZSTD(3)),
  `session_id` String CODEC(LZ4),
  `path` String CODEC(ZSTD(3)),
  `origin` String CODEC(ZSTD(3)),
  `referrer` String CODEC(ZSTD(3)),
  `referrer_name` String CODEC(ZSTD(3)),
  `referrer_type` LowCardinality(String),
  `duration` UInt64 CODEC(Delta(4), LZ4),
  `properties` Map(String, String) CODEC(ZSTD(3)),
  `created_at` DateTime64(3) CODEC(DoubleDelta, ZSTD(3)),
  `country` LowCardinality(FixedString(2)),
  `city` String,
  `region` LowCardinality(String),
  `longitude` Nullable(Float32) CODEC(Gorilla, LZ4),
  `latitude` Nullable(Float32) CODEC(Gorilla, LZ4),
  `os` LowCardinality(String),
  `os_version` LowCardinality(String),
  `browser` LowCardinality(String),
  `browser_version` LowCardinality(String),
  `device` LowCardinality(String),
  `brand` LowCardinality(String),
  `model` LowCardinality(String),
  `imported_at` Nullable(DateTime) CODEC(Delta(4), LZ4),
  INDEX idx_name name TYPE bloom_filter GRANULARITY 1,
  INDEX idx_properties_bounce properties['__bounce'] TYPE set(3) GRANULARITY 1,
  INDEX idx_origin origin TYPE bloom_filter(0.05) GRANULARITY 1,
  INDEX idx_path path TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplicatedMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}')
PARTITION BY toYYYYMM(created_at)
ORDER BY (project_id, toDate(created_at), profile_id, name)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS events ON CLUSTER '{cluster}' AS events_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), events_replicated, cityHash64(project_id, toString(toStartOfHour(created_at))));

CREATE TABLE IF NOT EXISTS events_bots_replicated ON CLUSTER '{cluster}' (
  `id` UUID DEFAULT generateUUIDv4(),
  `project_id` String,
  `name` String,
  `type` String,
  `path` String,
  `created_at` DateTime64(3)
)
ENGINE = ReplicatedMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}')
ORDER BY (project_id, created_at)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS events_bots ON CLUSTER '{cluster}' AS events_bots_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), events_bots_replicated, cityHash64(project_id, toString(toStartOfDay(created_at))));

CREATE TABLE IF NOT EXISTS profiles_replicated ON CLUSTER '{cluster}' (
  `id` String CODEC(ZSTD(3)),
  `is_external` Bool,
  `first_name` String CODEC(ZSTD(3)),
  `last_name` String CODEC(ZSTD(3)),
  `email` String CODEC(ZSTD(3)),
  `avatar` String CODEC(ZSTD(3)),
  `properties` Map(String, String) CODEC(ZSTD(3)),
  `project_id` String CODEC(ZSTD(3)),
  `created_at` DateTime64(3) CODEC(Delta(4), LZ4),
  INDEX idx_first_name first_name TYPE bloom_filter GRANULARITY 1,
  INDEX idx_last_name last_name TYPE bloom_filter GRANULARITY 1,
  INDEX idx_email email TYPE bloom_filter GRANULARITY 1
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}', created_at)
PARTITION BY toYYYYMM(created_at)
ORDER BY (project_id, id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS profiles ON CLUSTER '{cluster}' AS profiles_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), profiles_replicated, cityHash64(project_id));

CREATE TABLE IF NOT EXISTS profile_aliases_replicated ON CLUSTER '{cluster}' (
  `project_id` String,
  `profile_id` String,
  `alias` String,
  `created_at` DateTime
)
ENGINE = ReplicatedMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}')
ORDER BY (project_id, profile_id, alias, created_at)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS profile_aliases ON CLUSTER '{cluster}' AS profile_aliases_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), profile_aliases_replicated, cityHash64(project_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS dau_mv_replicated ON CLUSTER '{cluster}'
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}')
PARTITION BY toYYYYMMDD(date)
ORDER BY (project_id, date)
AS SELECT
        toDate(created_at) as date,
        uniqState(profile_id) as profile_id,
        project_id
      FROM events_replicated
      GROUP BY date, project_id;

CREATE TABLE IF NOT EXISTS dau_mv ON CLUSTER '{cluster}' AS dau_mv_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), dau_mv_replicated, cityHash64(project_id, date));

CREATE MATERIALIZED VIEW IF NOT EXISTS cohort_events_mv_replicated ON CLUSTER '{cluster}'
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}')
ORDER BY (project_id, name, created_at, profile_id)
AS SELECT
        project_id,
        name,
        toDate(created_at) AS created_at,
        profile_id,
        COUNT() AS event_count
      FROM events_replicated
      WHERE profile_id != device_id
      GROUP BY project_id, name, created_at, profile_id;

CREATE TABLE IF NOT EXISTS cohort_events_mv ON CLUSTER '{cluster}' AS cohort_events_mv_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), cohort_events_mv_replicated, cityHash64(project_id, toString(created_at)));

CREATE MATERIALIZED VIEW IF NOT EXISTS distinct_event_names_mv_replicated ON CLUSTER '{cluster}'
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}')
ORDER BY (project_id, name, created_at)
AS SELECT
        project_id,
        name,
        max(created_at) AS created_at,
        count() AS event_count
      FROM events_replicated
      GROUP BY project_id, name;

CREATE TABLE IF NOT EXISTS distinct_event_names_mv ON CLUSTER '{cluster}' AS distinct_event_names_mv_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), distinct_event_names_mv_replicated, cityHash64(name, created_at));

CREATE MATERIALIZED VIEW IF NOT EXISTS event_property_values_mv_replicated ON CLUSTER '{cluster}'
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}')
ORDER BY (project_id, name, property_key, property_value)
AS SELECT
        project_id,
        name,
        key_value.keys as property_key,
        key_value.values as property_value,
        created_at
      FROM (
        SELECT
          project_id,
          name,
          untuple(arrayJoin(properties)) as key_value,
          max(created_at) as created_at
        FROM events_replicated
        GROUP BY project_id, name, key_value
      )
      WHERE property_value != ''
        AND property_key != ''
        AND property_key NOT IN ('__duration_from', '__properties_from')
      GROUP BY project_id, name, property_key, property_value, created_at;

CREATE TABLE IF NOT EXISTS event_property_values_mv ON CLUSTER '{cluster}' AS event_property_values_mv_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), event_property_values_mv_replicated, cityHash64(project_id, name));

-- 4-add-sessions.ts
CREATE TABLE IF NOT EXISTS sessions_replicated ON CLUSTER '{cluster}' (
  `id` String,
  `project_id` String CODEC(ZSTD(3)),
  `profile_id` String CODEC(ZSTD(3)),
  `device_id` String CODEC(ZSTD(3)),
  `created_at` DateTime64(3) CODEC(DoubleDelta, ZSTD(3)),
  `ended_at` DateTime64(3) CODEC(DoubleDelta, ZSTD(3)),
  `is_bounce` Bool,
  `entry_origin` LowCardinality(String),
  `entry_path` String CODEC(ZSTD(3)),
  `exit_origin` LowCardinality(String),
  `exit_path` String CODEC(ZSTD(3)),
  `screen_view_count` Int32,
  `revenue` Float64,
  `event_count` Int32,
  `duration` UInt32,
  `country` LowCardinality(FixedString(2)),
  `region` LowCardinality(String),
  `city` String,
  `longitude` Nullable(Float32) CODEC(Gorilla, LZ4),
  `latitude` Nullable(Float32) CODEC(Gorilla, LZ4),
  `device` LowCardinality(String),
  `brand` LowCardinality(String),
  `model` LowCardinality(String),
  `browser` LowCardinality(String),
  `browser_version` LowCardinality(String),
  `os` LowCardinality(String),
  `os_version` LowCardinality(String),
  `utm_medium` String CODEC(ZSTD(3)),
  `utm_source` String CODEC(ZSTD(3)),
  `utm_campaign` String CODEC(ZSTD(3)),
  `utm_content` String CODEC(ZSTD(3)),
  `utm_term` String CODEC(ZSTD(3)),
  `referrer` String CODEC(ZSTD(3)),
  `referrer_name` String CODEC(ZSTD(3)),
  `referrer_type` LowCardinality(String),
  `sign` Int8,
  `version` UInt64,
  `properties` Map(String, String) CODEC(ZSTD(3))
)
ENGINE = ReplicatedVersionedCollapsingMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}', sign, version)
PARTITION BY toYYYYMM(created_at)
ORDER BY (project_id, id, toDate(created_at), profile_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS sessions ON CLUSTER '{cluster}' AS sessions_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), sessions_replicated, cityHash64(project_id, toString(toStartOfHour(created_at))));

-- 5-add-imports-table.ts
CREATE TABLE IF NOT EXISTS events_imports_replicated ON CLUSTER '{cluster}' (
  `id` UUID DEFAULT generateUUIDv4(),
  `name` LowCardinality(String),
  `sdk_name` LowCardinality(String),
  `sdk_version` LowCardinality(String),
  `device_id` String CODEC(ZSTD(3)),
  `profile_id` String CODEC(ZSTD(3)),
  `project_id` String CODEC(ZSTD(3)),
  `session_id` String CODEC(LZ4),
  `path` String CODEC(ZSTD(3)),
  `origin` String CODEC(ZSTD(3)),
  `referrer` String CODEC(ZSTD(3)),
  `referrer_name` String CODEC(ZSTD(3)),
  `referrer_type` LowCardinality(String),
  `duration` UInt64 CODEC(Delta(4), LZ4),
  `properties` Map(String, String) CODEC(ZSTD(3)),
  `created_at` DateTime64(3) CODEC(DoubleDelta, ZSTD(3)),
  `country` LowCardinality(FixedString(2)),
  `city` String,
  `region` LowCardinality(String),
  `longitude` Nullable(Float32) CODEC(Gorilla, LZ4),
  `latitude` Nullable(Float32) CODEC(Gorilla, LZ4),
  `os` LowCardinality(String),
  `os_version` LowCardinality(String),
  `browser` LowCardinality(String),
  `browser_version` LowCardinality(String),
  `device` LowCardinality(String),
  `brand` LowCardinality(String),
  `model` LowCardinality(String),
  `imported_at` Nullable(DateTime) CODEC(Delta(4), LZ4),
  `import_id` String CODEC(ZSTD(3)),
  `import_status` LowCardinality(String) DEFAULT 'pending',
  `imported_at_meta` DateTime DEFAULT now()
)
ENGINE = ReplicatedMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}')
PARTITION BY toYYYYMM(imported_at_meta)
ORDER BY (import_id, created_at)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS events_imports ON CLUSTER '{cluster}' AS events_imports_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), events_imports_replicated, cityHash64(import_id));

ALTER TABLE events_imports_replicated ON CLUSTER '{cluster}' MODIFY TTL imported_at_meta + INTERVAL 7 DAY;

-- 6-add-revenue-column.ts
ALTER TABLE events_replicated ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS `revenue` UInt64 AFTER `referrer_type`;

ALTER TABLE events ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS `revenue` UInt64 AFTER `referrer_type`;

-- 8-order-keys.ts
CREATE TABLE IF NOT EXISTS events_new_20251123_replicated ON CLUSTER '{cluster}' (
  `id` UUID DEFAULT generateUUIDv4(),
  `name` LowCardinality(String),
  `sdk_name` LowCardinality(String),
  `sdk_version` LowCardinality(String),
  `device_id` String CODEC(ZSTD(3)),
  `profile_id` String CODEC(ZSTD(3)),
  `project_id` String CODEC(ZSTD(3)),
  `session_id` String CODEC(LZ4),
  `path` String CODEC(ZSTD(3)),
  `origin` String CODEC(ZSTD(3)),
  `referrer` String CODEC(ZSTD(3)),
  `referrer_name` String CODEC(ZSTD(3)),
  `referrer_type` LowCardinality(String),
  `revenue` UInt64,
  `duration` UInt64 CODEC(Delta(4), LZ4),
  `properties` Map(String, String) CODEC(ZSTD(3)),
  `created_at` DateTime64(3) CODEC(DoubleDelta, ZSTD(3)),
  `country` LowCardinality(FixedString(2)),
  `city` String,
  `region` LowCardinality(String),
  `longitude` Nullable(Float32) CODEC(Gorilla, LZ4),
  `latitude` Nullable(Float32) CODEC(Gorilla, LZ4),
  `os` LowCardinality(String),
  `os_version` LowCardinality(String),
  `browser` LowCardinality(String),
  `browser_version` LowCardinality(String),
  `device` LowCardinality(String),
  `brand` LowCardinality(String),
  `model` LowCardinality(String),
  `imported_at` Nullable(DateTime) CODEC(Delta(4), LZ4),
  INDEX idx_name name TYPE bloom_filter GRANULARITY 1,
  INDEX idx_properties_bounce properties['__bounce'] TYPE set(3) GRANULARITY 1,
  INDEX idx_origin origin TYPE bloom_filter(0.05) GRANULARITY 1,
  INDEX idx_path path TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplicatedMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}')
PARTITION BY toYYYYMM(created_at)
ORDER BY (project_id, toDate(created_at), created_at, name)
SETTINGS index_granularity = 8192, enable_block_offset_column = 1, enable_block_number_column = 1;

CREATE TABLE IF NOT EXISTS events_new_20251123 ON CLUSTER '{cluster}' AS events_new_20251123_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), events_new_20251123_replicated, cityHash64(project_id, toString(toStartOfHour(created_at))));

CREATE TABLE IF NOT EXISTS sessions_new_20251123_replicated ON CLUSTER '{cluster}' (
  `id` String,
  `project_id` String CODEC(ZSTD(3)),
  `profile_id` String CODEC(ZSTD(3)),
  `device_id` String CODEC(ZSTD(3)),
  `created_at` DateTime64(3) CODEC(DoubleDelta, ZSTD(3)),
  `ended_at` DateTime64(3) CODEC(DoubleDelta, ZSTD(3)),
  `is_bounce` Bool,
  `entry_origin` LowCardinality(String),
  `entry_path` String CODEC(ZSTD(3)),
  `exit_origin` LowCardinality(String),
  `exit_path` String CODEC(ZSTD(3)),
  `screen_view_count` Int32,
  `revenue` Float64,
  `event_count` Int32,
  `duration` UInt32,
  `country` LowCardinality(FixedString(2)),
  `region` LowCardinality(String),
  `city` String,
  `longitude` Nullable(Float32) CODEC(Gorilla, LZ4),
  `latitude` Nullable(Float32) CODEC(Gorilla, LZ4),
  `device` LowCardinality(String),
  `brand` LowCardinality(String),
  `model` LowCardinality(String),
  `browser` LowCardinality(String),
  `browser_version` LowCardinality(String),
  `os` LowCardinality(String),
  `os_version` LowCardinality(String),
  `utm_medium` String CODEC(ZSTD(3)),
  `utm_source` String CODEC(ZSTD(3)),
  `utm_campaign` String CODEC(ZSTD(3)),
  `utm_content` String CODEC(ZSTD(3)),
  `utm_term` String CODEC(ZSTD(3)),
  `referrer` String CODEC(ZSTD(3)),
  `referrer_name` String CODEC(ZSTD(3)),
  `referrer_type` LowCardinality(String),
  `sign` Int8,
  `version` UInt64
)
ENGINE = ReplicatedVersionedCollapsingMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}', sign, version)
PARTITION BY toYYYYMM(created_at)
ORDER BY (project_id, toDate(created_at), created_at)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS sessions_new_20251123 ON CLUSTER '{cluster}' AS sessions_new_20251123_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), sessions_new_20251123_replicated, cityHash64(project_id, toString(toStartOfHour(created_at))));

RENAME TABLE events_replicated TO events_20251123_replicated ON CLUSTER '{cluster}';

RENAME TABLE events TO events_20251123 ON CLUSTER '{cluster}';

RENAME TABLE sessions_replicated TO sessions_20251123_replicated ON CLUSTER '{cluster}';

RENAME TABLE sessions TO sessions_20251123 ON CLUSTER '{cluster}';

DROP TABLE IF EXISTS events_new_20251123 ON CLUSTER '{cluster}';

DROP TABLE IF EXISTS sessions_new_20251123 ON CLUSTER '{cluster}';

RENAME TABLE events_new_20251123_replicated TO events_replicated ON CLUSTER '{cluster}';

RENAME TABLE sessions_new_20251123_replicated TO sessions_replicated ON CLUSTER '{cluster}';

CREATE TABLE IF NOT EXISTS events ON CLUSTER '{cluster}' AS events_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), events_replicated, cityHash64(project_id, toString(toStartOfHour(created_at))));

CREATE TABLE IF NOT EXISTS sessions ON CLUSTER '{cluster}' AS sessions_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), sessions_replicated, cityHash64(project_id, toString(toStartOfHour(created_at))));

-- 10-add-session-replay.ts
CREATE TABLE IF NOT EXISTS session_replay_chunks_replicated ON CLUSTER '{cluster}' (
  `project_id` String CODEC(ZSTD(3)),
  `session_id` String CODEC(ZSTD(3)),
  `chunk_index` UInt16,
  `started_at` DateTime64(3) CODEC(DoubleDelta, ZSTD(3)),
  `ended_at` DateTime64(3) CODEC(DoubleDelta, ZSTD(3)),
  `events_count` UInt16,
  `is_full_snapshot` Bool,
  `payload` String CODEC(ZSTD(6))
)
ENGINE = ReplicatedMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}')
PARTITION BY toYYYYMMDD(started_at)
ORDER BY (project_id, session_id, started_at, chunk_index)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS session_replay_chunks ON CLUSTER '{cluster}' AS session_replay_chunks_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), session_replay_chunks_replicated, cityHash64(project_id, session_id));

ALTER TABLE session_replay_chunks_replicated ON CLUSTER '{cluster}' MODIFY TTL started_at + INTERVAL 30 DAY;

-- 11-add-groups.ts
ALTER TABLE events_replicated ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS `groups` Array(String) DEFAULT [] CODEC(ZSTD(3)) AFTER session_id;

ALTER TABLE events ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS `groups` Array(String) DEFAULT [] CODEC(ZSTD(3)) AFTER session_id;

ALTER TABLE sessions_replicated ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS `groups` Array(String) DEFAULT [] CODEC(ZSTD(3)) AFTER device_id;

ALTER TABLE sessions ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS `groups` Array(String) DEFAULT [] CODEC(ZSTD(3)) AFTER device_id;

ALTER TABLE profiles_replicated ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS `groups` Array(String) DEFAULT [] CODEC(ZSTD(3)) AFTER project_id;

ALTER TABLE profiles ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS `groups` Array(String) DEFAULT [] CODEC(ZSTD(3)) AFTER project_id;

CREATE TABLE IF NOT EXISTS groups_replicated ON CLUSTER '{cluster}' (
  `id` String,
  `project_id` String,
  `type` String,
  `name` String,
  `properties` Map(String, String),
  `created_at` DateTime,
  `version` UInt64,
  `deleted` UInt8 DEFAULT 0
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}', version, deleted)
ORDER BY (project_id, id);

CREATE TABLE IF NOT EXISTS groups ON CLUSTER '{cluster}' AS groups_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), groups_replicated, cityHash64(project_id, id));

-- 12-add-gsc.ts
CREATE TABLE IF NOT EXISTS gsc_daily_replicated ON CLUSTER '{cluster}' (
  `project_id` String CODEC(ZSTD(3)),
  `date` Date CODEC(Delta(2), LZ4),
  `clicks` UInt32 CODEC(Delta(4), LZ4),
  `impressions` UInt32 CODEC(Delta(4), LZ4),
  `ctr` Float32 CODEC(Gorilla, LZ4),
  `position` Float32 CODEC(Gorilla, LZ4),
  `synced_at` DateTime DEFAULT now() CODEC(Delta(4), LZ4)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}', synced_at)
PARTITION BY toYYYYMM(date)
ORDER BY (project_id, date);

CREATE TABLE IF NOT EXISTS gsc_daily ON CLUSTER '{cluster}' AS gsc_daily_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), gsc_daily_replicated, cityHash64(project_id));

CREATE TABLE IF NOT EXISTS gsc_pages_daily_replicated ON CLUSTER '{cluster}' (
  `project_id` String CODEC(ZSTD(3)),
  `date` Date CODEC(Delta(2), LZ4),
  `page` String CODEC(ZSTD(3)),
  `clicks` UInt32 CODEC(Delta(4), LZ4),
  `impressions` UInt32 CODEC(Delta(4), LZ4),
  `ctr` Float32 CODEC(Gorilla, LZ4),
  `position` Float32 CODEC(Gorilla, LZ4),
  `synced_at` DateTime DEFAULT now() CODEC(Delta(4), LZ4)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}', synced_at)
PARTITION BY toYYYYMM(date)
ORDER BY (project_id, date, page);

CREATE TABLE IF NOT EXISTS gsc_pages_daily ON CLUSTER '{cluster}' AS gsc_pages_daily_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), gsc_pages_daily_replicated, cityHash64(project_id));

CREATE TABLE IF NOT EXISTS gsc_queries_daily_replicated ON CLUSTER '{cluster}' (
  `project_id` String CODEC(ZSTD(3)),
  `date` Date CODEC(Delta(2), LZ4),
  `query` String CODEC(ZSTD(3)),
  `clicks` UInt32 CODEC(Delta(4), LZ4),
  `impressions` UInt32 CODEC(Delta(4), LZ4),
  `ctr` Float32 CODEC(Gorilla, LZ4),
  `position` Float32 CODEC(Gorilla, LZ4),
  `synced_at` DateTime DEFAULT now() CODEC(Delta(4), LZ4)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}', synced_at)
PARTITION BY toYYYYMM(date)
ORDER BY (project_id, date, query);

CREATE TABLE IF NOT EXISTS gsc_queries_daily ON CLUSTER '{cluster}' AS gsc_queries_daily_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), gsc_queries_daily_replicated, cityHash64(project_id));

-- 13-cohorts.ts
CREATE TABLE IF NOT EXISTS cohort_members_replicated ON CLUSTER '{cluster}' (
  `project_id` String CODEC(ZSTD(3)),
  `cohort_id` String CODEC(ZSTD(3)),
  `profile_id` String CODEC(ZSTD(3)),
  `matched_at` DateTime DEFAULT now(),
  `matching_properties` Map(String, String) CODEC(ZSTD(3)),
  `version` UInt64 DEFAULT 1,
  INDEX idx_profile profile_id TYPE bloom_filter GRANULARITY 1,
  INDEX idx_cohort cohort_id TYPE bloom_filter GRANULARITY 1
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}', version)
PARTITION BY toYYYYMM(matched_at)
ORDER BY (project_id, cohort_id, profile_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS cohort_members ON CLUSTER '{cluster}' AS cohort_members_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), cohort_members_replicated, cityHash64(project_id, cohort_id));

CREATE TABLE IF NOT EXISTS cohort_metadata_replicated ON CLUSTER '{cluster}' (
  `project_id` String,
  `cohort_id` String,
  `member_count` UInt64,
  `last_computed_at` DateTime,
  `sample_profiles` Array(String),
  `version` UInt64 DEFAULT 1
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}', version)
ORDER BY (project_id, cohort_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS cohort_metadata ON CLUSTER '{cluster}' AS cohort_metadata_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), cohort_metadata_replicated, cityHash64(project_id, cohort_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS profile_event_summary_mv_replicated ON CLUSTER '{cluster}'
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}')
PARTITION BY toYYYYMM(event_date)
ORDER BY (project_id, profile_id, name, event_date)
AS SELECT
          project_id,
          profile_id,
          name,
          toStartOfDay(created_at) AS event_date,
          countState() AS event_count,
          minState(created_at) AS first_event_time,
          maxState(created_at) AS last_event_time,
          sumState(duration) AS total_duration
        FROM events_replicated
        WHERE profile_id != device_id
        GROUP BY project_id, profile_id, name, event_date;

CREATE TABLE IF NOT EXISTS profile_event_summary_mv ON CLUSTER '{cluster}' AS profile_event_summary_mv_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), profile_event_summary_mv_replicated, cityHash64(project_id, profile_id));

-- 14-profile-event-property-summary-mv.ts
CREATE MATERIALIZED VIEW IF NOT EXISTS profile_event_property_summary_mv_replicated ON CLUSTER '{cluster}'
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}')
PARTITION BY toYYYYMM(event_date)
ORDER BY (project_id, profile_id, name, property_key, event_date)
AS SELECT
          project_id,
          profile_id,
          name,
          property_key,
          property_value,
          toStartOfDay(created_at) AS event_date,
          countState() AS event_count,
          minState(created_at) AS first_event_time,
          maxState(created_at) AS last_event_time
        FROM events_replicated
        ARRAY JOIN mapKeys(properties) AS property_key, mapValues(properties) AS property_value
        WHERE profile_id != device_id
          AND property_key != ''
          AND property_value != ''
        GROUP BY project_id, profile_id, name, property_key, property_value, event_date;

CREATE TABLE IF NOT EXISTS profile_event_property_summary_mv ON CLUSTER '{cluster}' AS profile_event_property_summary_mv_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), profile_event_property_summary_mv_replicated, cityHash64(project_id, profile_id));

-- 16-restructure-profiles.ts
CREATE TABLE IF NOT EXISTS profiles_new_20260504_replicated ON CLUSTER '{cluster}' (
  `id` String CODEC(ZSTD(3)),
  `is_external` Bool,
  `first_name` String CODEC(ZSTD(3)),
  `last_name` String CODEC(ZSTD(3)),
  `email` String CODEC(ZSTD(3)),
  `avatar` String CODEC(ZSTD(3)),
  `properties` Map(String, String) CODEC(ZSTD(3)),
  `project_id` String CODEC(ZSTD(3)),
  `groups` Array(String) DEFAULT [] CODEC(ZSTD(3)),
  `created_at` DateTime64(3) CODEC(Delta(4), LZ4),
  `last_seen_at` DateTime64(3) CODEC(Delta(4), LZ4),
  INDEX idx_first_name first_name TYPE bloom_filter GRANULARITY 1,
  INDEX idx_last_name last_name TYPE bloom_filter GRANULARITY 1,
  INDEX idx_email email TYPE bloom_filter GRANULARITY 1
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/{installation}/{cluster}/tables/{shard}/openpanel/v2/{table}', '{replica}', last_seen_at)
PARTITION BY toYYYYMM(created_at)
ORDER BY (project_id, id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS profiles_new_20260504 ON CLUSTER '{cluster}' AS profiles_new_20260504_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), profiles_new_20260504_replicated, cityHash64(project_id));

RENAME TABLE profiles_replicated TO profiles_20260504_replicated ON CLUSTER '{cluster}';

RENAME TABLE profiles TO profiles_20260504 ON CLUSTER '{cluster}';

DROP TABLE IF EXISTS profiles_new_20260504 ON CLUSTER '{cluster}';

RENAME TABLE profiles_new_20260504_replicated TO profiles_replicated ON CLUSTER '{cluster}';

CREATE TABLE IF NOT EXISTS profiles ON CLUSTER '{cluster}' AS profiles_replicated
ENGINE = Distributed('{cluster}', currentDatabase(), profiles_replicated, cityHash64(project_id));

-- 18-events-profile-id-index.ts
ALTER TABLE events_replicated ON CLUSTER '{cluster}' ADD INDEX IF NOT EXISTS idx_profile_id profile_id TYPE bloom_filter(0.01) GRANULARITY 1;

ALTER TABLE events_replicated ON CLUSTER '{cluster}' MATERIALIZE INDEX idx_profile_id;

-- 19-event-property-values-projections.ts
ALTER TABLE `event_property_values_mv_replicated` ON CLUSTER '{cluster}' MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';

ALTER TABLE `event_property_values_mv_replicated` ON CLUSTER '{cluster}' ADD PROJECTION IF NOT EXISTS epv_keys (SELECT project_id, name, property_key, max(created_at) AS created_at GROUP BY project_id, name, property_key);

ALTER TABLE `event_property_values_mv_replicated` ON CLUSTER '{cluster}' MATERIALIZE PROJECTION epv_keys;
