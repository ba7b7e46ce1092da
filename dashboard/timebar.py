"""The time bar every data page carries: range (presets or custom), refresh interval and
time zone (UTC or the browser's local time), all kept in the URL.

``?range=1h`` or ``?range=custom&start=2026-11-21T09:00&end=now``; ``&refresh=10s``
(``off`` stops the page's refresh); ``&tz=local``. The same keys on every page, so a
link reproduces what was on screen. The controls have pattern ids
``{"type": "timebar-<part>", "page": <page>}``; the clientside callbacks here write the
URL (merging into whatever else the page keeps there) and set the page's interval.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dash import MATCH, Dash, Input, Output, dcc, html
from dash.development.base_component import Component

from dashboard import ids
from dashboard.components import attrs
from dashboard.explorer_state import parse_moment

PRESETS: dict[str, timedelta] = {
    "15m": timedelta(minutes=15),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
CUSTOM = "custom"
REFRESH: dict[str, int] = {
    "2s": 2_000,
    "5s": 5_000,
    "10s": 10_000,
    "30s": 30_000,
    "1m": 60_000,
    "5m": 300_000,
    "off": 0,
}
NEVER_MS = 2**31 - 1  # the longest interval a browser timer takes: "off"
ZONES = {"utc": "UTC", "local": "Local"}
CUSTOM_SHOWN = {"display": "flex"}
HIDDEN = {"display": "none"}


def label(key: str) -> str:
    """ "15m" -> "15 min", "1h" -> "1 h"."""
    if key in (CUSTOM, "off"):
        return key
    number, unit = key[:-1], key[-1]
    return f"{number} {({'m': 'min', 's': 's', 'h': 'h', 'd': 'd'})[unit]}"


@dataclass(frozen=True)
class TimeView:
    range: str
    start: str = ""
    end: str = ""
    refresh: str = "off"
    tz: str = "utc"


def _text(params: Mapping[str, Any], key: str) -> str:
    value = params.get(key)
    if isinstance(value, list):
        value = value[-1] if value else None
    return str(value).strip() if value is not None else ""


def from_params(
    params: Mapping[str, Any], *, ranges: Sequence[str], default_range: str, default_refresh: str
) -> TimeView:
    """Whatever the URL says, made safe: unknown values fall back to the page's defaults."""
    range_, refresh, tz = _text(params, "range"), _text(params, "refresh"), _text(params, "tz")
    return TimeView(
        range=range_ if range_ in (*ranges, CUSTOM) else default_range,
        start=_text(params, "start"),
        end=_text(params, "end"),
        refresh=refresh if refresh in REFRESH else default_refresh,
        tz=tz if tz in ZONES else "utc",
    )


def bounds(
    range_: str | None, start: str | None, end: str | None, now: datetime, fallback: str
) -> tuple[datetime, datetime, str | None]:
    """(start, end, problem): a custom range that does not parse falls back to
    ``fallback`` and says why, so the page still shows something."""
    if range_ in PRESETS:
        return now - PRESETS[range_], now, None
    if range_ == CUSTOM:
        try:
            if not start:
                raise ValueError("Enter a start time for the custom range.")
            t0 = parse_moment(start)
            t1 = parse_moment(end) if end and end.strip() != "now" else now
            if t1 <= t0:
                raise ValueError("The end of the custom range must be after its start.")
            return t0, t1, None
        except ValueError as exc:
            problem = str(exc)
    else:
        problem = None
    return now - PRESETS[fallback], now, problem


def interval_ms(refresh: str | None, default_ms: int) -> int:
    ms = REFRESH.get(refresh or "", default_ms)
    return ms or NEVER_MS


def _field(text: str, control: Component, class_name: str = "") -> html.Div:
    return html.Div(
        [html.Label(text, className="field-label"), control],
        className=f"field {class_name}".strip(),
    )


def time_bar(page: str, view: TimeView, *, ranges: Sequence[str] | None) -> html.Div:
    """Range (when the page has one), refresh and zone controls for ``page``."""
    parts: list[Component] = []
    if ranges is not None:
        parts += [
            _field(
                "Range",
                dcc.RadioItems(
                    id=ids.timebar("range", page),
                    value=view.range,
                    inline=True,
                    className="segmented",
                    options=[{"label": label(k), "value": k} for k in (*ranges, CUSTOM)],
                ),
            ),
            html.Div(
                id=ids.timebar("custom", page),
                className="custom-range",
                style=CUSTOM_SHOWN if view.range == CUSTOM else HIDDEN,
                children=[
                    _field(
                        "From",
                        dcc.Input(
                            id=ids.timebar("start", page),
                            value=view.start,
                            debounce=True,
                            className="input",
                            placeholder="2026-11-21T10:00 or epoch ms",
                        ),
                    ),
                    _field(
                        "To",
                        dcc.Input(
                            id=ids.timebar("end", page),
                            value=view.end,
                            debounce=True,
                            className="input",
                            placeholder="now",
                        ),
                    ),
                ],
            ),
        ]
    parts += [
        _field(
            "Refresh",
            dcc.Dropdown(
                id=ids.timebar("refresh", page),
                value=view.refresh,
                clearable=False,
                searchable=False,
                options=[{"label": label(k), "value": k} for k in REFRESH],
            ),
            "field--refresh",
        ),
        _field(
            "Times",
            dcc.RadioItems(
                id=ids.timebar("tz", page),
                value=view.tz,
                inline=True,
                className="segmented",
                options=[{"label": text, "value": key} for key, text in ZONES.items()],
            ),
        ),
        html.Div(id=ids.timebar("sink", page), hidden=True),
    ]
    if ranges is not None:
        parts.append(html.Div(id=ids.timebar("range-sink", page), hidden=True))
    return html.Div(parts, className="time-bar", **attrs({"data-page": page}))


# Merge keys into the current query string; drop empty ones (and start/end unless custom).
_WRITE_URL = """
function(values, keys) {
    const params = new URLSearchParams(window.location.search);
    keys.forEach((key, i) => {
        const value = values[i];
        if (value === null || value === undefined || value === "") { params.delete(key); }
        else { params.set(key, value); }
    });
    if (keys.includes("range") && params.get("range") !== "custom") {
        params.delete("start"); params.delete("end");
    }
    const search = "?" + params.toString();
    if (window.location.search !== search) {
        window.history.replaceState(window.history.state, "",
                                    window.location.pathname + search);
    }
    return search;
}"""


def register_timebar_callbacks(app: Dash) -> None:
    """Clientside, once for every page: URL, interval, custom row, browser offset."""
    app.clientside_callback(
        f"function(refresh, tz) {{  return ({_WRITE_URL})([refresh, tz], ['refresh', 'tz']);}}",
        Output(ids.timebar("sink", MATCH), "children"),
        Input(ids.timebar("refresh", MATCH), "value"),
        Input(ids.timebar("tz", MATCH), "value"),
    )
    app.clientside_callback(
        "function(range, start, end) {"
        f"  return ({_WRITE_URL})([range, start, end], ['range', 'start', 'end']);"
        "}",
        Output(ids.timebar("range-sink", MATCH), "children"),
        Input(ids.timebar("range", MATCH), "value"),
        Input(ids.timebar("start", MATCH), "value"),
        Input(ids.timebar("end", MATCH), "value"),
    )
    app.clientside_callback(
        f"function(range) {{ return range === 'custom' ? {json.dumps(CUSTOM_SHOWN)}"
        f" : {json.dumps(HIDDEN)}; }}",
        Output(ids.timebar("custom", MATCH), "style"),
        Input(ids.timebar("range", MATCH), "value"),
    )
    refresh_ms = json.dumps(REFRESH)
    app.clientside_callback(
        f"function(refresh) {{ const ms = {refresh_ms}[refresh];  return ms ? ms : {NEVER_MS}; }}",
        Output(ids.live_interval(MATCH), "interval"),
        Input(ids.timebar("refresh", MATCH), "value"),
    )
    app.clientside_callback(
        "function(_path) { return -new Date().getTimezoneOffset(); }",
        Output(ids.APP_TZ_OFFSET, "data"),
        Input(ids.APP_LOCATION, "pathname"),
    )
