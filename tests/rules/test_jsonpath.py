"""JSON paths: parsed once, read with wildcards, written by copying only the path."""

from __future__ import annotations

import pytest

from shadowproxy.rules import jsonpath
from shadowproxy.rules.jsonpath import ANY, PathError


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("a", ("a",)),
        ("a.b.c", ("a", "b", "c")),
        ("$.a.b", ("a", "b")),
        ("a[0].b", ("a", 0, "b")),
        ("a[*].b", ("a", ANY, "b")),
        ("a.*", ("a", ANY)),
        ('a["odd.key"]', ("a", "odd.key")),
        ("a['x y']", ("a", "x y")),
        ("_meta.progressToken", ("_meta", "progressToken")),
    ],
)
def test_parse(text: str, steps: tuple) -> None:  # type: ignore[type-arg]
    assert jsonpath.parse(text) == steps
    assert jsonpath.parse(jsonpath.render(steps)) == steps


@pytest.mark.parametrize("text", ["", ".a", "a..b", "a[", "a[x]", "a b", "a.[0]x"])
def test_parse_errors(text: str) -> None:
    with pytest.raises(PathError):
        jsonpath.parse(text)


def test_values() -> None:
    data = {"content": [{"text": "a"}, {"text": "b"}, {"image": 1}], "n": {"m": None}}
    assert list(jsonpath.values(data, ("content", ANY, "text"))) == ["a", "b"]
    assert list(jsonpath.values(data, ("content", 1, "text"))) == ["b"]
    assert list(jsonpath.values(data, ("content", 9))) == []
    assert list(jsonpath.values(data, ("n", "m"))) == [None]
    assert list(jsonpath.values(data, ("n", ANY))) == [None]
    assert list(jsonpath.values("str", ("a",))) == []
    assert jsonpath.first(data, ("missing",), "d") == "d"


def test_set_copies_only_the_path() -> None:
    shared = {"keep": 1}
    data = {"a": {"b": 1}, "other": shared, "list": [{"x": 1}, {"y": 2}]}
    result = jsonpath.set_value(data, ("a", "c", "d"), 5)
    assert result == {"a": {"b": 1, "c": {"d": 5}}, "other": {"keep": 1}, "list": [{"x": 1}, {"y": 2}]}
    assert result["other"] is shared and data == {"a": {"b": 1}, "other": shared, "list": [{"x": 1}, {"y": 2}]}
    listed = jsonpath.set_value(data, ("list", 1, "y"), 3)
    assert listed["list"] == [{"x": 1}, {"y": 3}] and listed["list"][0] is data["list"][0]
    assert jsonpath.set_value(data, ("list", 5, "y"), 3) is data
    assert jsonpath.set_value(None, ("a",), 1) == {"a": 1}
    assert jsonpath.set_value("text", ("a",), 1) == "text"


def test_remove() -> None:
    data = {"a": {"b": 1, "c": 2}, "l": [1, 2, 3]}
    assert jsonpath.remove(data, ("a", "b")) == {"a": {"c": 2}, "l": [1, 2, 3]}
    assert jsonpath.remove(data, ("l", 1)) == {"a": {"b": 1, "c": 2}, "l": [1, 3]}
    assert jsonpath.remove(data, ("nope", "x")) is data
    assert jsonpath.remove(data, ("a", "zz")) is data
    assert data == {"a": {"b": 1, "c": 2}, "l": [1, 2, 3]}
