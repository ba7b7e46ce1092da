"""The canonical group key: one form for both layers, unambiguous whatever the values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stratum.groups import SEPARATOR, group_key, parse_group_key


@pytest.mark.parametrize(
    ("dims", "values", "expected"),
    [
        ((), (), ""),
        (("country",), ("DE",), "country=DE"),
        (("country", "device"), ("DE", "ios"), "country=DE\x1fdevice=ios"),
        (("device", "country"), ("ios", "DE"), "device=ios\x1fcountry=DE"),
        (("country",), ("",), "country="),
        (("country", "device"), ("", ""), "country=\x1fdevice="),
        (("q",), ("a=b",), "q=a\\=b"),
        (("q",), ("a\\b",), "q=a\\\\b"),
        (("q",), ("a\x1fb",), "q=a\\ub"),
        (("a=b",), ("c",), "a\\=b=c"),
        (("q",), ("DÜ 🙂",), "q=DÜ 🙂"),
    ],
)
def test_group_key_canonical_form(
    dims: tuple[str, ...], values: tuple[str, ...], expected: str
) -> None:
    assert group_key(dims, values) == expected


def test_group_key_follows_the_metric_dimension_order() -> None:
    assert group_key(("a", "b"), ("1", "2")) != group_key(("b", "a"), ("2", "1"))


@pytest.mark.parametrize(
    ("left", "right"),
    [
        # Values that would collide without escaping.
        ((("a", "b"), ("x\x1fb=y", "z")), (("a", "b"), ("x", "y\x1fb=z"))),
        ((("a",), ("b=c",)), (("a=b",), ("c",))),
        ((("a",), ("x\\",)), (("a",), ("x\\\\",))),
        ((("a", "b"), ("", "")), (("a",), ("\x1fb=",))),
    ],
)
def test_group_key_is_unambiguous(
    left: tuple[tuple[str, ...], tuple[str, ...]], right: tuple[tuple[str, ...], tuple[str, ...]]
) -> None:
    assert group_key(*left) != group_key(*right)


def test_group_key_refuses_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="2 dimensions but 1 values"):
        group_key(("a", "b"), ("1",))


def test_group_key_of_a_tuple_and_a_list_agree() -> None:
    assert group_key(["a", "b"], ["1", "2"]) == group_key(("a", "b"), ("1", "2"))


@pytest.mark.parametrize("key", ["a", "a=b\x1fc", "a=x\\"])
def test_parse_group_key_rejects_malformed(key: str) -> None:
    with pytest.raises(ValueError):
        parse_group_key(key)


_text = st.text(alphabet=st.sampled_from(["a", "=", "\\", SEPARATOR, "u", "é", " "]), max_size=6)


@given(st.lists(st.tuples(_text, _text), max_size=4))
def test_group_key_round_trips(pairs: list[tuple[str, str]]) -> None:
    dims = [d for d, _ in pairs]
    values = [v for _, v in pairs]
    key = group_key(dims, values)
    assert key.count(SEPARATOR) == max(len(pairs) - 1, 0)
    assert parse_group_key(key) == pairs


@given(st.lists(_text, min_size=1, max_size=3), st.data())
def test_distinct_values_give_distinct_keys(dims: list[str], data: st.DataObject) -> None:
    first = data.draw(st.lists(_text, min_size=len(dims), max_size=len(dims)))
    second = data.draw(st.lists(_text, min_size=len(dims), max_size=len(dims)))
    assert (group_key(dims, first) == group_key(dims, second)) == (first == second)
