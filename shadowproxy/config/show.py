"""The configuration as plain data, from its model, with secrets masked: what ``config show`` prints and the admin
API's ``/config`` answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shadowproxy.config.model import Config
from shadowproxy.core.urls import MASK, mask_url

SECRET_WORDS = ("token", "secret", "password", "passwd", "key", "credential", "authorization", "cookie")


def masked(value: Any, secret: bool = False) -> Any:
    """``value`` with every value under a secret-sounding key (and every value when ``secret``) replaced."""
    if isinstance(value, Mapping):
        return {
            str(key): masked(item, secret or any(word in str(key).lower() for word in SECRET_WORDS))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [masked(item, secret) for item in value]
    if secret and value is not None and not isinstance(value, bool):
        return MASK
    return value


def shown(config: Config) -> dict[str, Any]:
    """``config`` as JSON-ready data, with secrets masked: tokens, passwords, URL credentials, upstream env and
    header values."""
    data = masked(config.model_dump(mode="json"))
    for upstream in data["upstreams"]:
        upstream["url"] = mask_url(upstream["url"]) if upstream["url"] else None
        upstream["env"] = masked(upstream["env"], secret=True)
        upstream["headers"] = masked(upstream["headers"], secret=True)
    data["store"] = mask_url(data["store"])
    return data  # type: ignore[no-any-return]
