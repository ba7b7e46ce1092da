"""Domain errors map to HTTP here, in one place; every 4xx/5xx body has the same shape:
``{"error": {"code", "message", "details"}}``.

    StarletteHTTPException  (unknown route 404, 405, and every HTTPException a route raises)
    RequestValidationError  422 invalid_request, one problem per bad parameter
    JobConflictError        409 job_conflict, details.job_id names the active job
    StorageUnavailableError 503 storage_unavailable, Retry-After
    StorageError            500 storage_error
    Exception               500 internal_error (logged with its traceback)

Why a catch-all: a client reading ``error.code`` must never meet Starlette's plain-text
"Internal Server Error" or ``{"detail": ...}``.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.queries import AsOfError, DefinitionChangedError
from stratum.definitions import problems_of
from stratum.definitions_apply import DefinitionsBusyError
from stratum.errors import cite, error_detail
from stratum.metrics import MetricDefinitionError
from stratum.storage import StorageError, StorageUnavailableError
from stratum.storage.jobs import JobConflictError

log = logging.getLogger(__name__)

# The codes for statuses a route raises without a code of its own.
_STATUS_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    401: "unauthorized",
    413: "body_too_large",
    400: "bad_request",
}


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable, stable: switch on this")
    message: str = Field(description="what happened and what to do next, for people")
    details: dict[str, Any] = Field(
        default_factory=dict, description="structured context; keys depend on the code"
    )


class ErrorResponse(BaseModel):
    error: ErrorDetail

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "error": {
                        "code": "unknown_metric",
                        "message": "no metric named 'revnue'",
                        "details": {"metrics": ["events", "revenue"]},
                    }
                }
            ]
        }
    }


_DESCRIPTIONS = {
    400: "The request body cannot be read",
    401: "A token is required: send 'Authorization: Bearer <token>'",
    404: "No such resource",
    409: "A job of that kind is already queued or running",
    413: "The body is too large",
    415: "The body is not application/json or application/x-ndjson",
    422: "A parameter or the body is invalid",
    429: "Ingest holds its limit of bytes waiting for the log; retry after Retry-After",
    500: "Stratum failed; the message says where",
    503: "A dependency (ClickHouse, the log) is unreachable; retry after Retry-After",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries: each status documented with the error body."""
    return {
        status: {
            "model": ErrorResponse,
            "description": _DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
        }
        for status in statuses
    }


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": error_detail(code, message, **(details or {}))}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail: Any = exc.detail  # a str in Starlette's type; FastAPI's subclass takes any value
        if isinstance(detail, dict) and "code" in detail:
            body = {"error": {**detail, "details": detail.get("details") or {}}}
        elif exc.status_code == 404 and detail == HTTPStatus.NOT_FOUND.phrase:
            path = request.url.path
            body = error_body(
                "not_found",
                f"no route {cite(path, 80)}: see /docs for the API's routes",
                {"path": path[:200]},
            )
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            body = error_body(
                "method_not_allowed",
                f"{request.method} is not allowed on {request.url.path}"
                + (f"; use {allowed}" if allowed else ""),
                {"allow": [m.strip() for m in allowed.split(",") if m.strip()]},
            )
        else:
            code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
            body = error_body(code, str(detail))
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"where": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        message = "; ".join(f"{p['where']}: {p['message']}" for p in problems)
        return JSONResponse(
            error_body("invalid_request", message, {"problems": problems}), status_code=422
        )

    @app.exception_handler(JobConflictError)
    async def _conflict(_: Request, exc: JobConflictError) -> JSONResponse:
        return JSONResponse(
            error_body("job_conflict", str(exc), {"job_id": exc.job_id}), status_code=409
        )

    @app.exception_handler(DefinitionChangedError)
    async def _redefined(_: Request, exc: DefinitionChangedError) -> JSONResponse:
        return JSONResponse(
            error_body("definition_changed", str(exc)),
            status_code=409,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(AsOfError)
    async def _as_of(_: Request, exc: AsOfError) -> JSONResponse:
        return JSONResponse(
            error_body("invalid_parameter", str(exc), {"parameter": "as_of"}), status_code=422
        )

    @app.exception_handler(DefinitionsBusyError)
    async def _busy(_: Request, exc: DefinitionsBusyError) -> JSONResponse:
        return JSONResponse(
            error_body("definitions_busy", str(exc), {"job_id": exc.job_id}), status_code=409
        )

    @app.exception_handler(MetricDefinitionError)
    async def _bad_definition(_: Request, exc: MetricDefinitionError) -> JSONResponse:
        return JSONResponse(
            error_body("invalid_definition", str(exc), {"problems": problems_of(exc)}),
            status_code=422,
        )

    @app.exception_handler(StorageUnavailableError)
    async def _unavailable(_: Request, exc: StorageUnavailableError) -> JSONResponse:
        return JSONResponse(
            error_body("storage_unavailable", str(exc)),
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(StorageError)
    async def _storage(_: Request, exc: StorageError) -> JSONResponse:
        return JSONResponse(error_body("storage_error", str(exc)), status_code=500)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body(
                "internal_error",
                f"Stratum failed on {request.method} {request.url.path}: "
                f"{type(exc).__name__}; the server log has the traceback",
            ),
            status_code=500,
        )
