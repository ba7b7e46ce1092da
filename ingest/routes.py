"""``POST /v1/events``: validate each event on its own, produce the valid ones, explain the
rest. 202 when at least one event was accepted, 422 when every event was bad, 400 when
the body cannot be read, 401 without the ingest token (if one is set), 413 when it is too
large or holds too many events, 415 unless it is JSON or NDJSON, 429 when ingest already
holds its limit of bytes waiting for the log, 503 when the log does not acknowledge in
time (or, on the embedded broker, the journal cannot fsync) or Stratum is stopping.

Bounded work per request: parsing and validation run in a worker thread, one body at a
time per process (each parse holds the GIL in orjson and builds the body's objects, so
running them side by side buys no speed and multiplies the memory), the answer lists at
most ``max_rejections_listed`` rejections (the rest are counted), and each reason is cut
to a short prefix."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field

from ingest.parsing import BodyError, BodyLimits, ParsedBatch, TooManyItemsError, parse_events
from stratum import telemetry
from stratum.errors import LogUnavailableError, error_detail
from stratum.producer import EventProducer
from stratum.settings import ApiSettings, Settings
from stratum.tokens import TokenDep, matches

router = APIRouter(tags=["ingest"])
# Content types a browser cannot send across origins without asking first (CORS
# preflight): text/plain, form and XML bodies from any page were ingested before.
CONTENT_TYPES = ("application/json", "application/x-ndjson")
MAX_REASON_CHARS = 300


class RejectedEvent(BaseModel):
    index: int
    error: str


class IngestResult(BaseModel):
    accepted: int
    rejected: list[RejectedEvent] = Field(
        description="the first rejected events (up to "
        "STRATUM_API__MAX_REJECTIONS_LISTED) with reasons"
    )
    rejected_count: int = Field(0, description="all rejected events, listed or not")


def get_producer(request: Request) -> EventProducer:
    state = request.app.state
    if getattr(state, "shutting_down", False):
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=error_detail(
                "shutting_down",
                "Stratum is stopping: it drains what it "
                "accepted and takes no more; retry after it restarts",
            ),
            headers={"Retry-After": "5"},
        )
    producer: EventProducer | None = getattr(state, "producer", None)
    if producer is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=error_detail("log_unavailable", "ingest is not connected to the log"),
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


def require_ingest(request: Request, token: TokenDep) -> None:
    """With an ingest token set, ingest needs it (or the admin token)."""
    settings: Settings = request.app.state.settings
    expected = settings.api.ingest_token
    if expected is None:
        return
    if not matches(token, (expected, settings.api.admin_token)):
        raise HTTPException(
            401,
            detail=error_detail(
                "unauthorized",
                "ingest is token-protected here: send 'Authorization: Bearer "
                "<token>' with the ingest token (setting STRATUM_API__INGEST_TOKEN)",
            ),
            headers={"WWW-Authenticate": "Bearer"},
        )


def _parse_lock(request: Request) -> asyncio.Semaphore:
    """One parse at a time per app (made on first use, on the one event loop)."""
    state = request.app.state
    lock: asyncio.Semaphore | None = getattr(state, "ingest_parse_lock", None)
    if lock is None:
        lock = state.ingest_parse_lock = asyncio.Semaphore(1)
    return lock


def _check_content_type(request: Request) -> None:
    declared = request.headers.get("content-type", "")
    media = declared.split(";", 1)[0].strip().lower()
    if media not in CONTENT_TYPES:
        raise HTTPException(
            415,
            detail=error_detail(
                "unsupported_media_type",
                f"send events as {' or '.join(CONTENT_TYPES)} (Content-Type header); got "
                f"{media[:60]!r}"
                if media
                else f"send events with a Content-Type header: {' or '.join(CONTENT_TYPES)}",
                accepted=list(CONTENT_TYPES),
            ),
        )


@router.post(
    "/v1/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=IngestResult,
    dependencies=[Depends(require_ingest)],
    summary="Ingest events (JSON array or NDJSON)",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "example": [
                        {
                            "event_id": "e1",
                            "ts": "2026-11-21T10:00:00Z",
                            "type": "purchase",
                            "country": "DE",
                            "amount": 12.5,
                        }
                    ]
                },
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
            "required": True,
        }
    },
)
async def post_events(
    request: Request, producer: Annotated[EventProducer, Depends(get_producer)]
) -> IngestResult:
    _check_content_type(request)
    limit: int = request.app.state.settings.api.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(
            413,
            detail=error_detail(
                "body_too_large",
                f"the body is larger than {limit} bytes; split it into smaller batches",
            ),
        )
    budget = _budget(request)
    body = bytearray()
    try:
        async for chunk in request.stream():
            if not budget.take(len(chunk)):
                raise HTTPException(
                    429,
                    detail=error_detail(
                        "ingest_saturated",
                        f"ingest already holds {budget.used_bytes} bytes of events waiting for "
                        f"the log (limit {budget.limit_bytes}); retry shortly",
                    ),
                    headers={"Retry-After": "1"},
                )
            body.extend(chunk)
            if len(body) > limit:
                raise HTTPException(
                    413,
                    detail=error_detail(
                        "body_too_large",
                        f"the body is larger than {limit} bytes; split it into smaller batches",
                    ),
                )
        async with _parse_lock(request):
            batch = await asyncio.to_thread(_parse, bytes(body), request.app.state.settings)
        return await _ingest(batch, producer, request.app.state.settings.api)
    finally:
        budget.give_back(len(body))


def _parse(body: bytes, settings: Settings) -> ParsedBatch:
    """In a worker thread: the HTTP errors are raised by the caller's thread too."""
    api = settings.api
    limits = BodyLimits(max_items=api.max_events_per_body)
    try:
        return parse_events(
            body, limits=limits, max_age_ms=int(api.max_event_age_days * 86_400_000)
        )
    except TooManyItemsError as exc:
        raise HTTPException(
            413, detail=error_detail("too_many_events", str(exc), max_events=limits.max_items)
        ) from exc
    except BodyError as exc:
        raise HTTPException(400, detail=error_detail("unreadable_body", str(exc))) from exc


async def _ingest(batch: ParsedBatch, producer: EventProducer, api: ApiSettings) -> IngestResult:
    count = len(batch.rejected)
    rejected = [
        RejectedEvent(index=r.index, error=_short(r.error))
        for r in batch.rejected[: api.max_rejections_listed]
    ]
    if not batch.events and not count:
        raise HTTPException(
            422,
            detail=error_detail(
                "empty_batch",
                "the body holds no events: send a JSON array (or NDJSON) of at least one event",
                rejected=[],
                rejected_count=0,
            ),
        )
    if not batch.events:
        telemetry.EVENTS_REJECTED.inc(count)
        raise HTTPException(
            422,
            detail=error_detail(
                "no_valid_events",
                f"all {count} event(s) were rejected"
                + (f"; the first {len(rejected)} are listed" if len(rejected) < count else ""),
                rejected=[r.model_dump() for r in rejected],
                rejected_count=count,
            ),
        )
    try:
        await producer.send(batch.events)
    except LogUnavailableError as exc:
        raise HTTPException(
            503, detail=error_detail("log_unavailable", str(exc)), headers={"Retry-After": "5"}
        ) from exc
    telemetry.EVENTS_ACCEPTED.inc(len(batch.events))
    telemetry.EVENTS_REJECTED.inc(count)
    return IngestResult(accepted=len(batch.events), rejected=rejected, rejected_count=count)


def _short(reason: str) -> str:
    """A reason may quote the event; the answer quotes at most a prefix of it."""
    return reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS] + "…"
