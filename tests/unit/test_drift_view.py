"""The drift page's pieces from a ``/v1/drift`` answer: reasons, tiles, bars, table."""

from __future__ import annotations

from dashboard.api_models import Drift
from dashboard.drift_view import NO_DRIFT_YET, drift_figure, drift_rows, drift_tiles, reason_of
from tests.served import metric_info

METRIC = metric_info(name="events", aggregation="count")
T = "2026-11-22T10:00:00Z"


def _drift(*points: dict[str, object], by_reason: dict[str, int] | None = None) -> Drift:
    return Drift.model_validate(
        {
            "metric": "events",
            "start": T,
            "end": T,
            "summary": {
                "windows_compared": len(points),
                "windows_off": sum(1 for p in points if p["reason"] != "none"),
                "max_abs_difference": 2.0,
                "max_abs_relative": 0.25,
                "by_reason": by_reason or {},
            },
            "points": list(points),
        }
    )


def _point(minute: int, speed: float | None, batch: float, reason: str) -> dict[str, object]:
    diff = None if speed is None else speed - batch
    return {
        "t": f"2026-11-22T10:{minute:02d}:00Z",
        "speed": speed,
        "batch": batch,
        "difference": diff,
        "relative": None if diff is None else diff / batch,
        "speed_count": int(speed or 0),
        "batch_count": int(batch),
        "reason": reason,
    }


def test_reasons_are_read_without_their_detail() -> None:
    drift = _drift(
        _point(0, 6, 8, "late events: 2 arrived after the watermark"), _point(1, 5, 5, "none")
    )
    assert [reason_of(p) for p in drift.points] == ["late events", "none"]


def test_tiles_name_the_main_cause_and_the_share_off() -> None:
    drift = _drift(
        _point(0, 6, 8, "late events: 2 arrived after the watermark"),
        _point(1, 5, 5, "none"),
        _point(2, 9, 10, "late events: 1 arrived after"),
        _point(3, 3, 3, "none"),
        by_reason={"late events": 2, "none": 2},
    )
    texts = {
        tile.to_plotly_json()["props"]["data-drift"]: [c.children for c in tile.children]
        for tile in drift_tiles(drift)
    }
    assert texts["off"][1:] == ["2", "50.0% of those compared"]
    assert texts["largest"][1] == "25.00%"
    assert texts["cause"][1] == "late events"


def test_bars_per_reason_and_the_table_lists_only_windows_that_were_off() -> None:
    drift = _drift(
        _point(0, 6, 8, "late events: 2 arrived after the watermark"),
        _point(1, 5, 5, "none"),
        _point(2, None, 4, "late events: 4 arrived"),
    )
    figure = drift_figure(drift, METRIC)
    assert [trace.name for trace in figure.data] == ["late events", "none"]
    assert list(figure.data[0].y) == [-25.0, -100.0]  # a window speed never held
    rows = drift_rows(drift, METRIC)
    assert [r["window"] for r in rows] == ["10:00:00", "10:02:00"]
    assert rows[0]["relative"] == "-25.000%" and rows[1]["speed"] == "–"
    assert rows[1]["relative"] == "-100.000%"
    assert rows[1]["difference"] == "not held by speed"
    assert rows[1]["events"] == "0 / 4"


def test_no_common_windows_says_so() -> None:
    figure = drift_figure(_drift(), METRIC)
    # Wrapped for narrow screens (Plotly does not wrap): the same words, broken by <br>.
    assert figure.layout.annotations[0].text.replace("<br>", " ") == NO_DRIFT_YET
