"""The gateway's parts without processes: names, the merged cursor, search ranking, caches, config errors."""

from __future__ import annotations

import pytest

from shadowproxy.config import Config
from shadowproxy.config.gateway import CacheConfig, ToolsConfig
from shadowproxy.core.errors import JsonRpcError
from shadowproxy.core.jsonrpc import classify
from shadowproxy.gateway import lists, search
from shadowproxy.gateway.cache import ListCache, ResultCache
from shadowproxy.gateway.names import Names

TOOLS = ToolsConfig(exclude=("files__delete_*",), rename={"math__add": "plus"}, describe={"plus": "Add two integers."})


def test_names_namespace_rename_exclude_and_describe() -> None:
    names = Names(("math", "files"), "__", TOOLS)
    assert names.shown_tool("math", {"name": "add", "description": "x"}) == {
        "name": "plus",
        "description": "Add two integers.",
    }
    assert names.shown_tool("files", {"name": "delete_all"}) is None
    assert names.shown_tool("files", {"name": "read"}) == {"name": "files__read"}
    assert names.tool_target("plus") == ("math", "add")
    assert names.tool_target("math__add") is None  # the old name of a renamed tool is no second way in
    assert names.tool_target("files__delete_all") is None
    assert names.tool_target("files__read") == ("files", "read")
    assert names.tool_target("nobody__read") is None
    assert names.split("files__a__b") == ("files", "a__b")


def test_the_cursor_pages_across_members() -> None:
    items = list(range(10))
    request = classify({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, None)
    seen: list[int] = []
    while True:
        page, cursor = lists.page(items, request, 4)
        seen += page
        if cursor is None:
            break
        request = request.evolve(params={"cursor": cursor})
    assert seen == items
    with pytest.raises(JsonRpcError) as bad:
        lists.page(items, request.evolve(params={"cursor": "not-ours"}), 4)
    assert bad.value.code == -32602


def test_search_ranks_names_over_descriptions() -> None:
    tools = [
        {"name": "files__read", "description": "Read a file."},
        {"name": "math__add", "description": "Add numbers; reads nothing."},
        {"name": "web__fetch", "description": "Fetch a page.", "inputSchema": {"properties": {"url": {}}}},
    ]
    found = search.search(tools, {"query": "read", "detail": "name"})
    assert found[0] == {"name": "files__read"}
    assert search.search(tools, {"query": "url"})[0]["name"] == "web__fetch"
    assert search.search(tools, {"query": "fetch", "detail": "full"})[0] == tools[2]
    with pytest.raises(ValueError, match="limit"):
        search.search(tools, {"query": "x", "limit": 0})


def test_list_cache_honours_ttl_and_scope() -> None:
    cache = ListCache(300)
    cache.put("m", "tools/list", "alice", [1], {"ttlMs": 0})
    assert cache.get("m", "tools/list", "alice") is None
    cache.put("m", "tools/list", "alice", [1], {})
    assert cache.get("m", "tools/list", "alice") == [1]
    assert cache.get("m", "tools/list", "bob") is None
    cache.put("m", "prompts/list", "alice", [2], {"cacheScope": "public"})
    assert cache.get("m", "prompts/list", "bob") == [2]
    cache.invalidate("m", frozenset({"tools/list"}))
    assert cache.get("m", "tools/list", "alice") is None and cache.get("m", "prompts/list", "bob") == [2]


def test_result_cache_only_for_read_only_idempotent_opted_in_tools() -> None:
    cache = ResultCache(CacheConfig.model_validate({"results": {"tools": ["m__*"]}}))
    both = {"readOnlyHint": True, "idempotentHint": True}
    assert cache.key("m__get", both, "alice", {"a": 1}) is not None
    assert cache.key("m__get", {"readOnlyHint": True}, "alice", {}) is None
    assert cache.key("other__get", both, "alice", {}) is None
    assert cache.key("m__get", both, "alice", {"a": 1}) != cache.key("m__get", both, "bob", {"a": 1})


@pytest.mark.parametrize(
    ("servers", "problem"),
    [
        ({"all": {"upstreams": ["a", "zz"]}}, "no upstream 'zz'"),
        ({"a": {"upstreams": ["a"]}}, "also an upstream's name"),
        ({"all": {"upstreams": []}}, "at least one upstream"),
        ({"all": {"upstreams": ["a"], "discovery": "everything"}}, "discovery"),
    ],
)
def test_config_errors_name_the_problem(servers: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Config.model_validate({"upstreams": {"a": {"command": "x"}}, "virtual_servers": servers})
