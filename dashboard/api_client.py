"""A small synchronous client over the Stratum REST API: the dashboard's only data source.

Why sync: Dash callbacks run in the WSGI worker threads a2wsgi provides, so a
blocking call is the natural fit, and one shared ``httpx.Client`` (thread-safe) keeps
a connection pool. Why HTTP even in one process: the dashboard then behaves the same
when the API runs on another host (``settings.api_url``), and never touches SQL.

Every failure leaves as an :class:`~dashboard.errors.ApiError` whose message is ready
for the UI; httpx's own exceptions are mapped here, where they enter, and chained.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import orjson
from pydantic import BaseModel, RootModel, ValidationError

from dashboard.api_models import (
    Drift,
    Generation,
    Health,
    Job,
    JobCreated,
    JobPage,
    MetricInfo,
    MetricList,
    Pipeline,
    SeriesResponse,
    Status,
)
from dashboard.errors import ApiConflictError, ApiError, ApiUnavailableError

ModelT = TypeVar("ModelT", bound=BaseModel)

DEFAULT_TIMEOUT_S = 5.0
_ERRNO = re.compile(r"^\[Errno -?\d+\]\s*")


class ApiClient:
    """Typed calls for the endpoints the dashboard needs; one instance per dashboard.

    ``credential`` returns the read credential of the person being served (the
    dashboard's sign-in cookie), called per request: the client holds no token of its
    own, so it can never lend the server's configured token to someone."""

    def __init__(
        self,
        base_url: str,
        credential: Callable[[], str | None] | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._credential = credential
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            headers={"Accept": "application/json", "User-Agent": "stratum-dashboard"},
            transport=transport,
        )

    def as_current_person(self) -> ApiClient:
        """This client with the credential of the person being served now, fixed: for
        calls made from other threads, which have no request (and so no cookie)."""
        token = self._credential() if self._credential is not None else None
        person = copy.copy(self)  # shares the connection pool
        person._credential = lambda: token
        return person

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reads -----------------------------------------------------------------------

    def metrics(self) -> list[MetricInfo]:
        return list(self._call("GET", "/v1/metrics", MetricList).metrics)

    def series(
        self,
        name: str,
        *,
        start: datetime,
        end: datetime,
        step: str,
        group_by: Sequence[str] = (),
        filters: Mapping[str, str | Sequence[str]] | None = None,
    ) -> SeriesResponse:
        """``filters`` maps a dimension to one value or several (any of them matches)."""
        params = series_params(start=start, end=end, step=step, group_by=group_by, filters=filters)
        return self._call("GET", series_path(name), SeriesResponse, params=params)

    def drift(self, name: str, *, start: datetime, end: datetime) -> Drift:
        """Speed vs batch for every window both layers hold in [start, end)."""
        params = {"metric": name, "start": iso_utc(start), "end": iso_utc(end)}
        return self._call("GET", "/v1/drift", Drift, params=params)

    def health(self) -> Health:
        return self._call("GET", "/v1/health", Health)

    def status(self) -> Status:
        return self._call("GET", "/v1/status", Status)

    def pipeline(self, *, limit: int = 20, offset: int = 0) -> Pipeline:
        params = {"limit": str(limit), "offset": str(offset)}
        return self._call("GET", "/v1/pipeline", Pipeline, params=params)

    # -- admin -----------------------------------------------------------------------

    def start_batch(
        self,
        admin_token: str,
        *,
        mode: str | None = None,
        start: str | None = None,
        end: str | None = None,
        trigger: str | None = None,
    ) -> str:
        """Start a batch recompute; returns its job id. 409 raises ApiConflictError.

        ``start`` / ``end`` are passed as typed (ISO-8601, epoch ms or now-6h): the API
        parses them, so its 422 message is the one the user reads."""
        body = _present(mode=mode, start=start, end=end, trigger=trigger)
        return self._call(
            "POST", "/v1/admin/batch", JobCreated, token=admin_token, json=body or None
        ).job_id

    def start_replay(
        self, admin_token: str, *, from_time: str | None = None, trigger: str | None = None
    ) -> str:
        """Start a Kappa replay (from ``from_time``, or all of history); returns its job id."""
        body = _present(trigger=trigger, **{"from": from_time})
        return self._call(
            "POST", "/v1/admin/replay", JobCreated, token=admin_token, json=body or None
        ).job_id

    def cancel_job(self, admin_token: str, job_id: str) -> str:
        """Ask a queued or running job to stop; returns the state the API reports."""
        path = f"/v1/admin/jobs/{quote(job_id, safe='')}/cancel"
        return self._call("POST", path, JobCreated, token=admin_token).state

    def jobs(
        self, admin_token: str, *, kind: str | None = None, limit: int = 20, offset: int = 0
    ) -> JobPage:
        """One page of jobs, newest first; ``kind`` None means batch runs and replays."""
        params = {"limit": str(limit), "offset": str(offset)}
        if kind:
            params["kind"] = kind
        return self._call("GET", "/v1/admin/jobs", JobPage, params=params, token=admin_token)

    def batch_jobs(self, admin_token: str, *, limit: int = 20, offset: int = 0) -> JobPage:
        return self.jobs(admin_token, kind="batch", limit=limit, offset=offset)

    def job(self, admin_token: str, job_id: str) -> Job:
        path = f"/v1/admin/jobs/{quote(job_id, safe='')}"
        return self._call("GET", path, Job, token=admin_token)

    def generation(self, admin_token: str) -> Generation:
        return self._call("GET", "/v1/admin/generation", Generation, token=admin_token)

    def admin_json(
        self,
        admin_token: str,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """An admin call whose answer the caller reads as JSON (the metric editor's)."""
        return self._call(
            method, path, _JsonObject, token=admin_token, json=json, params=params
        ).root

    # -- plumbing --------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        model: type[ModelT],
        *,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        token: str | None = None,
        json: Mapping[str, Any] | None = None,
    ) -> ModelT:
        if token is None and self._credential is not None:
            token = self._credential()
        bearer = token
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        # httpx takes pairs as a list of its own element type or as a tuple (covariant)
        query = tuple(params) if isinstance(params, Sequence) else params
        try:
            response = self._http.request(method, path, params=query, headers=headers, json=json)
        except httpx.TimeoutException as exc:
            raise ApiUnavailableError(
                f"API unreachable at {self.base_url}: no answer within {self.timeout:g} s"
            ) from exc
        except httpx.HTTPError as exc:
            raise ApiUnavailableError(
                f"API unreachable at {self.base_url}: {_reason(exc)}"
            ) from exc
        if response.status_code >= 400:
            raise self._error_from(response, f"{method} {path}")
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise ApiError(
                f"API at {self.base_url} answered {method} {path} outside the contract "
                f"({where}: {first['msg']}); are the dashboard and the API the same version?",
                status=response.status_code,
            ) from exc

    def _error_from(self, response: httpx.Response, call: str) -> ApiError:
        status = response.status_code
        code, message, details = _error_body(response)
        if status >= 500:
            return ApiUnavailableError(
                f"API at {self.base_url} failed on {call} (HTTP {status}): {message}",
                status=status,
                code=code,
                details=details,
            )
        error_type = ApiConflictError if status == 409 else ApiError
        return error_type(message, status=status, code=code, details=details)


class _JsonObject(RootModel[dict[str, Any]]):
    """Any JSON object (the caller picks what it needs)."""


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with a Z; a naive datetime is taken to be UTC already."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _present(**fields: str | None) -> dict[str, str]:
    """The fields that were given: an absent one takes the API's default."""
    return {name: value for name, value in fields.items() if value}


def _reason(exc: httpx.HTTPError) -> str:
    text = _ERRNO.sub("", str(exc)).strip()
    return text[:1].lower() + text[1:] if text else type(exc).__name__


def _error_body(response: httpx.Response) -> tuple[str | None, str, dict[str, Any]]:
    """(code, message, details) from ``{"error": {...}}``, or the best text available."""
    fallback = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        text = response.text.strip()
        return None, text[:200] or fallback, {}
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        details = error.get("details")
        return (
            error.get("code"),
            str(error.get("message") or fallback),
            details if isinstance(details, dict) else {},
        )
    if isinstance(body, dict) and "detail" in body:  # FastAPI's default shape
        return None, str(body["detail"]), {}
    return None, fallback, {}


def series_path(name: str) -> str:
    return f"/v1/metrics/{quote(name, safe='')}"


def series_params(
    *,
    start: datetime,
    end: datetime,
    step: str,
    group_by: Sequence[str] = (),
    filters: Mapping[str, str | Sequence[str]] | None = None,
) -> list[tuple[str, str]]:
    """The query of a series request; the panels' "API query" shows the same one."""
    params: list[tuple[str, str]] = [
        ("start", iso_utc(start)),
        ("end", iso_utc(end)),
        ("step", step),
    ]
    if group_by:
        params.append(("group_by", ",".join(group_by)))
    for dimension, wanted in (filters or {}).items():
        values = [wanted] if isinstance(wanted, str) else list(wanted)
        # The API splits a value at commas; "\\," and "\\\\" are the literal ones.
        params.extend(
            (dimension, value.replace("\\", "\\\\").replace(",", "\\,")) for value in values
        )
    return params
