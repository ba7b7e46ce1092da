"""The definitions preview reads the archive of the metric's own source: a draft over a
``[[source]]`` is computed from that source's files, not from Stratum's own topic's."""

from __future__ import annotations

from pathlib import Path

import orjson

from batch_layer.preview import preview
from stratum import archive
from stratum.event_frames import decode_messages
from stratum.metrics import parse_catalog
from stratum.settings import Settings

T0 = 1_795_309_200_000  # a minute boundary
FAR_FUTURE = 2**50


def _write(root: Path, epoch: str, events: list[dict[str, object]]) -> None:
    frame = decode_messages(
        [(i, orjson.dumps(e)) for i, e in enumerate(events)], now_ms=FAR_FUTURE
    ).frame
    archive.write_frame(root, epoch, 0, frame, 0, len(events) - 1)


def test_a_source_metric_is_previewed_from_its_own_archive(tmp_path: Path) -> None:
    catalog = parse_catalog(
        {
            "source": [
                {
                    "name": "orders",
                    "topic": "shop.orders",
                    "format": "json",
                    "ts": "ts",
                    "fields": {"amount": "amount"},
                }
            ],
            "metric": [
                {"name": "revenue", "source": "orders", "aggregation": "sum", "field": "amount"}
            ],
        }
    )
    metric = catalog.metrics[0]
    orders = [
        {"event_id": f"o{i}", "ts": T0 + i, "type": "orders", "amount": 2.0} for i in range(3)
    ]
    _write(archive.archive_root(tmp_path, "orders"), "src.orders", orders)
    builtin = [{"event_id": "e1", "ts": T0, "type": "orders", "amount": 100.0}]
    _write(archive.archive_root(tmp_path), "1", builtin)  # the built-in topic's archive
    settings = Settings(data_dir=tmp_path)
    points = preview(settings, metric, T0, T0 + 60_000, 60_000)
    assert [(p.value, p.count) for p in points] == [(6.0, 3)]
