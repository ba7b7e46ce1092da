"""The admin page's metric editor: a form and the TOML view of the same draft, checked by
the API as the person types (``/v1/admin/definitions/validate``, the file's messages),
a preview of the draft over the last hours next to the current definition's series
(``/v1/admin/definitions/preview``), and Apply (``PUT /v1/admin/metrics/{name}``), whose
jobs then show in Active jobs. Every call carries the admin token typed on the page.

A simpler editor than a two-way one: the TOML view follows the form (read-only).
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashboard import ids
from dashboard.api_client import ApiClient
from dashboard.components import banner, card
from dashboard.errors import ApiError
from dashboard.figures import base_layout, message_figure

PREFIX = "metric-editor-"
NAME, AGGREGATION, FIELD, QUANTILE, WHERE, DIMENSIONS, WINDOWS, HOP, GAP, UNIT = (
    f"{PREFIX}{n}"
    for n in (
        "name",
        "aggregation",
        "field",
        "quantile",
        "where",
        "dimensions",
        "windows",
        "hop",
        "gap",
        "unit",
    )
)
TOML, PROBLEMS, PREVIEW, APPLY, STATUS, CHART = (
    f"{PREFIX}{n}" for n in ("toml", "problems", "preview", "apply", "status", "chart")
)
TOKEN = ids.ADMIN_TOKEN_INPUT  # the admin page's token field
AGGREGATIONS = ("count", "sum", "min", "max", "avg", "quantile", "distinct")
FORM = (NAME, AGGREGATION, FIELD, QUANTILE, WHERE, DIMENSIONS, WINDOWS, HOP, GAP, UNIT)


def applied_message(applied: dict[str, Any]) -> tuple[str, str]:
    """The banner text and tone of an applied change: a warning when a source it reads
    is read only after the workers restart (``restart_needed``)."""
    jobs = ", ".join(f"{j['kind']} {j['job_id'][:8]}" for j in applied["jobs"])
    text = f"Applied: version {applied['version']} ({applied['change']}); jobs {jobs}."
    restart = applied.get("restart_needed") or []
    if restart:
        return f"{text} Not live yet: {'; '.join(restart)}.", "warn"
    return text, "ok"


def _input(input_id: str, label: str, placeholder: str) -> html.Div:
    return html.Div(
        [
            html.Label(label, htmlFor=input_id, className="field-label"),
            dcc.Input(
                id=input_id,
                type="text",
                placeholder=placeholder,
                autoComplete="off",
                className="input",
                debounce=0.4,
            ),
        ],
        className="field",
    )


def editor_card() -> html.Section:
    return card(
        "Metric editor",
        html.Div(
            className="editor-grid",
            children=[
                html.Div(
                    className="editor-form",
                    children=[
                        _input(NAME, "Name", "purchases"),
                        html.Div(
                            [
                                html.Label(
                                    "Aggregation", htmlFor=AGGREGATION, className="field-label"
                                ),
                                dcc.Dropdown(
                                    id=AGGREGATION,
                                    value="count",
                                    clearable=False,
                                    options=list(AGGREGATIONS),
                                ),
                            ],
                            className="field",
                        ),
                        _input(FIELD, "Field", "amount (not for count)"),
                        _input(QUANTILE, "Quantile", "0.95 (quantile only)"),
                        _input(WHERE, "Filter", "type=purchase, country=DE|FR"),
                        _input(DIMENSIONS, "Dimensions", "country, device"),
                        _input(WINDOWS, "Windows", "1m, 5m, 1h"),
                        _input(HOP, "Hop", "1m (hopping windows)"),
                        _input(GAP, "Session gap", "30m (session windows)"),
                        _input(UNIT, "Unit", "EUR"),
                    ],
                ),
                html.Div(
                    className="editor-side",
                    children=[
                        html.Pre(id=TOML, className="editor-toml"),
                        html.Ul(id=PROBLEMS, className="editor-problems"),
                        html.Div(
                            className="form-row",
                            children=[
                                html.Button("Preview", id=PREVIEW, n_clicks=0, className="button"),
                                html.Button(
                                    "Apply",
                                    id=APPLY,
                                    n_clicks=0,
                                    className="button button--primary",
                                ),
                            ],
                        ),
                        html.Div(id=STATUS),
                    ],
                ),
            ],
        ),
        dcc.Graph(
            id=CHART,
            figure=message_figure("Preview a draft to see it here"),
            config={"displayModeBar": False},
            className="editor-chart",
        ),
        subtitle="Add or change a metric without a restart: a new one is computed within "
        "seconds and backfilled by batch; a changed one is rebuilt by a replay",
        class_name="metric-editor",
    )


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def draft_fields(values: dict[str, str | None]) -> dict[str, Any]:
    """The form as the metric's fields (the file's names); empty inputs are left out,
    so the API's messages say what is missing."""
    fields: dict[str, Any] = {
        "name": (values.get(NAME) or "").strip(),
        "aggregation": values.get(AGGREGATION) or "count",
    }
    if values.get(FIELD):
        fields["field"] = str(values[FIELD]).strip()
    if values.get(QUANTILE):
        text = str(values[QUANTILE]).strip()
        try:
            fields["quantile"] = float(text)
        except ValueError:
            fields["quantile"] = text  # the API names the mistake
    where: dict[str, Any] = {}
    for item in _split(values.get(WHERE)):
        key, _, value = item.partition("=")
        options = [v.strip() for v in value.split("|") if v.strip()]
        where[key.strip()] = options[0] if len(options) == 1 else options
    if where:
        fields["where"] = where
    for name, key in (("dimensions", DIMENSIONS), ("windows", WINDOWS)):
        if _split(values.get(key)):
            fields[name] = _split(values.get(key))
    for name, key in (("hop", HOP), ("session_gap", GAP), ("unit", UNIT)):
        if values.get(key):
            fields[name] = str(values[key]).strip()
    return fields


def _chart(draft: dict[str, Any], current: dict[str, Any] | None) -> go.Figure:
    fig = go.Figure()
    for label, body in (("current", current), ("draft", draft)):
        if not body:
            continue
        points = [p for s in body["series"] for p in s["points"]]
        fig.add_trace(
            go.Scatter(
                x=[p["t"] for p in points],
                y=[p["value"] for p in points],
                name=label,
                mode="lines+markers",
            )
        )
    fig.update_layout(base_layout())
    fig.update_layout(showlegend=True, height=260)
    return fig


def register_editor_callbacks(app: Dash, api: ApiClient) -> None:
    @app.callback(
        Output(TOML, "children"),
        Output(PROBLEMS, "children"),
        *(Input(i, "value") for i in FORM),
        State(TOKEN, "value"),
    )
    def check(*values: Any) -> tuple[Any, Any]:
        *form, token = values
        fields = draft_fields(dict(zip(FORM, form, strict=True)))
        if not fields["name"]:
            return "", [html.Li("Name the metric (lower_snake_case).")]
        if not token:
            return "", [html.Li("Enter the admin token above to check drafts.")]
        try:
            answer = api.admin_json(
                token, "POST", "/v1/admin/definitions/validate", json={"metric": fields}
            )
        except ApiError as exc:
            return "", [html.Li(str(exc))]
        toml = answer.get("toml") or ""
        name = fields["name"]
        block = toml[toml.find(f'name = "{name}"') :] if toml else ""
        shown = "[[metric]]\n" + block.split("\n\n")[0] if block else ""
        return shown, [html.Li(p, className="problem") for p in answer["problems"]] or [
            html.Li("Valid.", className="valid")
        ]

    @app.callback(
        Output(CHART, "figure"),
        Output(STATUS, "children"),
        Input(PREVIEW, "n_clicks"),
        Input(APPLY, "n_clicks"),
        *(State(i, "value") for i in FORM),
        State(TOKEN, "value"),
        prevent_initial_call=True,
    )
    def act(_preview: int, _apply: int, *values: Any) -> tuple[Any, Any]:
        *form, token = values
        if not token:
            return message_figure("Enter the admin token first"), banner(
                "Enter the admin token first.", "warn"
            )
        fields = draft_fields(dict(zip(FORM, form, strict=True)))
        name = fields["name"]
        if not name:
            raise PreventUpdate
        try:
            if ctx.triggered_id == APPLY:
                del fields["name"]
                applied = api.admin_json(
                    token,
                    "PUT",
                    f"/v1/admin/metrics/{name}",
                    json=fields,
                    params={"author": "admin page"},
                )
                return no_update, banner(*applied_message(applied))
            draft = api.admin_json(
                token, "POST", "/v1/admin/definitions/preview", json={"metric": fields}
            )
            try:
                current: dict[str, Any] | None = api.admin_json(
                    token, "GET", f"/v1/metrics/{name}", params={"start": "now-3h"}
                )
            except ApiError:
                current = None  # a new metric has no current series
        except ApiError as exc:
            return no_update, banner(str(exc))
        return _chart(draft, current), banner(
            f"Preview of {name}: {sum(len(s['points']) for s in draft['series'])} point(s) "
            "from the archive (batch code), next to the current definition.",
            "info",
        )
