"""``/v1/late-events`` and ``/v1/dead-letters``: what the speed layer routed aside, newest
first, paginated (kept 30 days; the Kafka topics hold the same records)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from serving.deps import ReadAccess, ReaderDep
from serving.routes.common import READ_ERRORS, iso, ms_of
from stratum.storage import Storage

router = APIRouter(tags=["pipeline"], dependencies=[ReadAccess], responses=READ_ERRORS)


class SideEvent(BaseModel):
    recorded_at: str
    recorded_at_ms: int
    ts: str | None = Field(description="the event's own time (late events)")
    ts_ms: int | None
    event_id: str
    reason: str
    topic: str
    partition: int
    offset: int
    payload: str = Field(description="the event (late) or the raw record (dead letter)")


class SideEventPage(BaseModel):
    items: list[SideEvent]
    total: int
    limit: int
    offset: int


def _page(storage: Storage, kind: str, limit: int, offset: int) -> SideEventPage:
    db = storage.database
    rows = storage.query_dicts(
        f"SELECT recorded_at, ts, event_id, reason, topic, partition, offset, payload "
        f"FROM {db}.side_events WHERE kind = {{k:String}} "
        f"ORDER BY recorded_at DESC LIMIT {int(limit)} OFFSET {int(offset)}",
        {"k": kind},
    )
    total = storage.query(
        f"SELECT count() FROM {db}.side_events WHERE kind = {{k:String}}", {"k": kind}
    )[0][0]
    items = []
    for row in rows:
        recorded = ms_of(row["recorded_at"]) or 0
        ts = ms_of(row["ts"])
        items.append(
            SideEvent(
                recorded_at=iso(recorded),
                recorded_at_ms=recorded,
                ts=iso(ts) if ts is not None else None,
                ts_ms=ts,
                event_id=row["event_id"],
                reason=row["reason"],
                topic=row["topic"],
                partition=int(row["partition"]),
                offset=int(row["offset"]),
                payload=row["payload"],
            )
        )
    return SideEventPage(items=items, total=int(total), limit=limit, offset=offset)


@router.get(
    "/v1/late-events",
    response_model=SideEventPage,
    summary="Events later than the allowed lateness (batch counts them)",
)
async def late_events(
    reader: ReaderDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> SideEventPage:
    return await run_in_threadpool(_page, reader.storage, "late", limit, offset)


@router.get(
    "/v1/dead-letters",
    response_model=SideEventPage,
    summary="Malformed log records, with the reason",
)
async def dead_letters(
    reader: ReaderDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> SideEventPage:
    return await run_in_threadpool(_page, reader.storage, "dead_letter", limit, offset)
