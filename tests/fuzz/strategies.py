"""Hypothesis strategies for JSON values and JSON-RPC messages, shared by the fuzz tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

SIGNED_64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
SCALARS = st.none() | st.booleans() | SIGNED_64 | st.floats(allow_nan=False, allow_infinity=False) | st.text()
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)
OBJECTS = st.dictionaries(st.text(max_size=10), JSON, max_size=6)
IDS = SIGNED_64 | st.text(max_size=40)
METHODS = st.sampled_from(
    ["initialize", "ping", "tools/list", "tools/call", "resources/read", "prompts/get", "notifications/progress"]
) | st.text(min_size=1, max_size=30)


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    """A valid JSON-RPC 2.0 message of any kind."""
    kind = draw(st.sampled_from(["request", "notification", "response", "error"]))
    data: dict[str, Any] = {"jsonrpc": "2.0"}
    if kind in ("request", "notification"):
        data["method"] = draw(METHODS)
        params = draw(st.none() | OBJECTS)
        if params is not None:
            data["params"] = params
    if kind != "notification":
        data["id"] = draw(IDS)
    if kind == "response":
        data["result"] = draw(JSON)
    elif kind == "error":
        error: dict[str, Any] = {"code": draw(SIGNED_64), "message": draw(st.text(max_size=30))}
        if draw(st.booleans()):
            error["data"] = draw(JSON)
        data["error"] = error
    return data
