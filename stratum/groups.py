"""The canonical key of a dimension group, shared by the speed and the batch layer.

Both layers store one row per (metric, window, group) and serving matches rows of the two
layers by ``group_key``, so the key must be byte-identical whichever layer wrote it. It
lists ``dimension=value`` pairs in the metric's dimension order, joined by the ASCII unit
separator ``\\x1f``; a metric without dimensions has the empty key.

Names and values are escaped (``\\`` -> ``\\\\``, ``=`` -> ``\\=``, ``\\x1f`` -> ``\\u``) so
that no value can forge a separator: the key is unambiguous and :func:`parse_group_key`
inverts it.
"""

from __future__ import annotations

from collections.abc import Sequence

SEPARATOR = "\x1f"
_SPECIAL = ("\\", "=", SEPARATOR)
_UNESCAPE = {"\\": "\\", "=": "=", "u": SEPARATOR}


def _escape(text: str) -> str:
    if not any(ch in text for ch in _SPECIAL):
        return text  # the common case: nothing to do
    return text.replace("\\", "\\\\").replace("=", "\\=").replace(SEPARATOR, "\\u")


def group_key(dims: Sequence[str], values: Sequence[str]) -> str:
    """``("country", "device"), ("DE", "ios")`` -> ``"country=DE\\x1fdevice=ios"``."""
    if len(dims) != len(values):
        raise ValueError(f"{len(dims)} dimensions but {len(values)} values")
    return SEPARATOR.join(f"{_escape(d)}={_escape(v)}" for d, v in zip(dims, values, strict=True))


def parse_group_key(key: str) -> list[tuple[str, str]]:
    """The ``(dimension, value)`` pairs of a key, in order (for tools and tests)."""
    if not key:
        return []
    pairs: list[tuple[str, str]] = []
    for part in key.split(SEPARATOR):
        name: str | None = None
        chars: list[str] = []
        index = 0
        while index < len(part):
            char = part[index]
            if char == "\\" and index + 1 < len(part) and part[index + 1] in _UNESCAPE:
                chars.append(_UNESCAPE[part[index + 1]])
                index += 2
                continue
            if char == "\\":
                raise ValueError(f"dangling escape in group key {key!r}")
            if char == "=" and name is None:
                name, chars = "".join(chars), []
            else:
                chars.append(char)
            index += 1
        if name is None:
            raise ValueError(f"group key part {part!r} has no '='")
        pairs.append((name, "".join(chars)))
    return pairs
