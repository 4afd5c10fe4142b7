"""The proxy itself: mounts (one upstream behind a path and the chain), the tap, interceptor plugins, and the
composition root :class:`~shadowproxy.proxy.proxy.Proxy`. It knows no client transport."""
