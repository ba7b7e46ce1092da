"""Definitions as data: the document round-trips through JSON and TOML, edits of one
metric validate with the file's messages, and a new version's difference is what the
apply step acts on."""

from __future__ import annotations

import tomllib

import pytest

from stratum.definitions import (
    catalog_document,
    delete_metric,
    diff,
    document_toml,
    parse_document,
    parse_toml,
    problems_of,
    put_metric,
)
from stratum.metrics import MetricDefinitionError, load_catalog
from stratum.settings import DEFAULT_METRICS_FILE

CATALOG = load_catalog(DEFAULT_METRICS_FILE)


def test_document_round_trips_through_toml_and_json() -> None:
    document = catalog_document(CATALOG)
    assert list(document) == ["metric"]
    assert parse_document(document) == CATALOG
    text = document_toml(document)
    assert tomllib.loads(text) == document
    assert parse_toml(text) == CATALOG


def test_toml_writer_quotes_what_needs_it() -> None:
    document = {
        "metric": [
            {
                "name": "x",
                "aggregation": "count",
                "description": 'a "b"\n',
                "where": {"type": ["a", "b"], "odd key": "1"},
            }
        ]
    }
    assert tomllib.loads(document_toml(document)) == document


def test_put_adds_and_replaces_one_metric() -> None:
    added = put_metric(
        CATALOG, "purchases", {"aggregation": "count", "where": {"type": "purchase"}}
    )
    assert added.names == [*CATALOG.names, "purchases"]
    changed = put_metric(added, "revenue", {"aggregation": "max", "field": "amount"})
    assert changed.get("revenue") is not None
    assert changed.get("revenue").aggregation == "max"  # type: ignore[union-attr]
    change = diff(CATALOG, changed)
    assert (change.added, change.changed, change.deleted) == (["purchases"], ["revenue"], [])
    assert diff(changed, delete_metric(changed, "events")).deleted == ["events"]
    assert diff(CATALOG, CATALOG).empty
    assert change.summary() == "added purchases; changed revenue"


def test_a_bad_draft_gets_every_mistake_with_the_files_messages() -> None:
    with pytest.raises(MetricDefinitionError) as caught:
        put_metric(CATALOG, "bad", {"aggregation": "sum", "windows": ["7m"], "colour": 1})
    problems = problems_of(caught.value)
    assert problems == [
        "metric 'bad': windows: window 7m does not divide a day evenly",
        "metric 'bad': colour: Extra inputs are not permitted",
    ]
    with pytest.raises(MetricDefinitionError, match="rename by deleting"):
        put_metric(CATALOG, "a", {"name": "b", "aggregation": "count"})
    with pytest.raises(MetricDefinitionError) as caught:
        parse_toml("[[metric]\nname =", "draft")
    assert problems_of(caught.value)[0].startswith("draft is not valid TOML")


def test_the_last_metric_cannot_be_deleted() -> None:
    one = parse_document({"metric": [{"name": "only", "aggregation": "count"}]})
    with pytest.raises(MetricDefinitionError, match="at least one"):
        delete_metric(one, "only")
