"""Definitions as data: the whole definitions document (what the TOML file holds) as a
plain mapping, edits of one metric, the difference between two versions, and TOML text.

Pure functions; :mod:`stratum.storage.definitions` keeps the versions in ClickHouse.
A document is ``{"metric": [...]}`` plus whatever other tables the catalog grows
(``[[source]]``): :func:`catalog_document` turns every field of :class:`MetricCatalog`
back into the file's table name, so a new kind of entry is stored along without code here.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stratum.metrics import MetricCatalog, MetricDefinitionError, parse_catalog


def catalog_document(catalog: MetricCatalog) -> dict[str, Any]:
    """The parsed catalog as the file would spell it (defaults left out)."""
    dumped = catalog.model_dump(mode="json", exclude_defaults=True)
    return {key.removesuffix("s"): value for key, value in dumped.items()}


def document_json(catalog: MetricCatalog) -> str:
    return json.dumps(catalog_document(catalog), sort_keys=True, separators=(",", ":"))


def parse_document(data: Mapping[str, Any], source: str = "definitions") -> MetricCatalog:
    """Validate a whole document: the file's messages, one per mistake."""
    return parse_catalog(data, source=source)


def parse_toml(text: str, source: str = "definitions") -> MetricCatalog:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MetricDefinitionError(f"{source} is not valid TOML: {exc}") from exc
    return parse_document(data, source)


def problems_of(exc: MetricDefinitionError) -> list[str]:
    """The message's lines, one per mistake (as the file reports them)."""
    head, _, rest = str(exc).partition(":\n  ")
    return [line for line in rest.split("\n  ") if line] if rest else [head]


def put_metric(
    catalog: MetricCatalog, name: str, fields: Mapping[str, Any], source: str = "draft"
) -> MetricCatalog:
    """``catalog`` with metric ``name`` added or replaced by ``fields`` (the file's names;
    ``name`` may be left out). Raises :class:`MetricDefinitionError` like the file."""
    if "name" in fields and fields["name"] != name:
        raise MetricDefinitionError(
            f"{source} has 1 problem(s):\n  metric {name!r}: name: "
            f"the body names {fields['name']!r}; rename by "
            "deleting and adding"
        )
    entry = {**fields, "name": name}
    document = catalog_document(catalog)
    metrics = [m for m in document.get("metric", []) if m.get("name") != name]
    document["metric"] = [*metrics, entry]
    return parse_document(document, source)


def delete_metric(catalog: MetricCatalog, name: str) -> MetricCatalog:
    document = catalog_document(catalog)
    document["metric"] = [m for m in document.get("metric", []) if m.get("name") != name]
    return parse_document(document, "definitions without " + name)


@dataclass(frozen=True)
class Change:
    """What a new version does to the metrics the live one defines."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.deleted)

    def summary(self) -> str:
        parts = [
            f"{verb} {', '.join(names)}"
            for verb, names in (
                ("added", self.added),
                ("changed", self.changed),
                ("deleted", self.deleted),
            )
            if names
        ]
        return "; ".join(parts) or "no metric changed"


def diff(old: MetricCatalog, new: MetricCatalog) -> Change:
    before = {m.name: m for m in old.metrics}
    after = {m.name: m for m in new.metrics}
    return Change(
        added=sorted(after.keys() - before.keys()),
        changed=sorted(n for n in after.keys() & before.keys() if after[n] != before[n]),
        deleted=sorted(before.keys() - after.keys()),
    )


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "nan"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return (
            "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
        )
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _toml_key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key)


def document_toml(document: Mapping[str, Any]) -> str:
    """A document as the definitions file: an array of tables per kind of entry."""
    blocks = []
    for table, entries in document.items():
        for entry in entries:
            lines = [f"[[{table}]]"]
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in entry.items()]
            blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
