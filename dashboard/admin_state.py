"""What one refresh of the admin page reads, and a fingerprint of each part it shows.

Kept out of ``pages/``: Dash executes page modules before they are in ``sys.modules``,
where a dataclass cannot be built.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel

from dashboard.api_client import ApiClient
from dashboard.api_models import Generation, Job, JobPage
from dashboard.job_view import generation_of, is_active

KINDS = ("batch", "replay")


@dataclass(frozen=True, slots=True)
class AdminSnapshot:
    generation: Generation
    active: list[Job]
    page: JobPage
    selected: Job | None

    @property
    def building(self) -> int | None:
        """The generation an active replay is building, if one is."""
        return next((g for j in self.active if (g := generation_of(j)) is not None), None)


def fetch_snapshot(
    api: ApiClient, token: str, *, kind: str | None, offset: int, limit: int, selected: str | None
) -> AdminSnapshot:
    """Active jobs are asked per kind (the newest of each, as at most one of a kind is
    active), since the history page on screen may be filtered or paged away from them."""
    newest = [job for k in KINDS for job in api.jobs(token, kind=k, limit=1).jobs]
    page = api.jobs(token, kind=kind, limit=limit, offset=offset)
    # The two reads are moments apart and a running job moves in between: the table and
    # details show the same row as the active-job card, so they never disagree on screen.
    latest = {job.job_id: job for job in newest}
    page = page.model_copy(update={"jobs": tuple(latest.get(j.job_id, j) for j in page.jobs)})
    chosen = next((job for job in page.jobs if job.job_id == selected), None)
    if selected and chosen is None:
        chosen = latest.get(selected) or api.job(token, selected)
    return AdminSnapshot(api.generation(token), [j for j in newest if is_active(j)], page, chosen)


def view_key(*parts: Any) -> str:
    """A short fingerprint: equal keys mean the part on screen needs no re-render."""
    blob = orjson.dumps(parts, default=_plain)
    return hashlib.blake2b(blob, digest_size=12).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"cannot fingerprint {type(value).__name__}")
