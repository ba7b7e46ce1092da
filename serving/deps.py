"""Dependencies: settings, the metric catalog, readers, pipeline state, and the token
checks (admin; read, if a read token is set; ingest's is in ingest/routes.py). Tokens
come only as headers (:mod:`stratum.tokens`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from serving.pipeline import CounterRates, PipelineReader
from serving.queries import MetricReader
from stratum.errors import error_detail
from stratum.metrics import MetricCatalog
from stratum.settings import Settings
from stratum.storage.jobs import JobStore
from stratum.tokens import TokenDep, matches


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_catalog(request: Request) -> MetricCatalog:
    """The live definitions (a new version is picked up within a poll interval)."""
    catalog: MetricCatalog = request.app.state.definitions.current()
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


def may_read(token: str | None, settings: Settings) -> bool:
    """Whether a request presenting ``token`` may see reads: no read token set, or it is
    the read (or admin) token."""
    if settings.api.read_token is None:
        return True
    return matches(token, (settings.api.read_token, settings.api.admin_token))


def require_admin(token: TokenDep, settings: Annotated[Settings, Depends(get_settings)]) -> None:
    if not matches(token, (settings.api.admin_token,)):
        raise HTTPException(
            401,
            detail=error_detail(
                "unauthorized",
                "admin endpoints need the admin token: send the header "
                "'Authorization: Bearer <token>' (the token is the setting "
                "STRATUM_API__ADMIN_TOKEN)",
            ),
            headers={"WWW-Authenticate": "Bearer"},
        )


def require_reader(token: TokenDep, settings: Annotated[Settings, Depends(get_settings)]) -> None:
    if not may_read(token, settings):
        raise HTTPException(
            401,
            detail=error_detail(
                "unauthorized",
                "reads are token-protected here: send 'Authorization: Bearer "
                "<token>' with the read token (setting STRATUM_API__READ_TOKEN)",
            ),
            headers={"WWW-Authenticate": "Bearer"},
        )


SettingsDep = Annotated[Settings, Depends(get_settings)]
CatalogDep = Annotated[MetricCatalog, Depends(get_catalog)]
ReaderDep = Annotated[MetricReader, Depends(get_reader)]
JobsDep = Annotated[JobStore, Depends(get_jobs)]
PipelineDep = Annotated[PipelineReader, Depends(get_pipeline)]
RatesDep = Annotated[CounterRates, Depends(get_rates)]
AdminOnly = Depends(require_admin)
ReadAccess = Depends(require_reader)
