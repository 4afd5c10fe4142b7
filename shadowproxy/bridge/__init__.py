"""Bridging the protocol eras: a 2026-07-28 client in front of a server that speaks only the handshake era.

The bridge sits between the mount and its upstream. A mount whose upstream cannot meet a 2026-07-28 client
directly (:mod:`~shadowproxy.bridge.era` finds that out once) hands each logical session a
:class:`~shadowproxy.bridge.modern_client.BridgedChannel` instead of the upstream's stateless channel; the
channel carries each stateless request on a handshake session the proxy owns
(:mod:`~shadowproxy.bridge.pool`), and :mod:`~shadowproxy.bridge.shapes` turns the answers into what a
2026-07-28 client validates. A mount that needs no bridge pays one attribute test per new logical session.
"""
