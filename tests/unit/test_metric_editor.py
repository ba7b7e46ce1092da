"""The metric editor's form -> the metric's fields with the file's names (what the API
validates, previews and applies); empty inputs are left out."""

from __future__ import annotations

from dashboard import metric_editor as editor


def test_form_to_fields() -> None:
    values = {
        editor.NAME: " purchases ",
        editor.AGGREGATION: "quantile",
        editor.FIELD: "amount",
        editor.QUANTILE: "0.9",
        editor.WHERE: "type=purchase, country=DE|FR",
        editor.DIMENSIONS: "country, device",
        editor.WINDOWS: "1m,1h",
        editor.HOP: "",
        editor.GAP: None,
        editor.UNIT: "EUR",
    }
    assert editor.draft_fields(values) == {
        "name": "purchases",
        "aggregation": "quantile",
        "field": "amount",
        "quantile": 0.9,
        "where": {"type": "purchase", "country": ["DE", "FR"]},
        "dimensions": ["country", "device"],
        "windows": ["1m", "1h"],
        "unit": "EUR",
    }


def test_an_empty_form_is_a_count_without_a_name() -> None:
    assert editor.draft_fields({}) == {"name": "", "aggregation": "count"}
    assert editor.draft_fields({editor.QUANTILE: "high"})["quantile"] == "high"


def test_an_applied_source_that_waits_for_a_restart_is_a_warning() -> None:
    applied = {
        "version": 3,
        "change": "added revenue",
        "jobs": [{"kind": "definitions", "job_id": "0123456789"}],
    }
    assert editor.applied_message(applied) == (
        "Applied: version 3 (added revenue); jobs definitions 01234567.",
        "ok",
    )
    notice = "source 'orders' (topic 'shop.orders') is read after the workers restart"
    text, tone = editor.applied_message({**applied, "restart_needed": [notice]})
    assert tone == "warn"
    assert text.endswith(f"Not live yet: {notice}.")
