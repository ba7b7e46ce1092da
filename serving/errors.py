"""Domain errors map to HTTP here, in one place; every 4xx/5xx body has the same shape:
``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from stratum.storage import StorageError, StorageUnavailableError
from stratum.storage.jobs import JobConflictError


def error_body(code: str, message: str, details: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail
        if isinstance(detail, dict) and "code" in detail:
            body = {"error": {"details": {}, **detail}}
        else:
            body = error_body(f"http_{exc.status_code}", str(detail))
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"where": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                    for e in exc.errors()]
        message = "; ".join(f"{p['where']}: {p['message']}" for p in problems)
        return JSONResponse(error_body("invalid_request", message, {"problems": problems}),
                              status_code=422)

    @app.exception_handler(JobConflictError)
    async def _conflict(_: Request, exc: JobConflictError) -> JSONResponse:
        return JSONResponse(error_body("job_conflict", str(exc), {"job_id": exc.job_id}),
                              status_code=409)

    @app.exception_handler(StorageUnavailableError)
    async def _unavailable(_: Request, exc: StorageUnavailableError) -> JSONResponse:
        return JSONResponse(error_body("storage_unavailable", str(exc)), status_code=503,
                              headers={"Retry-After": "5"})

    @app.exception_handler(StorageError)
    async def _storage(_: Request, exc: StorageError) -> JSONResponse:
        return JSONResponse(error_body("storage_error", str(exc)), status_code=500)
