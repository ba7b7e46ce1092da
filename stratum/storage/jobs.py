"""Batch runs and replays, recorded in the ``jobs`` table so every process and the UI see
the same history and progress.

``jobs`` is a ReplacingMergeTree(updated_at) keyed by ``job_id``: every change inserts a
new full row with a fresh ``updated_at`` and reads use ``FINAL``, so the newest row of each
job wins. Updates never mutate a row in place; a killed process leaves its last row
behind, which :meth:`JobStore.fail_stale_running` closes at the next start.

One job per kind at a time: :meth:`JobStore.submit` REJECTS a new job while one of the
same kind is queued or running (:class:`JobConflictError`); it does not queue a second one.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from stratum.errors import StratumError, describe_failure
from stratum.storage.client import Storage

JobKind = Literal["batch", "replay", "definitions"]
JobTrigger = Literal["schedule", "api", "admin", "cli"]
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
ACTIVE_STATES: tuple[JobState, ...] = ("queued", "running")
INTERRUPTED = "interrupted: the process running it stopped"

_COLUMNS = (
    "job_id",
    "kind",
    "trigger",
    "params",
    "state",
    "units_done",
    "units_total",
    "rows_in",
    "rows_out",
    "horizon",
    "created_at",
    "started_at",
    "finished_at",
    "error",
    "updated_at",
)
_SELECT = ", ".join(_COLUMNS)
LATEST_HORIZON_WHERE = "kind = 'batch' AND state = 'succeeded' AND horizon IS NOT NULL"
LATEST_HORIZON_ORDER = "finished_at DESC, created_at DESC"


class JobConflictError(StratumError):
    """A job of this kind is already queued or running; wait for it (``job_id``)."""

    def __init__(self, kind: str, job_id: str) -> None:
        self.kind = kind
        self.job_id = job_id
        super().__init__(
            f"a {kind} job is already queued or running (job {job_id}); "
            "wait for it to finish, then submit again"
        )


def utc_now() -> datetime:
    """Now, UTC, at the millisecond precision the table stores."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def as_utc(value: datetime | None) -> datetime | None:
    """chDB returns naive datetimes for DateTime64(..., 'UTC') columns: they are UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Job(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    kind: JobKind
    trigger: JobTrigger
    params: dict[str, Any] = Field(default_factory=dict)
    state: JobState = "queued"
    units_done: int = Field(0, ge=0)
    units_total: int = Field(0, ge=0)
    rows_in: int = Field(0, ge=0)
    rows_out: int = Field(0, ge=0)
    horizon: datetime | None = None
    created_at: datetime = Field(default_factory=utc_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str = ""
    updated_at: datetime | None = Field(None, description="set by the store on every save")

    @field_validator("horizon", "created_at", "started_at", "finished_at", "updated_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


Jobs = list[Job]  # aliases: inside JobStore, ``list`` is the method
JobPage = tuple[Jobs, int]


class _MonotonicClock:
    """``updated_at`` for saves: strictly increasing within the process, so two saves of
    the same job in the same microsecond still order correctly under FINAL."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = datetime.min.replace(tzinfo=UTC)

    def tick(self) -> datetime:
        with self._lock:
            now = datetime.now(UTC)
            self._last = max(now, self._last + timedelta(microseconds=1))
            return self._last


_clock = _MonotonicClock()
_submit_lock = threading.Lock()


class JobStore:
    """Reads and writes of ``jobs`` for one component's :class:`Storage`."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._table = f"{storage.database}.jobs"

    def create(
        self, kind: JobKind, trigger: JobTrigger, params: dict[str, Any] | None = None
    ) -> Job:
        """Record a new queued job (no conflict check; see :meth:`submit`)."""
        return self.save(Job(kind=kind, trigger=trigger, params=params or {}))

    def submit(
        self, kind: JobKind, trigger: JobTrigger, params: dict[str, Any] | None = None
    ) -> Job:
        """Queue a job unless one of this kind is active: then raise :class:`JobConflictError`.

        The check runs before and after the insert, so two processes submitting at once
        agree on one winner (the older job); the loser is recorded as cancelled.
        """
        with _submit_lock:
            current = self.active(kind)
            if current is not None:
                raise JobConflictError(kind, current.job_id)
            job = self.create(kind, trigger, params)
            winner = self.active(kind, oldest=True)
            if winner is not None and winner.job_id != job.job_id:
                self.save(
                    job.model_copy(
                        update={
                            "state": "cancelled",
                            "finished_at": utc_now(),
                            "error": f"rejected: job {winner.job_id} was submitted at the "
                            "same time",
                        }
                    )
                )
                raise JobConflictError(kind, winner.job_id)
            return job

    def save(self, job: Job) -> Job:
        """Insert ``job`` as its newest row; returns it with the ``updated_at`` written."""
        saved = job.model_copy(update={"updated_at": _clock.tick()})
        row = saved.model_dump()
        row["params"] = orjson.dumps(saved.params).decode()
        self._storage.insert("jobs", [[row[c] for c in _COLUMNS]], _COLUMNS)
        return saved

    def start(self, job: Job) -> Job | None:
        """Mark a picked-up job running, or cancelled if a cancel request reached it.

        The admin API flags a queued job before it marks it cancelled, and the flag is
        read after the running row is written: a cancel that races the runner's pick-up
        is seen by one side or the other, never lost (the runner's later progress rows
        would otherwise overwrite the cancelled one)."""
        running = self.save(job.model_copy(update={"state": "running", "started_at": utc_now()}))
        if not cancel_requested(self._storage, job.job_id):
            return running
        self.save(
            running.model_copy(
                update={
                    "state": "cancelled",
                    "finished_at": utc_now(),
                    "error": "cancelled before it ran",
                }
            )
        )
        return None

    def get(self, job_id: str) -> Job | None:
        found = self._select("job_id = {job_id:String}", {"job_id": job_id}, limit=1)
        return found[0] if found else None

    def active(self, kind: JobKind, *, oldest: bool = False) -> Job | None:
        """The queued or running job of ``kind``, if any (running first, then newest)."""
        order = "created_at, job_id" if oldest else "state = 'running' DESC, created_at DESC"
        found = self._select(
            "kind = {kind:String} AND state IN ('queued', 'running')",
            {"kind": kind},
            order=order,
            limit=1,
        )
        return found[0] if found else None

    def next_queued(self, kind: JobKind) -> Job | None:
        """The oldest queued job of ``kind``: the next one a runner should pick up."""
        found = self._select(
            "kind = {kind:String} AND state = 'queued'",
            {"kind": kind},
            order="created_at, job_id",
            limit=1,
        )
        return found[0] if found else None

    def latest_horizon(self) -> datetime | None:
        """Horizon of the newest succeeded batch job: how far batch values are final."""
        found = self._select(LATEST_HORIZON_WHERE, {}, order=LATEST_HORIZON_ORDER, limit=1)
        return found[0].horizon if found else None

    def latest_horizon_sql(self) -> str:
        """:meth:`latest_horizon` as a subquery (one row, ``horizon``, or none), for
        readers that fetch it in one statement with other state."""
        return (
            f"SELECT horizon FROM {self._table} FINAL WHERE {LATEST_HORIZON_WHERE} "
            f"ORDER BY {LATEST_HORIZON_ORDER} LIMIT 1"
        )

    def fail_stale_running(self, kind: JobKind) -> Jobs:
        """At process start: jobs left running by a killed process become failed."""
        stale = self._select("kind = {kind:String} AND state = 'running'", {"kind": kind})
        runs = [JobRun(self, job) for job in stale]
        for run in runs:
            run.failed(INTERRUPTED)
        return [run.job for run in runs]

    def list(self, kind: JobKind | None = None, limit: int = 50, offset: int = 0) -> JobPage:
        """One page of jobs, newest first, and the total number matching."""
        where = "kind = {kind:String}" if kind else "1"
        params: dict[str, Any] = {"kind": kind} if kind else {}
        jobs = self._select(
            where,
            params,
            order="created_at DESC, job_id",
            limit=max(0, limit),
            offset=max(0, offset),
        )
        total = self._storage.query(
            f"SELECT count() FROM {self._table} FINAL WHERE {where}", params
        )
        return jobs, int(total[0][0])

    def _select(
        self,
        where: str,
        params: dict[str, Any],
        *,
        order: str = "created_at",
        limit: int | None = None,
        offset: int = 0,
    ) -> Jobs:
        sql = f"SELECT {_SELECT} FROM {self._table} FINAL WHERE {where} ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        return [_job(row) for row in self._storage.query_dicts(sql, params)]


class JobRun:
    """One picked-up job from running to its outcome, each step written as the job's
    newest row. The batch, replay and definitions runners all end a job through it, so
    every kind ends alike: a finish time, one line of error, the last progress kept."""

    def __init__(self, store: JobStore, job: Job) -> None:
        self.store = store
        self.job = job

    def begin(self) -> bool:
        """Mark it running; False when a cancel reached it first (it is then cancelled)."""
        started = self.store.start(self.job)
        if started is None:
            return False
        self.job = started
        return True

    def update(self, **fields: Any) -> Job:
        """Progress: ``fields`` (e.g. ``units_done``, ``params``) in a new row."""
        self.job = self.store.save(self.job.model_copy(update=fields))
        return self.job

    def succeeded(self, **fields: Any) -> Job:
        return self.update(state="succeeded", finished_at=utc_now(), **fields)

    def cancelled(self, reason: str) -> Job:
        return self.update(state="cancelled", finished_at=utc_now(), error=reason)

    def failed(self, cause: BaseException | str) -> str:
        """Record the failure; returns the one-line error (the traceback is the log's)."""
        error = cause if isinstance(cause, str) else describe_failure(cause)
        self.update(state="failed", finished_at=utc_now(), error=error)
        return error


def _job(row: dict[str, Any]) -> Job:
    data = dict(row)
    data["params"] = orjson.loads(data["params"]) if data["params"] else {}
    return Job.model_validate(data)


CANCEL_KEY = "cancel:"


def request_cancel(storage: Storage, job_id: str) -> None:
    """Ask the process running a job to stop it. A flag beside the job row, so that the
    runner's own progress saves cannot overwrite the request."""
    storage.insert("kv", [[CANCEL_KEY + job_id, "1", utc_now()]], ("key", "value", "updated_at"))


def cancel_requested(storage: Storage, job_id: str) -> bool:
    rows = storage.query(
        f"SELECT value FROM {storage.database}.kv FINAL WHERE key = {{k:String}}",
        {"k": CANCEL_KEY + job_id},
    )
    return bool(rows and rows[0][0] == "1")
