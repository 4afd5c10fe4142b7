"""The era bridge's settings on an upstream: ``bridge`` and ``era`` (see :mod:`shadowproxy.bridge`)."""

from __future__ import annotations

from typing import Literal

BridgeMode = Literal["auto", "off", "always"]
"""``auto``: bridge 2026-07-28 clients only to a server that cannot meet them directly; ``off``: never;
``always``: carry them on handshake sessions whatever the server speaks."""
Era = Literal["auto", "handshake", "modern"]
"""What the server speaks: ``auto`` asks it once (``server/discover``); ``handshake`` and ``modern`` say so."""
