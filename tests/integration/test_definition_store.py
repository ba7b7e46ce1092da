"""Definition versions in ClickHouse (real chDB): seeding once, versions with who/why,
the live generation's binding read with it, batch floors hiding coverage computed with
an earlier definition, and the purge of deleted metrics after their retention."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from batch_layer import writer
from stratum.definitions import delete_metric, put_metric
from stratum.metrics import load_catalog
from stratum.settings import DEFAULT_METRICS_FILE, Settings
from stratum.storage import Storage, generations, open_storage
from stratum.storage.definitions import Binding, DefinitionStore, startup_catalog

pytestmark = pytest.mark.integration
CATALOG = load_catalog(DEFAULT_METRICS_FILE)


@pytest.fixture(scope="module")
def storage(settings: Settings) -> Iterator[Storage]:
    own = settings.model_copy(
        update={
            "clickhouse": settings.clickhouse.model_copy(update={"database": "stratum_defstore"})
        }
    )
    store = open_storage(own)
    yield store
    store.close()


def test_versions_bindings_floors_and_purge(storage: Storage) -> None:
    store = DefinitionStore(storage)
    binding, catalog = startup_catalog(storage, CATALOG, "metrics.toml")
    assert (binding, catalog) == (Binding(1), CATALOG)
    edited = put_metric(CATALOG, "purchases", {"aggregation": "count"})
    # A later start with another file serves the stored version: the store wins.
    assert startup_catalog(storage, edited, "other.toml") == (Binding(1), CATALOG)

    version = store.append(edited, author="ana", reason="for the shop", change="added")
    assert version == 2
    assert [(v.version, v.author, v.reason) for v in store.history()] == [
        (2, "ana", "for the shop"),
        (1, "seed", "seeded from metrics.toml"),
    ]
    assert store.catalog(2) == edited

    # A new generation bound before it goes live: readers see both switch together.
    store.bind(7, Binding(2, {"revenue": 1_000}))
    assert store.live()[:2] == (0, Binding(1))
    generations.set_live(storage, 7)
    assert store.live() == (7, Binding(2, {"revenue": 1_000}), edited)
    assert generations.read_state(storage).definitions == 2

    hour = datetime(2026, 11, 21, 10, tzinfo=UTC)
    storage.insert(
        "batch_coverage",
        [["revenue", hour, 999, hour], ["events", hour, 999, hour]],
        ("metric", "hour_start", "version", "horizon"),
    )
    covered = writer.coverage_horizons(storage, {"revenue": 1_000})
    assert set(covered) == {("events", int(hour.timestamp() * 1000))}

    store.mark_deleted(["events"], at_ms=10_000)
    assert store.purge_deleted(0, now_ms=20_000) == []  # still defined in version 2
    without = store.append(
        delete_metric(edited, "events"), author="ana", reason="", change="deleted events"
    )
    store.bind(7, Binding(without))
    assert store.purge_deleted(60, now_ms=20_000) == []  # within the retention
    assert store.purge_deleted(0, now_ms=20_000) == ["events"]
    assert store.deleted() == {}
    left = storage.query(f"SELECT DISTINCT metric FROM {storage.database}.batch_coverage")
    assert left == [("revenue",)]
