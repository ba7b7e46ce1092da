"""One number, one group: a numeric dimension value is the same group whatever its JSON
spelling (``1``, ``1.0``, ``"1"``) and whatever column type its batch gave it in the
frame or the archive (Float64 when every value of the batch is a number, text
otherwise), in the speed layer, the batch layer, ``where`` filters and the Python
reference (``tests.reference.group_of``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from batch_layer.dedup import Snapshot
from batch_layer.jobs.recompute import read_events, window_rows
from speed_layer.aggregator import PartitionAggregator
from stratum import archive
from stratum.event_frames import decode_messages, events_frame
from stratum.metric_frames import dim_columns
from stratum.metrics import MetricDefinition, parse_catalog
from tests.reference import group_of, matches

T0 = 1_795_309_200_000  # a minute boundary
FAR_FUTURE = 2**50
TIERS: list[Any] = [1, 1.0, "1", 2.5, "2.5"]
EXPECTED = {"1": 3, "2.5": 2}


def _metric(**where: Any) -> MetricDefinition:
    return parse_catalog(
        {"metric": [{"name": "m", "aggregation": "count", "dimensions": ["tier"], "where": where}]}
    ).metrics[0]


def _messages() -> list[tuple[int, bytes]]:
    """Offsets 0-1: numbers only (a Float64 column); 2-4: one message each, decoded in
    separate batches, mixed with text (a String column)."""

    def line(i: int, tier: Any) -> bytes:
        return orjson.dumps({"event_id": f"e{i}", "ts": T0 + i, "type": "view", "tier": tier})

    return [(i, line(i, tier)) for i, tier in enumerate(TIERS)]


def _frames() -> list[pl.DataFrame]:
    messages = _messages()
    numbers = decode_messages(messages[:2], now_ms=FAR_FUTURE).frame
    mixed = decode_messages(messages[2:], now_ms=FAR_FUTURE).frame
    assert numbers.schema["tier"] == pl.Float64 and mixed.schema["tier"] == pl.String
    return [numbers, mixed]


@pytest.mark.parametrize(
    "where", [{}, {"tier": ["1", "2.5"]}, {"tier": [1, 2.5]}, {"tier": ["1.0", "2.50"]}], ids=str
)
def test_the_speed_layer_counts_one_group_per_number(where: dict[str, Any]) -> None:
    agg = PartitionAggregator([_metric(**where)], lateness_ms=60_000)
    for frame in _frames():
        agg.add_frame(frame, int(frame["offset"].max()), now_ms=FAR_FUTURE)
    assert {key[2][0]: state.count for key, state in agg.windows.items()} == EXPECTED


def _batch_groups(files: list[Path], metric: MetricDefinition) -> dict[str, int]:
    catalog = parse_catalog({"metric": [metric.model_dump(exclude_none=True)]})
    paths = sorted(str(path) for path in files)
    snapshot = Snapshot(
        paths=paths, hours=[archive.hour_of_file(Path(p)) for p in paths], processed=frozenset()
    )
    events = read_events(snapshot, set(snapshot.hours), catalog)
    rows = window_rows(events.lazy(), metric, horizon_ms=FAR_FUTURE).collect()
    return dict(zip(rows[dim_columns(metric)[0]].to_list(), rows["count"].to_list(), strict=True))


@pytest.mark.parametrize("where", [{}, {"tier": "1"}, {"tier": 1}], ids=str)
def test_the_batch_layer_reads_archived_numbers_as_one_group(
    tmp_path: Path, where: dict[str, Any]
) -> None:
    files = [
        path
        for i, frame in enumerate(_frames())
        for path in archive.write_frame(
            tmp_path, "ep", i, frame, int(frame["offset"].min()), int(frame["offset"].max())
        )
    ]
    # A file as written before numbers had one text: mixed values as Python wrote them.
    old = events_frame(
        [(9, {"event_id": "o1", "ts": T0, "type": "view", "tier": "x"})]
    ).with_columns(pl.Series("tier", ["1.0"]))
    assert pl.read_parquet(files[0]).schema["tier"] == pl.Float64
    metric = _metric(**where)
    expected = EXPECTED if not where else {"1": 3}
    assert _batch_groups(files, metric) == expected
    archive.write_frame(tmp_path, "ep", 9, old, 9, 9)
    # Old text columns keep the text they hold: "1.0" stays its own value there.
    assert _batch_groups(archive.list_files(tmp_path), _metric()) == {**EXPECTED, "1.0": 1}


@pytest.mark.parametrize(
    ("value", "group"),
    [(1, "1"), (1.0, "1"), ("1", "1"), (2.5, "2.5"), ("2.5", "2.5"), ("01", "01"), (None, "")],
)
def test_the_python_reference_groups_numbers_the_same_way(value: Any, group: str) -> None:
    event = {"event_id": "e", "ts": T0, "type": "view", "tier": value}
    metric = _metric()
    assert group_of(metric, event) == (group,)
    assert matches(_metric(tier="1.0"), event) == (group == "1")


def test_a_numeric_where_value_is_its_canonical_text() -> None:
    assert _metric(tier=1.0).where == {"tier": "1"}
    assert _metric(tier=[2.5, "x"]).where == {"tier": ["2.5", "x"]}
