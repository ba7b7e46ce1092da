"""The ClickHouse schema, in one place; applied idempotently at start and by test fixtures.

Every statement is portable between chDB and a ClickHouse server of the same version.

Tables (database from settings, default ``stratum``):

- ``speed_windows``: speed-layer window state, one row per (generation, metric, window,
  group, source partition), versioned by the source offset it is complete through, so a
  re-delivered micro-batch overwrites (ReplacingMergeTree) and a restarted worker knows
  which offsets each window already holds.
  Session metrics fill ``first_ms`` / ``last_ms`` (event times of a window's first
  and last event); serving chains a group's windows into sessions with them.
- ``speed_checkpoints``: per (generation, source partition) the last flushed offset and
  the watermark at that point: where a restarted worker resumes.
- ``batch_windows``: batch-layer window state, one row per (metric, window, group,
  version); ``batch_coverage`` says which version is authoritative for each event hour,
  so a batch run that dies before writing coverage changes nothing that is served.
  ``batch_coverage_log`` keeps every coverage row with when it was written: as-of reads
  (``?as_of=``) and the versions a batch run keeps for them.
- ``batch_id_index`` (per archive file, the hashes of its event ids) and
  ``batch_duplicates`` (per id found in several files, its copies): how an incremental
  run knows which copy of an id counts (:mod:`batch_layer.dedup`).
- ``jobs``: batch runs and replays with their progress, latest row per job wins.
- ``kv``: small platform state (e.g. the generation readers use).
- ``side_events``: late events and dead letters as the speed layer routed them (also on
  their Kafka topics), for the API and the dashboard; kept 30 days.
- ``definitions``: versions of the metric definitions document (who, when, why), and
  in ``kv`` which version each generation computes (:mod:`stratum.storage.definitions`).
- ``retired_epochs``: log epochs of the embedded broker that have ended and been retired
  (:mod:`speed_layer.recovery`): their rows are still served, their checkpoints no
  longer count as progress (:mod:`stratum.storage.epochs`).
"""

from __future__ import annotations

STATE_COLUMNS = """
    count UInt64,
    sum Float64,
    min Float64,
    max Float64,
    q_values Array(Float64),
    q_weights Array(UInt64),
    d_hashes Array(UInt64),
    d_theta UInt64 DEFAULT 9223372036854775807,
    first_ms Int64 DEFAULT 0,
    last_ms Int64 DEFAULT 0"""

WINDOW_KEY_COLUMNS = """
    metric LowCardinality(String),
    window_ms UInt32,
    window_start DateTime64(3, 'UTC'),
    dims Map(LowCardinality(String), String),
    group_key String"""


def ddl(database: str) -> list[str]:
    db = database
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"""CREATE TABLE IF NOT EXISTS {db}.speed_windows (
    generation UInt32,{WINDOW_KEY_COLUMNS},
    source_id LowCardinality(String),{STATE_COLUMNS},
    through_offset Int64,
    final UInt8,
    updated_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(through_offset)
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (generation, metric, window_ms, window_start, group_key, source_id)""",
        f"""CREATE TABLE IF NOT EXISTS {db}.speed_checkpoints (
    generation UInt32,
    source_id String,
    through_offset Int64,
    watermark_ms Int64,
    max_event_ms Int64,
    updated_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(through_offset)
ORDER BY (generation, source_id)""",
        f"""CREATE TABLE IF NOT EXISTS {db}.batch_windows (
    {WINDOW_KEY_COLUMNS.strip()},{STATE_COLUMNS},
    version UInt64
) ENGINE = MergeTree
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (metric, window_ms, window_start, version, group_key)""",
        f"""CREATE TABLE IF NOT EXISTS {db}.batch_coverage (
    metric LowCardinality(String),
    hour_start DateTime('UTC'),
    version UInt64,
    horizon DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(version)
ORDER BY (metric, hour_start)""",
        f"""CREATE TABLE IF NOT EXISTS {db}.archive_files (
    path String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY path""",
        f"""CREATE TABLE IF NOT EXISTS {db}.batch_id_index (
    path String,
    hour_start DateTime('UTC'),
    scheme LowCardinality(String),
    id_hashes Array(UInt64)
) ENGINE = ReplacingMergeTree
ORDER BY (scheme, path)""",
        f"""CREATE TABLE IF NOT EXISTS {db}.batch_duplicates (
    event_id String,
    paths Array(String),
    offsets Array(Int64),
    hours Array(DateTime('UTC')),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY event_id""",
        f"""CREATE TABLE IF NOT EXISTS {db}.side_events (
    kind LowCardinality(String),
    recorded_at DateTime64(3, 'UTC'),
    ts Nullable(DateTime64(3, 'UTC')),
    event_id String,
    reason String,
    topic String,
    partition UInt32,
    offset Int64,
    payload String
) ENGINE = MergeTree
PARTITION BY toYYYYMM(recorded_at)
ORDER BY (kind, recorded_at)
TTL toDateTime(recorded_at) + INTERVAL 30 DAY""",
        f"""CREATE TABLE IF NOT EXISTS {db}.jobs (
    job_id String,
    kind LowCardinality(String),
    trigger LowCardinality(String),
    params String,
    state LowCardinality(String),
    units_done UInt64,
    units_total UInt64,
    rows_in UInt64,
    rows_out UInt64,
    horizon Nullable(DateTime64(3, 'UTC')),
    created_at DateTime64(3, 'UTC'),
    started_at Nullable(DateTime64(3, 'UTC')),
    finished_at Nullable(DateTime64(3, 'UTC')),
    error String,
    updated_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY job_id""",
        # Migrations of tables created by earlier versions: idempotent.
        *(
            f"ALTER TABLE {db}.{table} ADD COLUMN IF NOT EXISTS {column}"
            for table in ("speed_windows", "batch_windows")
            for column in (
                "d_hashes Array(UInt64) AFTER q_weights",
                "d_theta UInt64 DEFAULT 9223372036854775807 AFTER d_hashes",
                "first_ms Int64 DEFAULT 0 AFTER d_theta",
                "last_ms Int64 DEFAULT 0 AFTER first_ms",
            )
        ),
        f"""CREATE TABLE IF NOT EXISTS {db}.kv (
    key String,
    value String,
    updated_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY key""",
        f"""CREATE TABLE IF NOT EXISTS {db}.retired_epochs (
    epoch String,
    sources UInt32,
    windows UInt64,
    events UInt64,
    retired_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(retired_at)
ORDER BY epoch""",
        f"""CREATE TABLE IF NOT EXISTS {db}.batch_coverage_log (
    metric LowCardinality(String),
    hour_start DateTime('UTC'),
    version UInt64,
    horizon DateTime64(3, 'UTC'),
    recorded_at DateTime64(3, 'UTC')
) ENGINE = MergeTree
ORDER BY (metric, hour_start, recorded_at)""",
        f"""CREATE TABLE IF NOT EXISTS {db}.definitions (
    version UInt64,
    document String,
    author String,
    reason String,
    change String,
    created_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY version""",
    ]
