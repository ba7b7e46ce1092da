"""The definitions an API process serves, without a restart.

``current()`` is the catalog of the live generation's version, looked up again every
``poll_s`` (routes use it to list metrics and check parameters). A read itself resolves
its metric against the generation its snapshot found live (:meth:`resolve`): a metric's
definition never changes within a generation (a change builds a new one), so a read
computes with the definition its rows were built with, and its batch floor."""

from __future__ import annotations

import logging
import threading
import time

from stratum.metrics import MetricCatalog, MetricDefinition
from stratum.storage.client import Storage
from stratum.storage.definitions import Binding, DefinitionStore

log = logging.getLogger(__name__)


class LiveDefinitions:
    def __init__(self, storage: Storage, catalog: MetricCatalog, poll_s: float = 2.0) -> None:
        self.store = DefinitionStore(storage)
        self.poll_s = poll_s
        self._catalog = catalog
        self._version: int | None = None
        self._fetched = 0.0
        self._bindings: dict[int, Binding] = {}
        self._lock = threading.Lock()

    @property
    def version(self) -> int | None:
        return self._version

    def catalog_now(self) -> MetricCatalog:
        """What is served now, without looking for a new version."""
        return self._catalog

    def current(self) -> MetricCatalog:
        if time.monotonic() - self._fetched >= self.poll_s:
            self.refresh()
        return self._catalog

    def refresh(self) -> MetricCatalog:
        try:
            generation, binding, catalog = self.store.live()
        except Exception as exc:  # noqa: BLE001 - keep serving what we have
            log.warning("could not look up the live definitions: %s", exc)
            self._fetched = time.monotonic()
            return self._catalog
        with self._lock:
            self._catalog, self._version = catalog, binding.version
            self._bindings[generation] = binding
            self._fetched = time.monotonic()
        return catalog

    def resolve(
        self, generation: int, metric: MetricDefinition
    ) -> tuple[MetricDefinition | None, int]:
        """The metric's definition in ``generation`` and its batch floor (0: every batch
        version counts); None if that generation does not define it. A generation bound
        to no version (built by a replay run outside a job) is read as asked."""
        name = metric.name
        binding = self._bindings.get(generation)
        found = None
        if binding is not None:
            found = self.store.catalog(binding.version).get(name)
        if found is None:  # unknown generation, or a metric added since
            binding = self.store.binding(generation)
            if binding is None:
                return metric, 0
            with self._lock:
                self._bindings[generation] = binding
            found = self.store.catalog(binding.version).get(name)
        assert binding is not None  # found came from a binding
        return found, binding.floors.get(name, 0)
