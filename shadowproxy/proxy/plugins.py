"""Interceptors from config: found by name in the ``shadowproxy.interceptors`` entry point group.

A user's package adds an interceptor by declaring an entry point in that group;
its value is a factory taking the interceptor's options mapping. A
``module:attribute`` name works too, for factories that are not packaged. The
factory may build an :class:`~shadowproxy.core.chain.Interceptor`, a
:class:`~shadowproxy.core.chain.VerdictObserver`, or an object that is both; the
chain finds its other hooks (start, close, reload, wants) by their names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any

from shadowproxy.config import InterceptorConfig
from shadowproxy.core.chain import Hook, Interceptor, VerdictObserver
from shadowproxy.core.errors import ConfigError, ShadowProxyError

GROUP = "shadowproxy.interceptors"
Factory = Callable[[Mapping[str, Any]], Hook]


def find_factory(name: str) -> Factory:
    if ":" in name:
        module, _, attribute = name.partition(":")
        try:
            return getattr(importlib.import_module(module), attribute)  # type: ignore[no-any-return]
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"cannot load interceptor {name!r}: {exc}", key="interceptors") from None
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ConfigError(f"unknown interceptor {name!r}; installed: {known}", key="interceptors")
    return found[name].load()  # type: ignore[no-any-return]


def load_interceptors(configs: Sequence[InterceptorConfig], rules: Sequence[str] = ()) -> list[Hook]:
    """Build the chain's interceptors in config order; ``rules`` paths add the rules interceptor if none is listed."""
    configs = list(configs)
    if rules:
        if any(config.name == "rules" for config in configs):
            configs = [
                InterceptorConfig("rules", {**config.options, "paths": [*config.options.get("paths", []), *rules]})
                if config.name == "rules"
                else config
                for config in configs
            ]
        else:
            configs.append(InterceptorConfig("rules", {"paths": list(rules)}))
    interceptors = []
    for config in configs:
        factory = find_factory(config.name)
        try:
            interceptor = factory(config.options)
        except ShadowProxyError:
            raise
        except Exception as exc:
            raise ConfigError(f"interceptor {config.name!r} refused its options: {exc}", key="interceptors") from exc
        if not isinstance(interceptor, Interceptor | VerdictObserver):
            raise ConfigError(
                f"{config.name!r} built neither an interceptor nor an observer (it needs a name, and on_message or "
                "observe)",
                key="interceptors",
            )
        interceptors.append(interceptor)
    return interceptors
