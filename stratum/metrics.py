"""Metric definitions: declared once in a TOML file, compiled by both layers.

A definition names the events it counts (``where``: the event ``type`` and dimension
equality or membership), what it aggregates (``aggregation`` over ``field``), the
dimensions it may be grouped by, and its window sizes. The speed layer calls
:meth:`MetricDefinition.matches` and :meth:`MetricDefinition.group_of`; the batch layer
turns the same fields into Polars expressions; serving turns ``aggregation`` into the
SQL that merges stored state. Neither layer has metric-specific code.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stratum.errors import StratumError
from stratum.events import RESERVED
from stratum.numbers import dimension_text, filter_texts
from stratum.sources import BUILTIN, NAME_PATTERN, SourceDefinition
from stratum.windows import hopping_window_starts, parse_duration_ms


class MetricDefinitionError(StratumError):
    """The metric definition file cannot be used; the message says what to fix."""


class Aggregation(StrEnum):
    COUNT = "count"
    SUM = "sum"
    MIN = "min"
    MAX = "max"
    AVG = "avg"
    QUANTILE = "quantile"
    DISTINCT = "distinct"


FIELD_AGGREGATIONS = {Aggregation.SUM, Aggregation.MIN, Aggregation.MAX, Aggregation.AVG,
                      Aggregation.QUANTILE, Aggregation.DISTINCT}

FilterValue = str | list[str]


class MetricDefinition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    description: str = ""
    source: str = Field(BUILTIN, pattern=NAME_PATTERN, description="the [[source]] whose "
                        "events it counts; \"events\" is Stratum's own topic")
    aggregation: Aggregation
    field: str | None = None
    quantile: float | None = Field(None, gt=0, lt=1)
    where: dict[str, FilterValue] = Field(default_factory=dict)
    dimensions: tuple[str, ...] = ()
    windows: tuple[str, ...] = ("1m",)
    hop: str | None = Field(None, description="hopping (sliding) windows: the step between "
                            "window starts; the window size is the single entry of windows")
    session_gap: str | None = Field(None, description="session windows: a group's session "
                                    "ends after this much event time without its events")
    unit: str = ""

    @field_validator("windows")
    @classmethod
    def _windows_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("needs at least one window size, e.g. windows = [\"1m\"]")
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
            return dimension_text(item) if isinstance(item, int | float) and not isinstance(
                item, bool) else item
        return {key: [text(v) for v in expected] if isinstance(expected, list)
                else text(expected) for key, expected in value.items()}

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
        if self.aggregation in FIELD_AGGREGATIONS and not self.field:
            kind = "a" if self.aggregation == Aggregation.DISTINCT else "a numeric"
            raise ValueError(f"aggregation {self.aggregation} needs {kind} field = \"...\"")
        if self.aggregation == Aggregation.COUNT and self.field:
            raise ValueError("aggregation count takes no field (it counts matching events)")
        if self.field in RESERVED:
            raise ValueError(f"field {self.field} is not a measure")
        if (self.aggregation == Aggregation.QUANTILE) != (self.quantile is not None):
            raise ValueError("quantile = 0..1 goes with aggregation = \"quantile\" and only there")
        if self.hop is not None:
            hop_ms = parse_duration_ms(self.hop)
            if len(self.windows) != 1:
                raise ValueError("hopping windows take exactly one window size, e.g. "
                                 "windows = [\"5m\"], hop = \"1m\"")
            if self.window_ms % hop_ms or hop_ms >= self.window_ms:
                raise ValueError(f"hop {self.hop} must be smaller than the window "
                                 f"{self.windows[0]} and divide it evenly")
        if self.session_gap is not None:
            gap_ms = parse_duration_ms(self.session_gap)
            if self.hop is not None:
                raise ValueError("session_gap and hop exclude each other: a metric has "
                                 "tumbling, hopping or session windows")
            if gap_ms >= 86_400_000:
                raise ValueError(f"session_gap {self.session_gap} must be shorter than a "
                                 "day (sessions end at midnight UTC)")
            if self.window_ms > gap_ms:
                raise ValueError(f"the finest window {self.windows[0]} must not be longer "
                                 f"than session_gap {self.session_gap}: sessions are built "
                                 "from windows that each fall inside one session")
        return self

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

    def window_starts(self, ts_ms: int) -> list[int]:
        """Starts of the windows holding an event time (several when windows hop)."""
        if self.hop is None:
            return [ts_ms - ts_ms % self.window_ms]
        return hopping_window_starts(ts_ms, self.window_ms, self.hop_ms)

    def matches(self, event: Mapping[str, Any]) -> bool:
        for key, expected in self.where.items():
            value = event.get(key)
            texts = filter_texts(expected if isinstance(expected, list) else [expected])
            if value is None or dimension_text(value) not in texts:
                return False
        if self.field is not None:
            value = event.get(self.field)
            if self.aggregation == Aggregation.DISTINCT:
                return value is not None
            return isinstance(value, int | float) and not isinstance(value, bool)
        return True

    def group_of(self, event: Mapping[str, Any]) -> tuple[str, ...]:
        """Dimension values of an event; a missing dimension is the empty string, a
        number its canonical text (:mod:`stratum.numbers`)."""
        return tuple(dimension_text(event.get(d, "")) for d in self.dimensions)

    def grouper(self) -> Callable[[Mapping[str, Any]], tuple[str, ...] | None]:
        """:meth:`matches` and :meth:`group_of` in one compiled function: the event's
        group, or None when the metric does not count it. The speed layer calls it for
        every event and metric, so the definition's fields are read once, here, not on
        every call (same results: tests/unit/test_grouper.py)."""
        where = tuple((key, frozenset(filter_texts(
            expected if isinstance(expected, list) else [expected])))
            for key, expected in self.where.items())
        field = self.field
        distinct = self.aggregation == Aggregation.DISTINCT
        dimensions = self.dimensions

        def group(event: Mapping[str, Any]) -> tuple[str, ...] | None:
            get = event.get
            for key, texts in where:
                value = get(key)
                if value is None or dimension_text(value) not in texts:
                    return None
            if field is not None:
                value = get(field)
                if distinct:
                    if value is None:
                        return None
                elif isinstance(value, bool) or not isinstance(value, int | float):
                    return None
            return tuple([dimension_text(get(d, "")) for d in dimensions])

        return group


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
        return MetricCatalog(metrics=tuple(m for m in self.metrics if m.source == name),
                             sources=tuple(s for s in self.sources if s.name == name))

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
            problems.append(f"metric {metric.name!r}: source {metric.source!r} is not "
                            "defined; add a [[source]] with that name")
    if problems:
        raise MetricDefinitionError(f"{source} has {len(problems)} problem(s):\n  " +
                                    "\n  ".join(problems))
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
            data[key] = [*data[key], *value] if isinstance(data.get(key), list) and \
                isinstance(value, list) else value
    return parse_catalog(data, source=" + ".join(str(p) for p in (path, *more)))


def group_dict(metric: MetricDefinition, group: Sequence[str]) -> dict[str, str]:
    return dict(zip(metric.dimensions, group, strict=True))
