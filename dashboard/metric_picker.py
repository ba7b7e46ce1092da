"""The metric picker pages fill from ``GET /v1/metrics`` (explorer, drift): one callback
per page, written once here.

The catalog also lands in a ``dcc.Store`` so the page's other callbacks know each
metric's dimensions and windows without asking the API again. While the API cannot
answer, the picker keeps what it shows, a banner says so, and the retry interval stays
on; once loaded, the interval stops.
"""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, State, no_update

from dashboard.api_client import ApiClient
from dashboard.components import banner
from dashboard.errors import ApiError


def register_metric_picker(
    app: Dash, api: ApiClient, *, picker: str, catalog: str, retry: str, status: str
) -> None:
    """``picker``: the dcc.Dropdown; ``catalog``: the dcc.Store; ``retry``: the
    dcc.Interval that retries until the API answers; ``status``: where problems show."""

    @app.callback(
        Output(picker, "options"),
        Output(picker, "value"),
        Output(catalog, "data"),
        Output(retry, "disabled"),
        Output(status, "children", allow_duplicate=True),
        Input(retry, "n_intervals"),
        State(picker, "value"),
        prevent_initial_call="initial_duplicate",
    )
    def load_catalog(_n: int | None, current: str | None) -> tuple[Any, ...]:
        try:
            metrics = api.metrics()
        except ApiError as exc:
            return no_update, no_update, None, False, banner(f"{exc} · retrying")
        names = [m.name for m in metrics]
        if not names:
            return [], None, [], True, banner("The API lists no metrics.", "warn")
        options = [{"label": f"{m.name} ({m.aggregation})", "value": m.name} for m in metrics]
        value = current if current in names else names[0]
        return options, value, [m.model_dump(mode="json") for m in metrics], True, None
