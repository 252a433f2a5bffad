-- OpenPanel ClickHouse schema, fresh single-node (self-hosted) install. TEST FIXTURE.
--
-- Generated 2026-11-29 from Openpanel-dev/openpanel commit ed7bdddbadbe556719ac4b08963905a2de717ddd,
-- packages/db/code-migrations. Not hand-written: OpenPanel's own migration up() functions were
-- executed, in the numeric order code-migrations/migrate.ts uses, by a small Node 20 runner
-- (TypeScript loaded with jiti 2.7.0, @clickhouse/client 1.18.5 as pinned upstream) with
-- SELF_HOSTED=true, no --cluster/CLICKHOUSE_CLUSTER, no --dry, against an initially empty engine
-- in which database `openpanel` had been created first (as self-hosting/clickhouse/init-db.sh does).
-- Engine: chdb 4.4.0 (embedded ClickHouse, SELECT version() = '26.9.2.1'), reached through a
-- minimal ClickHouse-HTTP front; MergeTree default allow_dimensions_outside_sorting_key = 1 was set
-- engine-wide so OpenPanel's DDL ran unmodified (see the compatibility note further down).
-- (OpenPanel's self-hosting compose pins clickhouse/clickhouse-server:25.10.2.65; the DDL text below
-- is the engine's normalised SHOW CREATE output, e.g. Gorilla -> Gorilla(4), explicit index_granularity.)
-- Migrations applied (ClickHouse), in order:
--   1-settings, 3-init-ch, 4-add-sessions, 5-add-imports-table, 6-add-revenue-column, 8-order-keys,
--   10-add-session-replay, 11-add-groups, 12-add-gsc, 13-cohorts, 14-profile-event-property-summary-mv,
--   15-backfill-cohort-mvs, 16-restructure-profiles, 18-events-profile-id-index, 19-event-property-values-projections
--   (1-settings is an empty no-op; 15 found no events and backfilled nothing.)
-- Skipped as Postgres-only: 2-accounts, 7-migrate-events-to-series, 9-migrate-options,
--   17-migrate-deprecated-ranges.
-- On a fresh install no data-moving statement is generated (empty tables: the backfill/copy
-- branches of 3, 4, 8, 15, 16 are not taken); the mutations MATERIALIZE INDEX idx_profile_id (18)
-- and MATERIALIZE PROJECTION epv_keys (19) ran as no-ops and are not repeated here.
-- Note: 8 and 16 rename the previous tables aside (events_20251123, sessions_20251123,
-- profiles_20260504); no migration drops them, so they are part of the resulting schema.
--
-- Content: SHOW CREATE DATABASE / SHOW CREATE TABLE of every table and materialized view in
-- database openpanel after the run, tables first, then materialized views (with the engine-assigned
-- UUID and TO INNER UUID pinned, so the implicit storage tables are named `.inner_id.<uuid>` exactly
-- as in the original), then migration 19's ALTERs on event_property_values_mv's storage table.
-- Statements are separated by ";\n\n". Because UUIDs are pinned, replay into an engine where these
-- objects existed before needs DROP DATABASE openpanel SYNC first.

CREATE DATABASE openpanel
ENGINE = Atomic;

CREATE TABLE openpanel.cohort_members
(
    `project_id` String CODEC(ZSTD(3)),
    `cohort_id` String CODEC(ZSTD(3)),
    `profile_id` String CODEC(ZSTD(3)),
    `matched_at` DateTime DEFAULT now(),
    `matching_properties` Map(String, String) CODEC(ZSTD(3)),
    `version` UInt64 DEFAULT 1,
    INDEX idx_profile profile_id TYPE bloom_filter GRANULARITY 1,
    INDEX idx_cohort cohort_id TYPE bloom_filter GRANULARITY 1
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(matched_at)
ORDER BY (project_id, cohort_id, profile_id)
SETTINGS index_granularity = 8192;

CREATE TABLE openpanel.cohort_metadata
(
    `project_id` String,
    `cohort_id` String,
    `member_count` UInt64,
    `last_computed_at` DateTime,
    `sample_profiles` Array(String),
    `version` UInt64 DEFAULT 1
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (project_id, cohort_id)
SETTINGS index_granularity = 8192;

CREATE TABLE openpanel.events
(
    `id` UUID DEFAULT generateUUIDv4(),
    `name` LowCardinality(String),
    `sdk_name` LowCardinality(String),
    `sdk_version` LowCardinality(String),
    `device_id` String CODEC(ZSTD(3)),
    `profile_id` String CODEC(ZSTD(3)),
    `project_id` String CODEC(ZSTD(3)),
    `session_id` String CODEC(LZ4),
    `groups` Array(String) DEFAULT [] CODEC(ZSTD(3)),
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
    `longitude` Nullable(Float32) CODEC(Gorilla(4), LZ4),
    `latitude` Nullable(Float32) CODEC(Gorilla(4), LZ4),
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
    INDEX idx_path path TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_profile_id profile_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (project_id, toDate(created_at), created_at, name)
SETTINGS index_granularity = 8192, enable_block_offset_column = 1, enable_block_number_column = 1;

CREATE TABLE openpanel.events_20251123
(
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
    `longitude` Nullable(Float32) CODEC(Gorilla(4), LZ4),
    `latitude` Nullable(Float32) CODEC(Gorilla(4), LZ4),
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
ENGINE = MergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (project_id, toDate(created_at), profile_id, name)
SETTINGS index_granularity = 8192;

CREATE TABLE openpanel.events_bots
(
    `id` UUID DEFAULT generateUUIDv4(),
    `project_id` String,
    `name` String,
    `type` String,
    `path` String,
    `created_at` DateTime64(3)
)
ENGINE = MergeTree
ORDER BY (project_id, created_at)
SETTINGS index_granularity = 8192;

CREATE TABLE openpanel.events_imports
(
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
    `longitude` Nullable(Float32) CODEC(Gorilla(4), LZ4),
    `latitude` Nullable(Float32) CODEC(Gorilla(4), LZ4),
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
ENGINE = MergeTree
PARTITION BY toYYYYMM(imported_at_meta)
ORDER BY (import_id, created_at)
TTL imported_at_meta + toIntervalDay(7)
SETTINGS index_granularity = 8192;

CREATE TABLE openpanel.groups
(
    `id` String,
    `project_id` String,
    `type` String,
    `name` String,
    `properties` Map(String, String),
    `created_at` DateTime,
    `version` UInt64,
    `deleted` UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version, deleted)
ORDER BY (project_id, id)
SETTINGS index_granularity = 8192;

CREATE TABLE openpanel.gsc_daily
(
    `project_id` String CODEC(ZSTD(3)),
    `date` Date CODEC(Delta(2), LZ4),
    `clicks` UInt32 CODEC(Delta(4), LZ4),
    `impressions` UInt32 CODEC(Delta(4), LZ4),
    `ctr` Float32 CODEC(Gorilla(4), LZ4),
    `position` Float32 CODEC(Gorilla(4), LZ4),
    `synced_at` DateTime DEFAULT now() CODEC(Delta(4), LZ4)
)
ENGINE = ReplacingMergeTree(synced_at)
PARTITION BY toYYYYMM(date)
ORDER BY (project_id, date)
SETTINGS index_granularity = 8192;

CREATE TABLE openpanel.gsc_pages_daily
(
    `project_id` String CODEC(ZSTD(3)),
    `date` Date CODEC(Delta(2), LZ4),
    `page` String CODEC(ZSTD(3)),
    `clicks` UInt32 CODEC(Delta(4), LZ4),
    `impressions` UInt32 CODEC(Delta(4), LZ4),
    `ctr` Float32 CODEC(Gorilla(4), LZ4),
    `position` Float32 CODEC(Gorilla(4), LZ4),
    `synced_at` DateTime DEFAULT now() CODEC(Delta(4), LZ4)
)
ENGINE = ReplacingMergeTree(synced_at)
PARTITION BY toYYYYMM(date)
ORDER BY (project_id, date, page)
SETTINGS index_granularity = 8192;

CREATE TABLE openpanel.gsc_queries_daily
(
    `project_id` String CODEC(ZSTD(3)),
    `date` Date CODEC(Delta(2), LZ4),
    `query` String CODEC(ZSTD(3)),
    `clicks` UInt32 CODEC(Delta(4), LZ4),
    `impressions` UInt32 CODEC(Delta(4), LZ4),
    `ctr` Float32 CODEC(Gorilla(4), LZ4),
    `position` Float32 CODEC(Gorilla(4), LZ4),
    `synced_at` DateTime DEFAULT now() CODEC(Delta(4), LZ4)
)
ENGINE = ReplacingMergeTree(synced_at)
PARTITION BY toYYYYMM(date)
ORDER BY (project_id, date, query)
SETTINGS index_granularity = 8192;

CREATE TABLE openpanel.profile_aliases
(
    `project_id` String,
    `profile_id` String,
    `alias` String,
    `created_at` DateTime
)
ENGINE = MergeTree
ORDER BY (project_id, profile_id, alias, created_at)
SETTINGS index_granularity = 8192;

CREATE TABLE openpanel.profiles
(
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
ENGINE = ReplacingMergeTree(last_seen_at)
PARTITION BY toYYYYMM(created_at)
ORDER BY (project_id, id)
SETTINGS index_granularity = 8192;

CREATE TABLE openpanel.profiles_20260504
(
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
    INDEX idx_first_name first_name TYPE bloom_filter GRANULARITY 1,
    INDEX idx_last_name last_name TYPE bloom_filter GRANULARITY 1,
    INDEX idx_email email TYPE bloom_filter GRANULARITY 1
)
ENGINE = ReplacingMergeTree(created_at)
PARTITION BY toYYYYMM(created_at)
ORDER BY (project_id, id)
SETTINGS index_granularity = 8192;

CREATE TABLE openpanel.self_hosting
(
    `created_at` Date,
    `domain` String,
    `count` UInt64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (domain, created_at)
SETTINGS index_granularity = 8192;

CREATE TABLE openpanel.session_replay_chunks
(
    `project_id` String CODEC(ZSTD(3)),
    `session_id` String CODEC(ZSTD(3)),
    `chunk_index` UInt16,
    `started_at` DateTime64(3) CODEC(DoubleDelta, ZSTD(3)),
    `ended_at` DateTime64(3) CODEC(DoubleDelta, ZSTD(3)),
    `events_count` UInt16,
    `is_full_snapshot` Bool,
    `payload` String CODEC(ZSTD(6))
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(started_at)
ORDER BY (project_id, session_id, started_at, chunk_index)
TTL started_at + toIntervalDay(30)
SETTINGS index_granularity = 8192;

CREATE TABLE openpanel.sessions
(
    `id` String,
    `project_id` String CODEC(ZSTD(3)),
    `profile_id` String CODEC(ZSTD(3)),
    `device_id` String CODEC(ZSTD(3)),
    `groups` Array(String) DEFAULT [] CODEC(ZSTD(3)),
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
    `longitude` Nullable(Float32) CODEC(Gorilla(4), LZ4),
    `latitude` Nullable(Float32) CODEC(Gorilla(4), LZ4),
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
ENGINE = VersionedCollapsingMergeTree(sign, version)
PARTITION BY toYYYYMM(created_at)
ORDER BY (project_id, toDate(created_at), created_at)
SETTINGS index_granularity = 8192;

CREATE TABLE openpanel.sessions_20251123
(
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
    `longitude` Nullable(Float32) CODEC(Gorilla(4), LZ4),
    `latitude` Nullable(Float32) CODEC(Gorilla(4), LZ4),
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
ENGINE = VersionedCollapsingMergeTree(sign, version)
PARTITION BY toYYYYMM(created_at)
ORDER BY (project_id, id, toDate(created_at), profile_id)
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW openpanel.cohort_events_mv UUID 'af3a0f4c-bbb8-4a0f-ab06-4e792b7840c0' TO INNER UUID 'b689e320-0cf7-4463-ab54-1c432e53e481'
(
    `project_id` String,
    `name` LowCardinality(String),
    `created_at` Date,
    `profile_id` String,
    `event_count` UInt64
)
ENGINE = AggregatingMergeTree
ORDER BY (project_id, name, created_at, profile_id)
SETTINGS index_granularity = 8192
AS SELECT
    project_id,
    name,
    toDate(created_at) AS created_at,
    profile_id,
    count() AS event_count
FROM openpanel.events
WHERE profile_id != device_id
GROUP BY
    project_id,
    name,
    created_at,
    profile_id;

CREATE MATERIALIZED VIEW openpanel.dau_mv UUID '420b2206-7bad-4364-9162-98bbbb838c4f' TO INNER UUID '37c512ed-5616-4b28-94ad-ffa6535ce161'
(
    `date` Date,
    `profile_id` AggregateFunction(uniq, String),
    `project_id` String
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMMDD(date)
ORDER BY (project_id, date)
SETTINGS index_granularity = 8192
AS SELECT
    toDate(created_at) AS date,
    uniqState(profile_id) AS profile_id,
    project_id
FROM openpanel.events
GROUP BY
    date,
    project_id;

CREATE MATERIALIZED VIEW openpanel.distinct_event_names_mv UUID '61a067b2-a70d-4e0d-a7ef-5f87c7e4945f' TO INNER UUID 'caa96590-ddfb-46ad-981b-8cda35f87ae3'
(
    `project_id` String,
    `name` LowCardinality(String),
    `created_at` DateTime64(3),
    `event_count` UInt64
)
ENGINE = AggregatingMergeTree
ORDER BY (project_id, name, created_at)
SETTINGS index_granularity = 8192
AS SELECT
    project_id,
    name,
    max(created_at) AS created_at,
    count() AS event_count
FROM openpanel.events
GROUP BY
    project_id,
    name;

CREATE MATERIALIZED VIEW openpanel.event_property_values_mv UUID '6ffb2d87-a18a-405a-a88e-bb4b2634522a' TO INNER UUID '7e7684c9-7d92-444e-8ae0-10dcab33aae0'
(
    `project_id` String,
    `name` LowCardinality(String),
    `property_key` String,
    `property_value` String,
    `created_at` DateTime64(3)
)
ENGINE = AggregatingMergeTree
ORDER BY (project_id, name, property_key, property_value)
SETTINGS index_granularity = 8192
AS SELECT
    project_id,
    name,
    key_value.keys AS property_key,
    key_value.`values` AS property_value,
    created_at
FROM
(
    SELECT
        project_id,
        name,
        untuple(arrayJoin(properties)) AS key_value,
        max(created_at) AS created_at
    FROM openpanel.events
    GROUP BY
        project_id,
        name,
        key_value
)
WHERE (property_value != '') AND (property_key != '') AND (property_key NOT IN ('__duration_from', '__properties_from'))
GROUP BY
    project_id,
    name,
    property_key,
    property_value,
    created_at;

ALTER TABLE openpanel.`.inner_id.6ffb2d87-a18a-405a-a88e-bb4b2634522a` MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';

ALTER TABLE openpanel.`.inner_id.6ffb2d87-a18a-405a-a88e-bb4b2634522a` ADD PROJECTION IF NOT EXISTS epv_keys (SELECT project_id, name, property_key, max(created_at) AS created_at GROUP BY project_id, name, property_key);

-- chdb>=26 compatibility (NOT part of OpenPanel's DDL): chdb/ClickHouse 26.x rejects an
-- AggregatingMergeTree whose non-key column (property_value) is not an aggregate state, unless
-- allow_dimensions_outside_sorting_key = 1; ClickHouse 25.10 (OpenPanel's pinned image) has no such
-- check, so the setting is appended below only so that this file replays on a default chdb.
CREATE MATERIALIZED VIEW openpanel.profile_event_property_summary_mv UUID '81ecd6ff-9a3c-486a-aa16-a494ee09a664' TO INNER UUID '4c058236-eed6-4e50-bb86-7d19e2ebba17'
(
    `project_id` String,
    `profile_id` String,
    `name` LowCardinality(String),
    `property_key` String,
    `property_value` String,
    `event_date` DateTime,
    `event_count` AggregateFunction(count),
    `first_event_time` AggregateFunction(min, DateTime64(3)),
    `last_event_time` AggregateFunction(max, DateTime64(3))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(event_date)
ORDER BY (project_id, profile_id, name, property_key, event_date)
SETTINGS index_granularity = 8192, allow_dimensions_outside_sorting_key = 1
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
FROM openpanel.events
ARRAY JOIN
    mapKeys(properties) AS property_key,
    mapValues(properties) AS property_value
WHERE (profile_id != device_id) AND (property_key != '') AND (property_value != '')
GROUP BY
    project_id,
    profile_id,
    name,
    property_key,
    property_value,
    event_date;

CREATE MATERIALIZED VIEW openpanel.profile_event_summary_mv UUID '9f9aef01-7019-44d6-a856-6529b2eacbe1' TO INNER UUID 'eeefe075-513a-4da5-92ca-a034d08cf1d3'
(
    `project_id` String,
    `profile_id` String,
    `name` LowCardinality(String),
    `event_date` DateTime,
    `event_count` AggregateFunction(count),
    `first_event_time` AggregateFunction(min, DateTime64(3)),
    `last_event_time` AggregateFunction(max, DateTime64(3)),
    `total_duration` AggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(event_date)
ORDER BY (project_id, profile_id, name, event_date)
SETTINGS index_granularity = 8192
AS SELECT
    project_id,
    profile_id,
    name,
    toStartOfDay(created_at) AS event_date,
    countState() AS event_count,
    minState(created_at) AS first_event_time,
    maxState(created_at) AS last_event_time,
    sumState(duration) AS total_duration
FROM openpanel.events
WHERE profile_id != device_id
GROUP BY
    project_id,
    profile_id,
    name,
    event_date;
