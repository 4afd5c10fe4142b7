"""The cluster tests' fixtures (three instances on one private Redis), for the balancer test."""

from tests.cluster.conftest import redis_server, start_instances

__all__ = ["redis_server", "start_instances"]
