"""Interceptors from config: found by name in the ``shadowproxy.interceptors`` entry point group.

A user's package adds an interceptor by declaring an entry point in that group;
its value is a factory taking the interceptor's options. A factory whose parameter
is a pydantic model gets the options validated by that model, every problem named
``interceptors[N].options.<key>``; any other gets the options mapping as it is. A
``module:attribute`` name works too, for factories that are not packaged. The
factory may build an :class:`~shadowproxy.core.chain.Interceptor`, a
:class:`~shadowproxy.core.chain.VerdictObserver`, or an object that is both; the
chain finds its other hooks (start, close, reload, wants) by their names.
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from shadowproxy.config import InterceptorConfig
from shadowproxy.config.validation import options_from
from shadowproxy.core.chain import Hook, Interceptor, VerdictObserver
from shadowproxy.core.errors import ConfigError, ShadowProxyError

GROUP = "shadowproxy.interceptors"
Factory = Callable[[Any], Hook]


def find_factory(name: str, key: str = "interceptors") -> Factory:
    if ":" in name:
        module, _, attribute = name.partition(":")
        try:
            return getattr(importlib.import_module(module), attribute)  # type: ignore[no-any-return]
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"cannot load interceptor {name!r}: {exc}", key=key) from None
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ConfigError(f"unknown interceptor {name!r}; installed: {known}", key=key)
    return found[name].load()  # type: ignore[no-any-return]


def options_model(factory: Factory) -> type[BaseModel] | None:
    """The pydantic model the factory's parameter is annotated with, if any (alone or in a union)."""
    try:
        parameter = next(iter(inspect.signature(factory).parameters.values()), None)
        hints = typing.get_type_hints(factory) if parameter is not None else {}
    except (TypeError, ValueError, NameError):
        return None
    hint = hints.get(parameter.name) if parameter is not None else None
    kinds = (
        typing.get_args(hint)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        else (hint,)
    )
    return next((kind for kind in kinds if isinstance(kind, type) and issubclass(kind, BaseModel)), None)


def chain_configs(
    configs: Sequence[InterceptorConfig], rules: Sequence[str] = ()
) -> list[tuple[str, InterceptorConfig]]:
    """The interceptors in config order, each with its key; ``rules`` paths add to the rules interceptor's, or
    add one (keyed ``rules``) if none is listed."""
    keyed = [(f"interceptors[{index}]", config) for index, config in enumerate(configs)]
    if not rules:
        return keyed
    if not any(config.name == "rules" for config in configs):
        return [*keyed, ("rules", InterceptorConfig(name="rules", options={"paths": list(rules)}))]
    return [
        (
            key,
            config.model_copy(
                update={"options": {**config.options, "paths": [*config.options.get("paths", []), *rules]}}
            ),
        )
        if config.name == "rules"
        else (key, config)
        for key, config in keyed
    ]


def load_interceptor(config: InterceptorConfig, key: str) -> Hook:
    """The interceptor ``config`` names, its options validated; problems are named under ``key``."""
    factory = find_factory(config.name, key)
    model = options_model(factory)
    options = config.options if model is None else options_from(model, config.options, f"{key}.options")
    try:
        interceptor = factory(options)
    except ShadowProxyError:
        raise
    except Exception as exc:
        raise ConfigError(f"interceptor {config.name!r} refused its options: {exc}", key=key) from exc
    if not isinstance(interceptor, Interceptor | VerdictObserver):
        raise ConfigError(
            f"{config.name!r} built neither an interceptor nor an observer (it needs a name, and on_message or "
            "observe)",
            key=key,
        )
    return interceptor


def load_interceptors(configs: Sequence[InterceptorConfig], rules: Sequence[str] = ()) -> list[Hook]:
    """Build the chain's interceptors in config order; ``rules`` paths add the rules interceptor if none is listed."""
    return [load_interceptor(config, key) for key, config in chain_configs(configs, rules)]
