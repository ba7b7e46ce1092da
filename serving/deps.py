"""Dependencies: settings, the metric catalog, readers, pipeline state, and the token
checks (admin; read, if a read token is set; ingest, if an ingest token is set). Tokens
come only as headers, never from cookies, so a page on another site cannot borrow them."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from serving.pipeline import CounterRates, PipelineReader
from serving.queries import MetricReader
from stratum.metrics import MetricCatalog
from stratum.settings import Settings
from stratum.storage.jobs import JobStore


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_catalog(request: Request) -> MetricCatalog:
    catalog: MetricCatalog = request.app.state.catalog
    return catalog


def get_reader(request: Request) -> MetricReader:
    reader: MetricReader = request.app.state.reader
    return reader


def get_pipeline(request: Request) -> PipelineReader:
    pipeline: PipelineReader = request.app.state.pipeline
    return pipeline


def get_rates(request: Request) -> CounterRates:
    rates: CounterRates = request.app.state.rates
    return rates


def get_jobs(request: Request) -> JobStore:
    return JobStore(request.app.state.reader.storage)


def _presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-stratum-token")


def _matches(token: str | None, expected: str | None) -> bool:
    """Constant-time; an empty token never matches, even an empty setting."""
    return bool(token) and bool(expected) and secrets.compare_digest(
        str(token).encode(), str(expected).encode())


def may_read(request: Request, settings: Settings) -> bool:
    """Whether this request may see reads: no read token set, or it presents the read
    (or admin) token."""
    expected = settings.api.read_token
    if expected is None:
        return True
    token = _presented_token(request)
    return _matches(token, expected) or _matches(token, settings.api.admin_token)


def require_admin(request: Request, settings: Annotated[Settings, Depends(get_settings)]
                  ) -> None:
    if not _matches(_presented_token(request), settings.api.admin_token):
        raise HTTPException(401, detail={
            "code": "unauthorized",
            "message": "admin endpoints need the admin token: send the header "
                       "'Authorization: Bearer <token>' (the token is the setting "
                       "STRATUM_API__ADMIN_TOKEN)",
            "details": {}}, headers={"WWW-Authenticate": "Bearer"})


def require_reader(request: Request, settings: Annotated[Settings, Depends(get_settings)]
                   ) -> None:
    if not may_read(request, settings):
        raise HTTPException(401, detail={
            "code": "unauthorized",
            "message": "reads are token-protected here: send 'Authorization: Bearer <token>' "
                       "with the read token (setting STRATUM_API__READ_TOKEN)",
            "details": {}}, headers={"WWW-Authenticate": "Bearer"})


def require_ingest(request: Request, settings: Annotated[Settings, Depends(get_settings)]
                   ) -> None:
    expected = settings.api.ingest_token
    if expected is None:
        return
    token = _presented_token(request)
    if not (_matches(token, expected) or _matches(token, settings.api.admin_token)):
        raise HTTPException(401, detail={
            "code": "unauthorized",
            "message": "ingest is token-protected here: send 'Authorization: Bearer "
                       "<token>' with the ingest token (setting STRATUM_API__INGEST_TOKEN)",
            "details": {}}, headers={"WWW-Authenticate": "Bearer"})


SettingsDep = Annotated[Settings, Depends(get_settings)]
CatalogDep = Annotated[MetricCatalog, Depends(get_catalog)]
ReaderDep = Annotated[MetricReader, Depends(get_reader)]
JobsDep = Annotated[JobStore, Depends(get_jobs)]
PipelineDep = Annotated[PipelineReader, Depends(get_pipeline)]
RatesDep = Annotated[CounterRates, Depends(get_rates)]
AdminOnly = Depends(require_admin)
ReadAccess = Depends(require_reader)
IngestAccess = Depends(require_ingest)
