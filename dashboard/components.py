"""Small building blocks shared by the pages: headers, cards, banners, the health strip.

Kept out of ``pages/`` because Dash executes every module there as a page.
Styling lives in ``assets/stratum.css``; these only pick class names.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dash import html
from dash.development.base_component import Component

from dashboard.api_models import Health
from dashboard.formatting import fmt_clock

TONES = {
    "ok": "ok",
    "succeeded": "ok",
    "degraded": "warn",
    "running": "info",
    "queued": "muted",
    "pending": "muted",
    "down": "bad",
    "failed": "bad",
    "error": "bad",
    "cancelled": "muted",
    "unknown": "muted",
}
COMPONENT_ORDER = ("broker", "clickhouse", "worker", "scheduler")


def attrs(attributes: dict[str, str]) -> dict[str, Any]:
    """``data-*`` attributes to pass as ``**attrs({...})``: Dash's typed signatures check a
    ``dict[str, str]`` against every named parameter, an ``Any`` mapping passes."""
    return attributes


def tone_of(status: str) -> str:
    return TONES.get(status.lower(), "muted")


def page_header(title: str, subtitle: str, *aside: Component) -> html.Div:
    return html.Div(
        className="page-header",
        children=[
            html.Div([html.H1(title), html.P(subtitle, className="page-subtitle")]),
            html.Div(list(aside), className="page-header-aside"),
        ],
    )


def card(
    title: str | Component,
    *children: Component,
    subtitle: str | Component | None = None,
    aside: Component | None = None,
    class_name: str = "",
    **attributes: Any,
) -> html.Section:
    """A white tile with a title row; ``attributes`` become data-* attributes for tests."""
    header = html.Div(
        className="card-header",
        children=[
            html.Div(
                [
                    html.H2(title, className="card-title"),
                    html.Div(subtitle, className="card-subtitle") if subtitle is not None else None,
                ]
            ),
            aside,
        ],
    )
    extra: dict[str, Any] = {
        f"data-{key.replace('_', '-')}": value for key, value in attributes.items()
    }
    return html.Section([header, *children], className=f"card {class_name}".strip(), **extra)


def banner(message: str | Sequence[Component | str], tone: str = "bad") -> html.Div:
    return html.Div(message, className=f"banner banner--{tone}", role="status")


def badge(text: str, tone: str | None = None) -> html.Span:
    return html.Span(text, className=f"badge badge--{tone or tone_of(text)}")


def dot(tone: str) -> html.Span:
    return html.Span(className=f"dot dot--{tone}")


def health_strip(health: Health | None, error: str | None, now: datetime) -> list[Component]:
    """Overall status, one pill per component (detail on hover), and when it was checked.

    Why a strip on every page: an outage must be visible wherever the operator is,
    so that stale numbers are never mistaken for fresh ones.
    """
    checked = html.Span(f"checked {fmt_clock(now)} UTC", className="strip-checked")
    if health is None:
        return [
            dot("bad"),
            html.Span(error or "API status unknown", className="strip-error"),
            checked,
        ]
    overall = "ok" if health.status == "ok" else "degraded"
    names = [n for n in COMPONENT_ORDER if n in health.components]
    names += sorted(set(health.components) - set(COMPONENT_ORDER))
    pills: list[Component] = []
    for name in names:
        component = health.components[name]
        tone = tone_of(component.status)
        text: list[Component | str] = [dot(tone), html.Span(name, className="pill-name")]
        if component.status != "ok":
            text.append(html.Span(component.status, className="pill-status"))
        if component.detail and tone != "ok":
            text.append(html.Span(component.detail, className="pill-detail"))
        pills.append(
            html.Span(
                text,
                className=f"pill pill--{tone}",
                title=f"{name}: {component.status}. {component.detail}".strip(),
            )
        )
    label = "All systems operational" if overall == "ok" else "Degraded"
    return [
        dot(tone_of(overall)),
        html.Span(label, className=f"strip-label strip-label--{tone_of(overall)}"),
        html.Span(pills, className="strip-pills"),
        checked,
    ]
