"""Metric definitions: declared once in a TOML file, compiled by both layers.

A definition names the events it counts (``where``: the event ``type`` and dimension
equality or membership), what it aggregates (``aggregation`` over ``field``), the
dimensions it may be grouped by, and its window sizes. Both layers turn it into the same
Polars expressions (:mod:`stratum.metric_frames`); what ``aggregation`` keeps and how it
merges is its kind's (:mod:`stratum.aggregations`). No layer has metric-specific code.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stratum.aggregations import Aggregation, AggregationKind, FieldUse, kind_of
from stratum.errors import StratumError
from stratum.events import RESERVED
from stratum.numbers import dimension_text
from stratum.sources import BUILTIN, NAME_PATTERN, SourceDefinition
from stratum.windows import parse_duration_ms

__all__ = [
    "Aggregation",
    "MetricCatalog",
    "MetricDefinition",
    "MetricDefinitionError",
    "load_catalog",
    "parse_catalog",
]


class MetricDefinitionError(StratumError):
    """The metric definition file cannot be used; the message says what to fix."""


FilterValue = str | list[str]


class MetricDefinition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    description: str = ""
    source: str = Field(
        BUILTIN,
        pattern=NAME_PATTERN,
        description='the [[source]] whose events it counts; "events" is Stratum\'s own topic',
    )
    aggregation: Aggregation
    field: str | None = None
    quantile: float | None = Field(None, gt=0, lt=1)
    where: dict[str, FilterValue] = Field(default_factory=dict)
    dimensions: tuple[str, ...] = ()
    windows: tuple[str, ...] = ("1m",)
    hop: str | None = Field(
        None,
        description="hopping (sliding) windows: the step between "
        "window starts; the window size is the single entry of windows",
    )
    session_gap: str | None = Field(
        None,
        description="session windows: a group's session "
        "ends after this much event time without its events",
    )
    unit: str = ""

    @field_validator("windows")
    @classmethod
    def _windows_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError('needs at least one window size, e.g. windows = ["1m"]')
        sizes = [parse_duration_ms(w) for w in value]
        finest = min(sizes)
        for text, size in zip(value, sizes, strict=True):
            if size % finest:
                raise ValueError(f"window {text} is not a multiple of the finest window")
            if 86_400_000 % size and size % 86_400_000:
                raise ValueError(f"window {text} does not divide a day evenly")
        return tuple(sorted(value, key=parse_duration_ms))

    @field_validator("where", mode="before")
    @classmethod
    def _numbers_as_text(cls, value: Any) -> Any:
        """``where = {tier = 1}``: a number is its canonical dimension text ("1")."""
        if not isinstance(value, Mapping):
            return value

        def text(item: Any) -> Any:
            return (
                dimension_text(item)
                if isinstance(item, int | float) and not isinstance(item, bool)
                else item
            )

        return {
            key: [text(v) for v in expected] if isinstance(expected, list) else text(expected)
            for key, expected in value.items()
        }

    @field_validator("dimensions")
    @classmethod
    def _dimensions_unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("dimensions are listed twice")
        for dim in value:
            if dim in ("event_id", "ts"):
                raise ValueError(f"{dim} cannot be a dimension")
        return value

    @model_validator(mode="after")
    def _field_rules(self) -> MetricDefinition:
        uses = self.kind.field
        if uses != FieldUse.NONE and not self.field:
            kind = "a" if uses == FieldUse.VALUE else "a numeric"
            raise ValueError(f'aggregation {self.aggregation} needs {kind} field = "..."')
        if uses == FieldUse.NONE and self.field:
            raise ValueError(
                f"aggregation {self.aggregation} takes no field (it counts matching events)"
            )
        if self.field in RESERVED:
            raise ValueError(f"field {self.field} is not a measure")
        if (self.kind.parameter == "quantile") != (self.quantile is not None):
            raise ValueError('quantile = 0..1 goes with aggregation = "quantile" and only there')
        if self.hop is not None:
            hop_ms = parse_duration_ms(self.hop)
            if len(self.windows) != 1:
                raise ValueError(
                    "hopping windows take exactly one window size, e.g. "
                    'windows = ["5m"], hop = "1m"'
                )
            if self.window_ms % hop_ms or hop_ms >= self.window_ms:
                raise ValueError(
                    f"hop {self.hop} must be smaller than the window "
                    f"{self.windows[0]} and divide it evenly"
                )
        if self.session_gap is not None:
            gap_ms = parse_duration_ms(self.session_gap)
            if self.hop is not None:
                raise ValueError(
                    "session_gap and hop exclude each other: a metric has "
                    "tumbling, hopping or session windows"
                )
            if gap_ms >= 86_400_000:
                raise ValueError(
                    f"session_gap {self.session_gap} must be shorter than a "
                    "day (sessions end at midnight UTC)"
                )
            if self.window_ms > gap_ms:
                raise ValueError(
                    f"the finest window {self.windows[0]} must not be longer "
                    f"than session_gap {self.session_gap}: sessions are built "
                    "from windows that each fall inside one session"
                )
        return self

    @property
    def kind(self) -> AggregationKind:
        """What the aggregation keeps, how it merges and what its values mean."""
        return kind_of(self.aggregation)

    @property
    def window_ms(self) -> int:
        """The finest window: what both layers store; coarser steps roll up from it."""
        return parse_duration_ms(self.windows[0])

    @property
    def hop_ms(self) -> int:
        """Distance between window starts: the window itself unless windows hop."""
        return parse_duration_ms(self.hop) if self.hop else self.window_ms

    @property
    def session_gap_ms(self) -> int | None:
        return parse_duration_ms(self.session_gap) if self.session_gap else None


class MetricCatalog(BaseModel):
    model_config = ConfigDict(frozen=True)

    metrics: tuple[MetricDefinition, ...]
    sources: tuple[SourceDefinition, ...] = ()

    def source(self, name: str) -> SourceDefinition | None:
        return next((s for s in self.sources if s.name == name), None)

    @property
    def source_names(self) -> list[str]:
        """Sources some metric reads, the built-in one first (always listed)."""
        used = {m.source for m in self.metrics}
        return [BUILTIN, *(s.name for s in self.sources if s.name in used)]

    def for_source(self, name: str) -> MetricCatalog:
        """The part of the catalog one source's worker, replay or batch run needs."""
        return MetricCatalog(
            metrics=tuple(m for m in self.metrics if m.source == name),
            sources=tuple(s for s in self.sources if s.name == name),
        )

    def get(self, name: str) -> MetricDefinition | None:
        return next((m for m in self.metrics if m.name == name), None)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.metrics]

    def replay_start_ms(self, from_ms: int) -> int:
        """Where a replay asked to start at ``from_ms`` starts rebuilding: the latest
        moment at or before it where every metric's stored windows (tumbling, hopping
        or session pieces) begin, so no rebuilt window misses events before the start.
        Window sizes and hops divide a day (or are whole days), so this is at most a day
        back. Windows that start earlier are kept (batch or carried over), never rebuilt."""
        step = math.lcm(1, *(size for m in self.metrics for size in (m.window_ms, m.hop_ms)))
        return from_ms - from_ms % step


def parse_catalog(data: Mapping[str, Any], *, source: str = "metrics file") -> MetricCatalog:
    entries = data.get("metric")
    if not isinstance(entries, list) or not entries:
        raise MetricDefinitionError(f"{source}: define at least one [[metric]] table")
    problems: list[str] = []
    metrics: list[MetricDefinition] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries, 1):
        label = f"metric #{index}"
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            label = f"metric {entry['name']!r}"
        try:
            metric = MetricDefinition.model_validate(entry)
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"]) or "definition"
                message = err["msg"].removeprefix("Value error, ")
                problems.append(f"{label}: {where}: {message}")
            continue
        if metric.name in seen:
            problems.append(f"{label}: duplicate name; metric names must be unique")
        seen.add(metric.name)
        metrics.append(metric)
    sources = _parse_sources(data.get("source", []), problems)
    known = {BUILTIN, *(s.name for s in sources)}
    for metric in metrics:
        if metric.source not in known:
            problems.append(
                f"metric {metric.name!r}: source {metric.source!r} is not "
                "defined; add a [[source]] with that name"
            )
    if problems:
        raise MetricDefinitionError(
            f"{source} has {len(problems)} problem(s):\n  " + "\n  ".join(problems)
        )
    return MetricCatalog(metrics=tuple(metrics), sources=tuple(sources))


def _parse_sources(entries: Any, problems: list[str]) -> list[SourceDefinition]:
    """``[[source]]`` tables; each problem names the source."""
    if not isinstance(entries, list):
        problems.append("source: write each source as a [[source]] table")
        return []
    sources: list[SourceDefinition] = []
    for index, entry in enumerate(entries, 1):
        label = f"source #{index}"
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            label = f"source {entry['name']!r}"
        try:
            source = SourceDefinition.model_validate(entry)
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"]) or "definition"
                problems.append(f"{label}: {where}: {err['msg'].removeprefix('Value error, ')}")
            continue
        if any(s.name == source.name for s in sources):
            problems.append(f"{label}: duplicate name; source names must be unique")
        elif any(s.topic == source.topic for s in sources):
            problems.append(f"{label}: topic {source.topic!r} is read by another source")
        sources.append(source)
    return sources


def load_catalog(path: Path, *more: Path) -> MetricCatalog:
    """The definitions of ``path``, with the ``[[source]]`` and ``[[metric]]`` tables of
    ``more`` files added (the demo's source: ``stratum/demo_sources.toml``)."""
    data: dict[str, Any] = {}
    for each in (path, *more):
        try:
            part = tomllib.loads(each.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise MetricDefinitionError(f"metrics file {each} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise MetricDefinitionError(f"{each} is not valid TOML: {exc}") from exc
        for key, value in part.items():
            data[key] = (
                [*data[key], *value]
                if isinstance(data.get(key), list) and isinstance(value, list)
                else value
            )
    return parse_catalog(data, source=" + ".join(str(p) for p in (path, *more)))
