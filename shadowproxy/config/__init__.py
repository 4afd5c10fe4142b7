"""The typed configuration: the model of ``shadowproxy.yaml``, its loading and validation, and the limits."""

from shadowproxy.config.model import (
    DEFAULT_CONFIG_FILE,
    BackoffConfig,
    CircuitConfig,
    ClusterConfig,
    Config,
    ConfigError,
    ConfigErrors,
    HealthConfig,
    InterceptorConfig,
    UpstreamConfig,
    for_stdio,
    from_mapping,
    load,
    parse_upstream,
    pinpoint,
)

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "BackoffConfig",
    "CircuitConfig",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "ConfigErrors",
    "HealthConfig",
    "InterceptorConfig",
    "UpstreamConfig",
    "for_stdio",
    "from_mapping",
    "load",
    "parse_upstream",
    "pinpoint",
]
