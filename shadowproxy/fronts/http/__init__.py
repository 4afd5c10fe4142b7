"""The Streamable HTTP front: the endpoint, its GET stream, the fast connection path and the request gate."""
