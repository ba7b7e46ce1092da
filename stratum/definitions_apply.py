"""Applying a new version of the definitions while everything runs (Kappa-style).

- added metrics: the live generation's binding moves to the new version at once; every
  worker sees it at its next flush and computes the metric from then on; a batch job
  backfills its history from the archive (its coverage is missing, so an incremental
  run recomputes every hour for it).
- changed metrics (or a deleted one defined again before its windows were dropped): a
  replay job builds a new generation with the new version while the old one serves;
  the switch binds the new generation to the new version, with batch floors that hide
  the metric's older batch windows until a batch job (started after the switch)
  recomputes them.
- deleted metrics: the binding moves at once, so workers stop computing and readers stop
  serving it; its windows are dropped after the retention setting.

One change at a time: while a replay job is queued or running, a change is refused
(:class:`DefinitionsBusyError`), so a generation being built never misses a change made
meanwhile. Every change is recorded as a ``definitions`` job listing the jobs it started.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from stratum.definitions import Change, diff
from stratum.errors import StratumError
from stratum.metrics import MetricCatalog
from stratum.storage.client import Storage
from stratum.storage.definitions import Binding, DefinitionStore
from stratum.storage.jobs import (
    INTERRUPTED,
    Job,
    JobConflictError,
    JobRun,
    JobStore,
    JobTrigger,
    utc_now,
)

_lock = threading.Lock()
STALE_AFTER = timedelta(seconds=60)  # an apply takes milliseconds: its process died


class DefinitionsBusyError(StratumError):
    """A replay is queued or running; the change waits for it (``job_id``)."""

    def __init__(self, job_id: str, kind: str = "replay") -> None:
        self.job_id = job_id
        super().__init__(
            f"a {kind} job is queued or running (job {job_id}); definitions "
            "change one at a time: wait for it, then apply again"
        )


@dataclass(frozen=True)
class Applied:
    version: int
    change: Change
    rebuilds: list[str]
    jobs: list[Job]
    restart_needed: list[str] = field(default_factory=list)


# The newest version this process bound to the live generation: an in-process speed
# worker checks it before aggregating (free), so a metric deleted or added through this
# process's API is computed by the new version from the next message on, not from the
# next flush's poll of the stored state (what other processes rely on).
# Keyed by database: one process may serve several (tests run many stacks in one).
_bound_here: dict[str, int] = {}


def bound_here(database: str) -> int | None:
    return _bound_here.get(database)


def apply_catalog(
    storage: Storage,
    edit: Callable[[MetricCatalog], MetricCatalog],
    *,
    author: str,
    reason: str,
    trigger: JobTrigger = "api",
) -> Applied:
    """Store ``edit(live catalog)`` as the next version and start what makes it served.
    The edit sees the live version read under the lock, so two edits never lose one."""
    store = DefinitionStore(storage)
    jobs = JobStore(storage)
    with _lock:
        active = jobs.active("replay")
        if active is not None:
            raise DefinitionsBusyError(active.job_id)
        edit(store.live()[2])  # a bad draft fails here, before anything is recorded
        stale = jobs.active("definitions")
        if stale is not None and utc_now() - stale.created_at > STALE_AFTER:
            JobRun(jobs, stale).failed(INTERRUPTED)
        try:  # the definitions job is the lock between processes (one active at a time)
            record = jobs.submit("definitions", trigger, {"author": author, "reason": reason})
        except JobConflictError as exc:
            raise DefinitionsBusyError(exc.job_id, "definitions") from exc
        run = JobRun(jobs, record)
        run.update(state="running", started_at=utc_now())
        try:
            live = store.live()[2]
            version, change, rebuilds, started = _apply(store, jobs, edit, author, reason, trigger)
            restart = restart_needed(live, store.catalog(version))
        except BaseException as exc:
            run.failed(exc)
            raise
        record = run.succeeded(
            units_done=1,
            units_total=1,
            params={
                **run.job.params,
                "version": version,
                "change": change.summary(),
                "jobs": [j.job_id for j in started],
                "restart_needed": restart,
            },
        )
    return Applied(version, change, rebuilds, [record, *started], restart)


def restart_needed(live: MetricCatalog, new: MetricCatalog) -> list[str]:
    """What of ``new`` no running worker reads until the workers restart: a source some
    metric now reads that had no worker, or one whose definition changed (a worker's
    Faust agent subscribes its topic, and takes its mapping, at start only). Its metrics
    are defined at once, but nothing of it is computed (nor archived) until then."""
    notices = []
    read = set(live.source_names)
    for name in new.source_names[1:]:
        source = new.source(name)
        assert source is not None
        if name not in read:
            notices.append(
                f"source {name!r} (topic {source.topic!r}) is read after the workers restart"
            )
        elif live.source(name) != source:
            notices.append(
                f"source {name!r} (topic {source.topic!r}) is read with its new definition "
                "after the workers restart"
            )
    return notices


def _apply(
    store: DefinitionStore,
    jobs: JobStore,
    edit: Callable[[MetricCatalog], MetricCatalog],
    author: str,
    reason: str,
    trigger: JobTrigger,
) -> tuple[int, Change, list[str], list[Job]]:
    """Under the definitions job: the new version, its binding or replay, its batch run."""
    generation, binding, live = store.live()
    new = edit(live)
    change = diff(live, new)
    pending_delete = store.deleted()
    rebuilds = sorted({*change.changed, *(n for n in change.added if n in pending_delete)})
    version = store.append(new, author=author, reason=reason, change=change.summary())
    started: list[Job] = []
    if change.deleted:
        store.mark_deleted(change.deleted, int(time.time() * 1000))
    if rebuilds:
        started.append(
            jobs.submit(
                "replay",
                trigger,
                {
                    "definitions_version": version,
                    "rebuild": rebuilds,
                    "then_batch": True,
                    "change": change.summary(),
                },
            )
        )
    else:
        floors = {k: v for k, v in binding.floors.items() if new.get(k) is not None}
        store.bind(generation, Binding(version, floors))
        _bound_here[store.storage.database] = version
        if change.added:
            started.append(submit_batch(jobs, trigger, version))
    store.clear_deleted([n for n in change.added if n not in rebuilds])
    return version, change, rebuilds, started


def submit_batch(jobs: JobStore, trigger: JobTrigger, version: int) -> Job:
    """A batch run for a new version; if one is already active, that one (an
    incremental run planned after the change covers the new metric's hours too; one
    planned before leaves them to the next run)."""
    try:
        return jobs.submit(
            "batch", trigger, {"mode": "incremental", "definitions_version": version}
        )
    except JobConflictError as exc:
        found = jobs.get(exc.job_id)
        if found is None:
            raise
        return found


def batch_floor(storage: Storage) -> int:
    """A batch version newer than every one written or being written (versions are at
    least the wall clock in ms at a run's start, :func:`batch_layer.writer.next_version`)."""
    db = storage.database
    found = storage.query(
        f"SELECT greatest((SELECT max(version) FROM {db}.batch_windows), "
        f"(SELECT max(version) FROM {db}.batch_coverage))"
    )
    return max(time.time_ns() // 1_000_000, int(found[0][0] or 0) + 1)
