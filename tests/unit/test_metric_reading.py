"""How both layers read archived fields (``stratum.metric_frames.typed_fields`` through
``stratum.archive.scan_fields``): files written before ingest rejected non-finite text,
or with a numeric dimension stored as Float64, read as the rules say today."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from stratum import archive

TS_MS = 1_795_309_200_000


def _write(root: Path, name: str, columns: dict[str, pl.Series]) -> Path:
    """An archive file as older versions wrote it: the columns as given."""
    height = len(next(iter(columns.values())))
    frame = pl.DataFrame(
        {
            "event_id": [f"{name}{i}" for i in range(height)],
            "ts": pl.Series([TS_MS] * height).cast(pl.Datetime("ms", "UTC")),
            "type": ["purchase"] * height,
            "offset": list(range(height)),
            **columns,
        }
    )
    path = archive.hour_dir(root, TS_MS - TS_MS % archive.HOUR_MS) / f"{name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)
    return path


def test_non_finite_values_in_old_files_do_not_count(tmp_path: Path) -> None:
    files = [
        _write(tmp_path, "text", {"amount": pl.Series(["NaN", "10", "-inf", "x"])}),
        _write(tmp_path, "float", {"amount": pl.Series([float("inf"), 2.5])}),
    ]
    read = archive.scan_fields(files, ["amount"], []).collect()
    assert read["amount"].to_list() == [None, 10.0, None, None, None, 2.5]
