"""Stratum's own pipeline metrics (Prometheus), one registry per process, exported at
``GET /metrics``. Layers increment these; the health endpoint and the dashboard read
the same numbers."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_ACCEPTED = Counter("stratum_ingest_events_accepted_total", "Events accepted by ingest")
EVENTS_REJECTED = Counter("stratum_ingest_events_rejected_total", "Events rejected by ingest")
SPEED_EVENTS = Counter("stratum_speed_events_total", "Events aggregated by the speed layer")
SPEED_LATE = Counter(
    "stratum_speed_late_events_total",
    "Events later than the allowed lateness (sent to the late topic)",
)
SPEED_SKIPPED = Counter(
    "stratum_speed_replayed_events_skipped_total",
    "Re-delivered events already held by a stored window",
)
SPEED_DUPLICATES = Counter(
    "stratum_speed_duplicates_dropped_total",
    "Events dropped by the speed layer as recent duplicates",
)
DEAD_LETTERS = Counter("stratum_dead_letters_total", "Malformed log records dead-lettered")
SPEED_FLUSH = Histogram("stratum_speed_flush_seconds", "Duration of speed-layer upserts")
SPEED_ROWS = Counter("stratum_speed_rows_upserted_total", "Window rows upserted by speed")
SPEED_FLUSH_ERRORS = Counter("stratum_speed_flush_errors_total", "Failed speed flushes")
WATERMARK = Gauge("stratum_speed_watermark_ms", "Watermark per log partition", ["partition"])
ARCHIVE_EVENTS = Counter("stratum_archive_events_total", "Events written to the archive")
ARCHIVE_FILES = Counter("stratum_archive_files_total", "Parquet files written to the archive")
ARCHIVE_FLUSH = Histogram(
    "stratum_archive_flush_seconds", "Duration of archive writes (a flush's Parquet files)"
)
ARCHIVE_FLUSH_ERRORS = Counter("stratum_archive_flush_errors_total", "Failed archive writes")
BATCH_DURATION = Histogram(
    "stratum_batch_duration_seconds",
    "Batch recompute duration",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
)
BATCH_RUNS = Counter("stratum_batch_runs_total", "Batch runs by outcome", ["state"])
BATCH_ROWS_IN = Counter("stratum_batch_rows_in_total", "Archived events read by batch runs")
BATCH_ROWS_OUT = Counter("stratum_batch_rows_out_total", "Window rows written by batch runs")
SERVING_READ = Histogram(
    "stratum_serving_read_seconds",
    "Metric series reads, end to end",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
SERVING_FINAL_CACHE = Counter(
    "stratum_serving_final_cache_reads_total",
    "Cacheable metric reads, by whether the final-bucket cache held their shape",
    ["result"],
)
SERVING_TAIL_BUCKETS = Counter(
    "stratum_serving_tail_buckets_total",
    "Open buckets of metric reads, by whether they were read again or reused unchanged",
    ["answer"],
)
