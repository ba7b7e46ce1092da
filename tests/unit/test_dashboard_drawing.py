"""How a series is drawn (issue 20): the still-filling window apart from complete ones,
gaps kept as gaps, a colour-blind-safe palette, and "top N + other" the same in the
legend, the summary and the table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dashboard.api_models import SeriesResponse
from dashboard.drawing import (
    OTHER_COLOUR,
    PALETTE,
    colour_of,
    drawn_points,
    newest_complete,
    split_open,
    with_gaps,
)
from dashboard.explorer_state import table_rows
from dashboard.explorer_view import summary_text, table_columns
from dashboard.figures import metric_figure
from dashboard.formatting import fmt_rate
from dashboard.metric_cards import kpi
from dashboard.series import MAX_LINES, Line, lines_of
from tests.served import metric_info

T0 = datetime(2026, 11, 21, 10, 0)
NOW = datetime(2026, 11, 21, 10, 30, 20, tzinfo=UTC)  # 10:30 is filling, 10:29 settling
EVENTS = metric_info(name="events", aggregation="count", dimensions=("country",))


def minutes(*ms: int) -> list[datetime]:
    return [T0 + timedelta(minutes=m) for m in ms]


def line(*ms: int) -> Line:
    return Line(
        "DE",
        minutes(*ms),
        [float(10 + m) for m in ms],
        ["speed"] * len(ms),
        counts=[10 + m for m in ms],
        group={"country": "DE"},
    )


def response(groups: dict[str, list[int]]) -> SeriesResponse:
    return SeriesResponse.model_validate(
        {
            "metric": "events",
            "step": "1m",
            "start": T0.replace(tzinfo=UTC),
            "end": NOW,
            "series": [
                {
                    "group": {"country": g},
                    "points": [
                        {
                            "t": (T0 + timedelta(minutes=m)).replace(tzinfo=UTC),
                            "value": 100.0 + len(ms),
                            "count": 100 + len(ms),
                        }
                        for m in ms
                    ],
                }
                for g, ms in groups.items()
            ],
        }
    )


def test_a_missing_window_breaks_the_line() -> None:
    drawn, gaps = with_gaps(line(0, 1, 2, 8, 9), "1m")
    assert gaps == 1
    assert drawn.x[3] == T0 + timedelta(minutes=3) and drawn.y[3] is None
    assert drawn.source[3] == "gap" and len(drawn.x) == 6
    assert with_gaps(line(0, 1, 2), "1m")[1] == 0


def test_the_filling_windows_are_split_off_and_joined_to_the_last_complete_one() -> None:
    pieces = split_open(line(26, 27, 28, 29, 30), "1m", NOW.replace(tzinfo=None))
    assert pieces.done.x == minutes(26, 27, 28)
    assert pieces.open is not None and pieces.open.x == minutes(28, 29, 30)
    assert drawn_points([pieces]) == 5  # the joining point is one point, not two
    after_gap = split_open(line(20, 30), "1m", NOW.replace(tzinfo=None))
    assert after_gap.open is not None and after_gap.open.x == minutes(30)  # no bridge
    settled = split_open(line(1, 2), "1m", NOW.replace(tzinfo=None))
    assert settled.open is None


def test_headlines_come_from_the_newest_complete_window() -> None:
    xs = minutes(27, 28, 29, 30)
    assert newest_complete(
        [x.replace(tzinfo=UTC) for x in xs], [5.0, 6.0, 7.0, 1.0], "1m", NOW
    ) == (xs[1].replace(tzinfo=UTC), 6.0)
    data = response({"DE": [27, 28, 29, 30]})
    value, label = kpi(EVENTS, data, NOW)
    assert "104" in str(value) and "10:28:00" in str(label)


def test_palette_has_ten_distinct_hues_and_other_is_grey() -> None:
    assert len(set(PALETTE)) == 10 >= MAX_LINES
    assert colour_of("other", 3) == OTHER_COLOUR and OTHER_COLOUR not in PALETTE
    assert colour_of("DE", 0) != colour_of("FR", 1)


def test_legend_summary_and_table_agree_on_top_n_and_other() -> None:
    groups = {f"c{i:02d}": [10, 11, 12][: 1 + i % 3] for i in range(13)}
    data = response(groups)
    lines = lines_of(data, additive=True)
    figure = metric_figure(
        EVENTS, lines, start=data.start, end=data.end, step="1m", horizon=None, now=NOW
    )
    legend = {t.name for t in figure.data if t.showlegend is not False}
    assert len(legend) == MAX_LINES and "other" in legend
    summary = summary_text(EVENTS, data, NOW)
    assert f"in {MAX_LINES} lines (top {MAX_LINES - 1} of 13 groups + other of 4)" in summary
    table_groups = {row["group"] for row in table_rows(data, now=NOW)}
    assert len(table_groups) == MAX_LINES and "other (4 groups)" in table_groups


def test_summary_counts_drawn_points_and_warns_of_gaps() -> None:
    data = response({"DE": [0, 1, 7, 8, 30]})
    summary = summary_text(EVENTS, data, NOW)
    assert summary.startswith("5 points in 1 line")
    assert "⚠ 2 gaps (missing windows)" in summary and "last window in progress" in summary
    notes = {row["window"][11:16]: row["note"] for row in table_rows(data, now=NOW)}
    assert notes["10:07"] == "after 5 missing windows"
    assert notes["10:30"].startswith("in progress") and notes["10:01"] == ""


def test_open_window_is_a_dashed_trace_under_an_in_progress_band() -> None:
    data = response({"DE": [26, 27, 28, 29, 30]})
    figure = metric_figure(
        EVENTS,
        lines_of(data, additive=True),
        start=data.start,
        end=data.end,
        step="1m",
        horizon=None,
        now=NOW,
    )
    dashed = [t for t in figure.data if t.line.dash == "dot"]
    assert len(dashed) == 1 and dashed[0].customdata[-1] == "in progress"
    assert dashed[0].customdata[0] == "speed"  # the joining point is complete, not filling
    assert any(a.text == "in progress" for a in figure.layout.annotations)
    solid = next(t for t in figure.data if t.line.dash == "solid")
    assert solid.connectgaps is False


def test_numbers_read_the_same_everywhere() -> None:
    users = metric_info(name="users", aggregation="distinct", field="user_id")
    columns = {c["id"]: c for c in table_columns(users)}
    assert columns["value"]["format"]["specifier"] == ",.0f"
    assert columns["events"]["format"]["specifier"] == ",.0f"
    assert fmt_rate(12_404.0) == "12,404/s" and fmt_rate(18.46) == "18.5/s"
    assert fmt_rate(0.25) == "0.25/s" and fmt_rate(4 / 3600) == "0.0011/s"
    assert fmt_rate(0.0) == "0/s"


def test_throughput_axis_fits_the_steady_rate_not_the_backfill_spike() -> None:
    from dashboard.pipeline_view import clip_top

    steady = [150.0, 160.0, 155.0, 148.0, 152.0, 158.0, 151.0, 149.0, 154.0]
    top, peak = clip_top([12_000.0, 9_000.0, *steady])
    assert 160 < top < 400 and peak == 12_000.0
    assert clip_top(steady) == (160.0 * 1.15, None)
    assert clip_top([None, None]) == (1.0, None)


def test_local_time_shifts_clocks_axes_and_labels() -> None:
    from dashboard.formatting import display_zone, fmt_clock, zone_name
    from dashboard.series import to_naive_utc

    moment = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    with display_zone("local", 90):
        assert fmt_clock(moment) == "11:30:00" and zone_name() == "UTC+01:30"
        assert to_naive_utc(moment) == datetime(2026, 11, 21, 11, 30)
    with display_zone("utc", 90):
        assert fmt_clock(moment) == "10:00:00" and zone_name() == "UTC"
    assert to_naive_utc(moment) == datetime(2026, 11, 21, 10, 0)


def test_batch_runs_sit_on_the_bottom_edge_with_a_legend_entry() -> None:
    """Not on the top edge, where the horizon label is ("batch horizo▼▼▼07:17")."""
    from dashboard.figures import message_figure
    from dashboard.series import RunMark

    data = response({"DE": [20, 21, 22]})
    run = RunMark(datetime(2026, 11, 21, 10, 21, tzinfo=UTC), "batch run succeeded")
    figure = metric_figure(
        EVENTS,
        lines_of(data, additive=True),
        start=data.start,
        end=data.end,
        step="1m",
        horizon=T0 + timedelta(minutes=22),
        runs=[run],
        now=NOW,
    )
    runs = [t for t in figure.data if t.name == "batch run"]
    assert len(runs) == 1 and runs[0].yaxis == "y2" and runs[0].y == (0.03,)
    assert figure.layout.showlegend is True
    assert not any(a.text == "▼" for a in figure.layout.annotations)
    long = message_figure(
        "No window is held by both layers yet: drift appears once a batch run has covered windows"
    )
    assert all(len(part) <= 40 for part in long.layout.annotations[0].text.split("<br>"))
