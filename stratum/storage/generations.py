"""Speed-view generations and the Kappa hand-off, kept in ClickHouse's ``kv`` table so
every process (worker, API, replay runner) sees the same state.

- ``live_generation``: the generation readers use and live workers write.
- ``handoff``: a replay's new generation asking live workers to pause at their next
  flush and report how far they got (``position:<source>``), so the replay can pass
  those offsets before readers and workers switch to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from stratum.storage.client import Storage

LIVE = "live_generation"
HANDOFF = "handoff"
POSITION = "position:"


@dataclass(frozen=True, slots=True)
class GenerationState:
    live: int
    handoff: int | None
    # The definitions version the live generation computes; not part of the hand-off
    # state's identity (compare=False).
    definitions: int | None = field(default=None, compare=False)


def _put(storage: Storage, key: str, value: str) -> None:
    storage.insert("kv", [[key, value, datetime.now(tz=UTC)]], ("key", "value", "updated_at"))


def read_state(storage: Storage) -> GenerationState:
    """The live generation, a hand-off, and the definitions version bound to the live
    generation (``defs:<generation>``, :mod:`stratum.storage.definitions`), in one read."""
    rows = dict(
        storage.query(
            f"SELECT key, value FROM {storage.database}.kv FINAL "
            "WHERE key IN ({a:String}, {b:String}) OR startsWith(key, 'defs:')",
            {"a": LIVE, "b": HANDOFF},
        )
    )
    handoff = rows.get(HANDOFF) or ""
    live = int(rows.get(LIVE) or 0)
    binding = rows.get(f"defs:{live}") or ""
    version = int(orjson.loads(binding)["version"]) if binding else None
    return GenerationState(live, int(handoff) if handoff else None, version)


def live_generation(storage: Storage) -> int:
    return read_state(storage).live


def next_generation(storage: Storage) -> int:
    db = storage.database
    rows = storage.query(f"SELECT max(generation) FROM {db}.speed_checkpoints")
    return max(int(rows[0][0] or 0), live_generation(storage)) + 1


def set_live(storage: Storage, generation: int) -> None:
    """The atomic switch: one row; readers pick it up on their next query."""
    _put(storage, LIVE, str(generation))


def request_handoff(storage: Storage, generation: int | None) -> None:
    _put(storage, HANDOFF, "" if generation is None else str(generation))


def report_position(storage: Storage, source_id: str, through_offset: int) -> None:
    _put(storage, POSITION + source_id, str(through_offset))


def clear_positions(storage: Storage, sources: list[str]) -> None:
    for source in sources:
        _put(storage, POSITION + source, "")


def positions(storage: Storage) -> dict[str, int]:
    rows = storage.query(
        f"SELECT key, value FROM {storage.database}.kv FINAL "
        "WHERE startsWith(key, {p:String}) AND value != ''",
        {"p": POSITION},
    )
    return {str(k).removeprefix(POSITION): int(v) for k, v in rows}


def drop_generation(storage: Storage, generation: int) -> None:
    """Delete a generation's rows (an asynchronous mutation)."""
    for table in ("speed_windows", "speed_checkpoints"):
        storage.command(
            f"ALTER TABLE {storage.database}.{table} DELETE WHERE generation = {int(generation)}"
        )


_WINDOW_COLUMNS = (
    "metric, window_ms, window_start, dims, group_key, source_id, count, sum, min, max, "
    "q_values, q_weights, d_hashes, d_theta, first_ms, last_ms, through_offset, final, "
    "updated_at"
)


def carry_over(storage: Storage, old: int, new: int, before_ms: int) -> int:
    """Copy generation ``old``'s windows that start before ``before_ms`` into ``new``
    (newest row of each, with its own ``through_offset``), except those batch serves (their
    hour is covered and they end at or before its horizon, as serving decides); returns
    how many rows ``new`` now holds before ``before_ms``. A replay from a later time
    rebuilds only what starts from there; this keeps everything older served."""
    db = storage.database
    storage.command(f"""
        INSERT INTO {db}.speed_windows (generation, {_WINDOW_COLUMNS})
        SELECT {int(new)}, {", ".join(f"t.{c.strip()}" for c in _WINDOW_COLUMNS.split(","))}
        FROM {db}.speed_windows AS t FINAL
        LEFT JOIN (SELECT metric, hour_start, version, horizon
                   FROM {db}.batch_coverage FINAL) AS c
            ON c.metric = t.metric AND c.hour_start = toStartOfHour(t.window_start)
        WHERE t.generation = {int(old)}
          AND t.window_start < fromUnixTimestamp64Milli({int(before_ms)}, 'UTC')
          AND NOT (c.version != 0
                   AND t.window_start + toIntervalMillisecond(t.window_ms) <= c.horizon)
        SETTINGS join_use_nulls = 0""")
    rows = storage.query(
        f"SELECT count() FROM {db}.speed_windows FINAL WHERE generation = {{g:UInt32}} "
        "AND window_start < fromUnixTimestamp64Milli({b:Int64}, 'UTC')",
        {"g": new, "b": before_ms},
    )
    return int(rows[0][0])
