"""Auto refresh that never piles up, and one pause control for every page.

Three rules, all pages alike:

- A page's refresh callback disables its own interval while it runs (``running=``), so a
  slow API delays the next tick instead of stacking requests whose answers Dash would
  drop (overlapping Interval callbacks otherwise fail silently).
- It also skips a tick that comes sooner than half an interval after the last finished
  refresh (:func:`too_soon`, a timestamp in a ``dcc.Store``): a burst of queued ticks
  after a stall costs one request, not many.
- The pause button in the top bar stops every live interval by setting its
  ``max_intervals`` to 0 (``running=`` owns ``disabled``, so the two never fight); the
  choice lives in session storage and so survives moving between pages.
"""

from __future__ import annotations

import json
import time

from dash import ALL, Dash, Input, Output, State, dcc, html

from dashboard import ids
from dashboard.components import attrs

PAUSE_LABEL = "Pause auto-refresh"
RESUME_LABEL = "Resume auto-refresh"


def live_interval(page: str, interval_ms: int) -> dcc.Interval:
    return dcc.Interval(id=ids.live_interval(page), interval=interval_ms)


def pause_control() -> html.Div:
    return html.Div(
        className="pause-control",
        children=[
            dcc.Store(id=ids.APP_PAUSED, storage_type="session", data=False),
            html.Button(
                PAUSE_LABEL,
                id=ids.APP_PAUSE_BUTTON,
                n_clicks=0,
                className="button button--ghost",
                **attrs({"data-paused": "false"}),
            ),
        ],
    )


def too_soon(last_refresh_s: float | None, interval_ms: int, now_s: float | None = None) -> bool:
    """True when the previous refresh finished less than half an interval ago."""
    if last_refresh_s is None:
        return False
    now_s = time.time() if now_s is None else now_s
    return now_s - last_refresh_s < interval_ms / 2000


def register_live_callbacks(app: Dash) -> None:
    """Clientside: pausing must work even while the server is busy or down."""
    app.clientside_callback(
        "function(clicks, paused) {"
        "  const now = clicks ? !paused : Boolean(paused);"
        f"  return [now, now ? {json.dumps(RESUME_LABEL)} : {json.dumps(PAUSE_LABEL)},"
        "          now ? 'true' : 'false'];"
        "}",
        Output(ids.APP_PAUSED, "data"),
        Output(ids.APP_PAUSE_BUTTON, "children"),
        Output(ids.APP_PAUSE_BUTTON, "data-paused"),
        Input(ids.APP_PAUSE_BUTTON, "n_clicks"),
        State(ids.APP_PAUSED, "data"),
    )
    # Fires when the choice changes and when a page's intervals appear.
    app.clientside_callback(
        """
        function(paused, intervalIds) {
            return (intervalIds || []).map(() => paused ? 0 : -1);
        }
        """,
        Output(ids.live_interval(ALL), "max_intervals"),
        Input(ids.APP_PAUSED, "data"),
        Input(ids.live_interval(ALL), "id"),
    )
