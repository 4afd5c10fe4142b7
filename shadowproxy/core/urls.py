"""What of a URL may be shown: in logs, errors, the banner, the admin API and ``/readyz``.

A URL's password may be a credential, and so may its query (``?token=``; redis-py reads ``?password=``) and, on an
endpoint anyone may read, its path (some services put the key there). The host is kept as written: an IPv6
address keeps its brackets.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import SplitResult, urlsplit, urlunsplit

MASK = "********"


def mask_url(url: str, mask: str = MASK, *, query: bool = True, keep: Collection[str] = ()) -> str:
    """``url`` with its password replaced by ``mask``, and its query too unless ``query`` is false: the whole
    query, or with ``keep`` the value of every query field not named there."""
    parts = urlsplit(url)
    hide_query = query and bool(parts.query)
    if parts.password is None and not hide_query:
        return url
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:{mask}@{_host(parts)}"
    shown_query = parts.query
    if hide_query:
        shown_query = "&".join(_masked_field(field, mask, keep) for field in parts.query.split("&")) if keep else mask
    return urlunsplit(parts._replace(netloc=netloc, query=shown_query))


def origin(url: str) -> str:
    """Scheme, host and port only, for what anyone may read."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{_host(parts)}"


def _host(parts: SplitResult) -> str:
    """The host and port as written, after any user information."""
    return parts.netloc.rpartition("@")[2]


def _masked_field(field: str, mask: str, keep: Collection[str]) -> str:
    name, equals, _ = field.partition("=")
    return field if name in keep or not equals else f"{name}={mask}"
