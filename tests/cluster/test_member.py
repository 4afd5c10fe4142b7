"""The cluster member in-process: off without Redis, its config checked, a reload broadcast heard by all."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowproxy.config import load
from shadowproxy.core.errors import ConfigError
from shadowproxy.proxy.proxy import Proxy
from tests.redis_server import RedisServer
from tests.support import sdk_server_command, until


def write_config(path: Path, store: str, extra: str = "") -> Path:
    command = " ".join(sdk_server_command())
    path.write_text(f"store: {store}\nupstreams:\n  default:\n    command: {command}\n{extra}")
    return path


@pytest.mark.parametrize("store", ["memory://", "sqlite:///{tmp}/s.db"])
def test_no_redis_no_cluster(tmp_path: Path, store: str) -> None:
    proxy = Proxy(load(str(write_config(tmp_path / "p.yaml", store.format(tmp=tmp_path)))))
    assert proxy.cluster is None and proxy.sessions.cluster is None


def test_a_cluster_can_be_turned_off(tmp_path: Path) -> None:
    config = write_config(tmp_path / "p.yaml", "redis://127.0.0.1:1/0", "cluster: {enabled: false}\n")
    assert Proxy(load(str(config))).cluster is None


def test_a_bad_cluster_setting_names_file_and_line(tmp_path: Path) -> None:
    config = write_config(tmp_path / "p.yaml", "memory://", "cluster:\n  heartbeat_interval: 2\n  heartbeat_ttl: 1\n")
    with pytest.raises(ConfigError) as caught:
        load(str(config))
    assert str(caught.value).startswith(f"{config}:") and "[cluster.heartbeat_ttl]" in str(caught.value)
    assert "must be longer than cluster.heartbeat_interval" in str(caught.value)
    config.write_text(config.read_text().replace("heartbeat_ttl: 1", "heartbeat_tll: 9"))
    with pytest.raises(ConfigError, match=r"\[cluster.heartbeat_tll\]: unknown setting"):
        load(str(config))


async def test_a_rules_reload_reaches_every_instance(redis_server: RedisServer, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - {id: one, match: {tool: a}, action: block}\n")
    extra = f"interceptors: [{{name: rules, watch: false}}]\nrules: [{policy}]\n"
    proxies = [
        Proxy(load(str(write_config(tmp_path / f"{name}.yaml", redis_server.url, extra)))) for name in ("a", "b")
    ]
    for proxy in proxies:
        await proxy.start()
    try:
        policy.write_text(policy.read_text() + "  - {id: two, match: {tool: b}, action: block}\n")
        assert proxies[0].cluster is not None
        assert await proxies[0].cluster.reload_all() == 2
        for proxy in proxies:
            rules = next(hook for hook in proxy.chain.interceptors if hook.name == "rules")
            await until(lambda rules=rules: len(rules.rules.rules) == 2, "the broadcast reload")  # type: ignore[attr-defined]
    finally:
        for proxy in proxies:
            await proxy.stop()
