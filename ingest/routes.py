"""``POST /v1/events``: validate each event on its own, produce the valid ones, explain the
rest. 202 when at least one event was accepted, 422 when every event was bad, 400 when
the body cannot be read, 413 when it is too large, 429 when ingest already holds its
limit of bytes waiting for the log, 503 when the log does not acknowledge in time (or,
on the embedded broker, the journal cannot fsync) or Stratum is stopping."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel

from ingest.parsing import BodyError, parse_events
from ingest.producer import EventProducer
from stratum import telemetry
from stratum.errors import LogUnavailableError

router = APIRouter(tags=["ingest"])


class RejectedEvent(BaseModel):
    index: int
    error: str


class IngestResult(BaseModel):
    accepted: int
    rejected: list[RejectedEvent]


def get_producer(request: Request) -> EventProducer:
    state = request.app.state
    if getattr(state, "shutting_down", False):
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail={"code": "shutting_down", "message": "Stratum is stopping: it drains "
                    "what it accepted and takes no more; retry after it restarts",
                    "details": {}},
            headers={"Retry-After": "5"},
        )
    producer: EventProducer | None = getattr(state, "producer", None)
    if producer is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail={"code": "log_unavailable", "message": "ingest is not connected to the log",
                    "details": {}},
            headers={"Retry-After": "5"},
        )
    return producer


class IngestBudget:
    """Bytes of request bodies ingest holds (being read, or waiting for the log's
    acknowledgement) over all requests. Each request keeps its body until the log
    answers, so without a cap a slow log lets concurrent requests pile up in memory."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.used_bytes = 0
        self.peak_bytes = 0

    def take(self, size: int) -> bool:
        if self.used_bytes + size > self.limit_bytes:
            return False
        self.used_bytes += size
        self.peak_bytes = max(self.peak_bytes, self.used_bytes)
        return True

    def give_back(self, size: int) -> None:
        self.used_bytes -= size


def _budget(request: Request) -> IngestBudget:
    """One budget per app, made on first use (one event loop: no lock needed)."""
    state = request.app.state
    budget: IngestBudget | None = getattr(state, "ingest_budget", None)
    if budget is None:
        budget = state.ingest_budget = IngestBudget(state.settings.api.max_in_flight_bytes)
    return budget


def _error(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details or {}}


@router.post(
    "/v1/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=IngestResult,
    summary="Ingest events (JSON array or NDJSON)",
    openapi_extra={"requestBody": {"content": {
        "application/json": {"example": [{"event_id": "e1", "ts": "2026-11-21T10:00:00Z",
                                          "type": "purchase", "country": "DE",
                                          "amount": 12.5}]},
        "application/x-ndjson": {"schema": {"type": "string"}},
    }, "required": True}},
)
async def post_events(
    request: Request, producer: Annotated[EventProducer, Depends(get_producer)]
) -> IngestResult:
    limit: int = request.app.state.settings.api.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, detail=_error("body_too_large",
                                               f"the body is larger than {limit} bytes; "
                                               "split it into smaller batches"))
    budget = _budget(request)
    body = bytearray()
    try:
        async for chunk in request.stream():
            if not budget.take(len(chunk)):
                raise HTTPException(429, detail=_error(
                    "ingest_saturated",
                    f"ingest already holds {budget.used_bytes} bytes of events waiting for "
                    f"the log (limit {budget.limit_bytes}); retry shortly"),
                    headers={"Retry-After": "1"})
            body.extend(chunk)
            if len(body) > limit:
                raise HTTPException(413, detail=_error("body_too_large",
                                                       f"the body is larger than {limit} bytes; "
                                                       "split it into smaller batches"))
        max_age_ms = int(request.app.state.settings.api.max_event_age_days * 86_400_000)
        return await _ingest(bytes(body), producer, max_age_ms)
    finally:
        budget.give_back(len(body))


async def _ingest(body: bytes, producer: EventProducer, max_age_ms: int) -> IngestResult:
    try:
        batch = parse_events(body, max_age_ms=max_age_ms)
    except BodyError as exc:
        raise HTTPException(400, detail=_error("unreadable_body", str(exc))) from exc
    rejected = [RejectedEvent(index=r.index, error=r.error) for r in batch.rejected]
    if not batch.events:
        telemetry.EVENTS_REJECTED.inc(len(rejected))
        raise HTTPException(422, detail=_error(
            "no_valid_events", f"all {len(rejected)} event(s) were rejected",
            {"rejected": [r.model_dump() for r in rejected]}))
    try:
        await producer.send(batch.events)
    except LogUnavailableError as exc:
        raise HTTPException(503, detail=_error("log_unavailable", str(exc)),
                            headers={"Retry-After": "5"}) from exc
    telemetry.EVENTS_ACCEPTED.inc(len(batch.events))
    telemetry.EVENTS_REJECTED.inc(len(rejected))
    return IngestResult(accepted=len(batch.events), rejected=rejected)
