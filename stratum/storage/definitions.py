"""Versions of the definitions document in ClickHouse, and which version each speed
generation is computed with.

- ``definitions``: one row per version (who, when, why, what changed, the whole
  document as JSON); never updated, so the history is the table.
- ``kv`` ``defs:<generation>``: ``{"version": V, "floors": {metric: batch version}}``,
  the version generation ``<generation>`` computes and serves. A change that rebuilds a
  metric writes it for the replay's new generation *before* the switch, so a reader
  that read the live generation reads the definitions that built it: never a mix.
  ``floors`` say from which batch version on a metric's batch windows were computed
  with its current definition (older coverage is ignored by readers and by the batch
  planner, which recomputes those hours). Adding or deleting a metric rewrites the
  live generation's row in place (other metrics' definitions stay as they were).
- ``kv`` ``deleted:<metric>``: when a metric was deleted (ms); its stored windows are
  dropped after ``STRATUM_DEFINITIONS__DELETED_RETENTION_S``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stratum.definitions import document_json, parse_document
from stratum.metrics import MetricCatalog
from stratum.storage import generations
from stratum.storage.client import Storage

log = logging.getLogger(__name__)
BINDING = "defs:"
DELETED = "deleted:"


@dataclass(frozen=True)
class Binding:
    version: int
    floors: dict[str, int] = field(default_factory=dict)

    def text(self) -> str:
        return json.dumps({"version": self.version, "floors": self.floors}, sort_keys=True)

    @classmethod
    def parse(cls, text: str) -> Binding | None:
        if not text:
            return None
        data = json.loads(text)
        return cls(int(data["version"]), {str(k): int(v) for k, v in data["floors"].items()})


@dataclass(frozen=True)
class Version:
    version: int
    author: str
    reason: str
    change: str
    created_at: datetime
    document: dict[str, Any]


def _put(storage: Storage, key: str, value: str) -> None:
    storage.insert("kv", [[key, value, datetime.now(tz=UTC)]], ("key", "value", "updated_at"))


class DefinitionStore:
    """Reads and writes of the versions; parsed catalogs are cached (versions never
    change once written)."""

    _cache: dict[tuple[str, str, int], MetricCatalog] = {}
    _lock = threading.Lock()

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.table = f"{storage.database}.definitions"

    def latest_version(self) -> int:
        rows = self.storage.query(f"SELECT max(version) FROM {self.table}")
        return int(rows[0][0] or 0)

    def append(self, catalog: MetricCatalog, *, author: str, reason: str, change: str) -> int:
        """Store ``catalog`` as the next version; returns it. Callers serialise changes
        (one definitions change at a time, :mod:`stratum.definitions_apply`)."""
        version = self.latest_version() + 1
        self.storage.insert(
            "definitions",
            [
                [
                    version,
                    document_json(catalog),
                    author[:200],
                    reason[:2000],
                    change[:2000],
                    datetime.now(tz=UTC),
                ]
            ],
            ("version", "document", "author", "reason", "change", "created_at"),
        )
        return version

    def get(self, version: int) -> Version | None:
        rows = self.storage.query(
            f"SELECT version, author, reason, change, created_at, document FROM {self.table} "
            "FINAL WHERE version = {v:UInt64}",
            {"v": version},
        )
        if not rows:
            return None
        v, author, reason, change, created, document = rows[0]
        return Version(int(v), str(author), str(reason), str(change), created, json.loads(document))

    def history(self, limit: int = 100) -> list[Version]:
        rows = self.storage.query(
            f"SELECT version, author, reason, change, created_at FROM {self.table} FINAL "
            "ORDER BY version DESC LIMIT {n:UInt32}",
            {"n": limit},
        )
        return [Version(int(v), str(a), str(r), str(c), t, {}) for v, a, r, c, t in rows]

    def catalog(self, version: int) -> MetricCatalog:
        key = (self.storage.url, self.storage.database, version)
        with self._lock:
            found = self._cache.get(key)
        if found is not None:
            return found
        stored = self.get(version)
        if stored is None:
            raise LookupError(f"definitions version {version} does not exist")
        catalog = parse_document(stored.document, f"definitions version {version}")
        with self._lock:
            self._cache[key] = catalog
        return catalog

    def binding(self, generation: int) -> Binding | None:
        rows = self.storage.query(
            f"SELECT value FROM {self.storage.database}.kv FINAL WHERE key = {{k:String}}",
            {"k": f"{BINDING}{generation}"},
        )
        return Binding.parse(str(rows[0][0])) if rows else None

    def _latest_binding_before(self, generation: int) -> Binding | None:
        rows = self.storage.query(
            f"SELECT value FROM {self.storage.database}.kv FINAL WHERE startsWith(key, "
            "{p:String}) AND value != '' AND toUInt64OrZero(substring(key, 6)) <= {g:UInt64} "
            "ORDER BY toUInt64OrZero(substring(key, 6)) DESC LIMIT 1",
            {"p": BINDING, "g": generation},
        )
        return Binding.parse(str(rows[0][0])) if rows else None

    def bind(self, generation: int, binding: Binding) -> None:
        _put(self.storage, f"{BINDING}{generation}", binding.text())

    def live(self) -> tuple[int, Binding, MetricCatalog]:
        """The live generation, the version it serves and that version's catalog, read
        in one statement (the generation and its binding never disagree)."""
        db = self.storage.database
        rows = self.storage.query(
            f"SELECT g.value, b.value FROM (SELECT value FROM {db}.kv FINAL WHERE key = "
            "{live:String}) AS g LEFT JOIN (SELECT key, value FROM "
            f"{db}.kv FINAL WHERE startsWith(key, {{p:String}})) AS b "
            "ON b.key = concat({p:String}, g.value) SETTINGS join_use_nulls = 0",
            {"live": generations.LIVE, "p": BINDING},
        )
        generation = int(rows[0][0] or 0) if rows else 0
        binding = Binding.parse(str(rows[0][1])) if rows else None
        if binding is None:  # a live generation of 0 has no kv row yet
            binding = self.binding(generation)
        if binding is None:  # built outside a replay job: the newest older generation's
            binding = self._latest_binding_before(generation)
        if binding is None:
            raise LookupError("no definitions are bound to the live generation yet")
        return generation, binding, self.catalog(binding.version)

    def seed(self, file_catalog: MetricCatalog, source: str) -> bool:
        """First start: the file becomes version 1, bound to the live generation.
        Later starts leave the stored versions alone; returns whether it seeded."""
        generation = generations.live_generation(self.storage)
        if self.binding(generation) is not None:
            return False
        version = self.latest_version()
        if version == 0:
            version = self.append(
                file_catalog,
                author="seed",
                reason=f"seeded from {source}",
                change="initial definitions",
            )
        self.bind(generation, Binding(version))
        return True

    def mark_deleted(self, names: list[str], at_ms: int) -> None:
        for name in names:
            _put(self.storage, f"{DELETED}{name}", str(at_ms))

    def clear_deleted(self, names: list[str]) -> None:
        for name in names:
            _put(self.storage, f"{DELETED}{name}", "")

    def deleted(self) -> dict[str, int]:
        rows = self.storage.query(
            f"SELECT key, value FROM {self.storage.database}.kv FINAL "
            "WHERE startsWith(key, {p:String}) AND value != ''",
            {"p": DELETED},
        )
        return {str(k).removeprefix(DELETED): int(v) for k, v in rows}

    def purge_deleted(self, retention_s: float, now_ms: int | None = None) -> list[str]:
        """Drop the stored windows of metrics deleted longer than ``retention_s`` ago
        (unless defined again meanwhile); returns their names."""
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        _, _, catalog = self.live()
        due = [
            name
            for name, at in self.deleted().items()
            if now_ms - at >= retention_s * 1000 and catalog.get(name) is None
        ]
        db = self.storage.database
        for name in due:
            for table in ("speed_windows", "batch_windows", "batch_coverage"):
                self.storage.command(  # synchronous: "dropped" holds when this returns
                    f"ALTER TABLE {db}.{table} DELETE WHERE metric = {{m:String}} "
                    "SETTINGS mutations_sync = 1",
                    {"m": name},
                )
        self.clear_deleted(due)
        return due


def startup_catalog(
    storage: Storage, file_catalog: MetricCatalog, source: str
) -> tuple[Binding, MetricCatalog]:
    """At a process start: seed from the file on the first start, then what the live
    generation serves (the stored versions win over the file from then on)."""
    store = DefinitionStore(storage)
    if store.seed(file_catalog, source):
        log.info("definitions seeded from %s as version 1", source)
    _, binding, catalog = store.live()
    if catalog != file_catalog:
        log.info(
            "serving stored definitions version %d; %s differs from it (apply it with "
            "`stratum definitions import`)",
            binding.version,
            source,
        )
    return binding, catalog
