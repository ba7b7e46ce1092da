"""A Parquet archive of synthetic events, written once with Stratum's own archive writer
(:func:`stratum.archive.write_partition_range`) and reused by the batch and query
benchmarks.

Layout and naming are the archiver's: one file per (log partition, offset range, event
hour). Events are spread evenly over 24 hours ending at the top of the hour the cache was
made, 4 partitions by the hash of ``event_id`` (as ingest routes them), one file per
partition per 10 minutes of event time, events of one 500-event "message" sharing an
offset. The cache lives in ``$STRATUM_BENCH_CACHE`` (default ``~/.cache/stratum-
benchmarks``) as ``archive-<n>/``; ``meta.json`` records what is in it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import synthetic_events
from stratum.archive import HOUR_MS, archive_root, list_files, write_partition_range
from stratum.producer import partition_for

PARTITIONS = 4
HOURS = 24
FILE_SPAN_MS = 10 * 60_000
EVENTS_PER_MESSAGE = 500
LAYOUT_VERSION = 1


@dataclass(frozen=True)
class Archive:
    data_dir: Path  # a Stratum data dir: the archive is data_dir/archive/events
    events: int
    start_ms: int
    end_ms: int
    files: int

    @property
    def root(self) -> Path:
        return archive_root(self.data_dir)


def cache_dir() -> Path:
    configured = os.environ.get("STRATUM_BENCH_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "stratum-benchmarks"


def ensure_archive(events: int) -> Archive:
    """The cached archive of ``events`` events, written first if it is not there."""
    data_dir = cache_dir() / f"archive-{events}"
    meta_path = data_dir / "meta.json"
    if meta_path.exists():
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        if meta.get("layout") == LAYOUT_VERSION and meta.get("events") == events:
            return Archive(data_dir, events, meta["start_ms"], meta["end_ms"], meta["files"])
    if data_dir.exists():
        shutil.rmtree(data_dir)
    started = time.perf_counter()
    end_ms = int(time.time() * 1000) // HOUR_MS * HOUR_MS
    start_ms = end_ms - HOURS * HOUR_MS
    root = archive_root(data_dir)
    offsets = dict.fromkeys(range(PARTITIONS), 0)
    per_hour = events // HOURS
    for hour in range(HOURS):
        count = per_hour if hour < HOURS - 1 else events - per_hour * (HOURS - 1)
        hour_start = start_ms + hour * HOUR_MS
        batch = synthetic_events(
            count, hour_start, hour_start + HOUR_MS, seed=1000 + hour, id_prefix=f"a{hour}-"
        )
        chunks: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
        for event in batch:
            span = (event["ts"] - hour_start) // FILE_SPAN_MS
            chunks[(partition_for(event["event_id"], PARTITIONS), span)].append(event)
        del batch
        for (partition, _), chunk in sorted(chunks.items(), key=lambda kv: kv[0][1]):
            first = offsets[partition]
            pairs = [(first + i // EVENTS_PER_MESSAGE, e) for i, e in enumerate(chunk)]
            offsets[partition] = pairs[-1][0] + 1
            write_partition_range(root, "bench", partition, pairs)
        print(
            f"  archive: hour {hour + 1}/{HOURS} written ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    files = len(list_files(root))
    meta_path.write_text(
        json.dumps(
            {
                "layout": LAYOUT_VERSION,
                "events": events,
                "start_ms": start_ms,
                "end_ms": end_ms,
                "files": files,
            }
        )
    )
    print(
        f"  archive of {events:,} events ({files} files) written in "
        f"{time.perf_counter() - started:.0f} s to {data_dir}",
        flush=True,
    )
    return Archive(data_dir, events, start_ms, end_ms, files)


def mirror(archive: Archive, target: Path) -> Path:
    """A data dir whose archive links to the cached files, so a benchmark can add files
    (a late hour) without touching the cache. Returns the new data dir."""
    for path in list_files(archive.root):
        relative = path.relative_to(archive.data_dir)
        link = target / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path)
    return target
