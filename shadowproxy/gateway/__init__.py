"""Virtual servers: one endpoint in front of several upstreams (``virtual_servers:`` in the config).

A virtual server is an :class:`~shadowproxy.gateway.upstream.AggregateUpstream`: an upstream like any other to the
mount and the fronts, so every client transport serves it unchanged. Each client session gets an
:class:`~shadowproxy.gateway.channel.AggregateChannel` holding one channel per member
(:mod:`~shadowproxy.gateway.member`), which merges lists (:mod:`~shadowproxy.gateway.lists`, cached by
:mod:`~shadowproxy.gateway.cache`), routes calls by namespaced name (:mod:`~shadowproxy.gateway.names`) or resource
URI, and translates what the members send back. :mod:`~shadowproxy.gateway.search` is progressive discovery.
"""

from shadowproxy.gateway.upstream import AggregateUpstream

__all__ = ["AggregateUpstream"]
