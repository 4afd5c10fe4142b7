"""Session stores: one protocol (:class:`SessionStore`), three backends chosen by URL (:func:`open_store`)."""

from shadowproxy.stores.base import CursorError, SessionStore, StoredEvent, StoreError
from shadowproxy.stores.url import DEFAULT_URL, open_store, parse_store_url

__all__ = [
    "DEFAULT_URL",
    "CursorError",
    "SessionStore",
    "StoreError",
    "StoredEvent",
    "open_store",
    "parse_store_url",
]
