"""The typed configuration: the models of ``shadowproxy.yaml``, its loading and validation, and the limits."""

from shadowproxy.config.admin import AdminConfig
from shadowproxy.config.auth import AuthSettings, JwtSettings, StaticToken
from shadowproxy.config.limits import Limits, UpstreamLimits
from shadowproxy.config.load import DEFAULT_CONFIG_FILE, for_stdio, from_mapping, load, parse_upstream, pinpoint
from shadowproxy.config.model import (
    BackoffConfig,
    CircuitConfig,
    ClusterConfig,
    Config,
    HealthConfig,
    InterceptorConfig,
    UpstreamConfig,
)
from shadowproxy.config.show import shown
from shadowproxy.config.validation import ConfigErrors, located, problems_of, raise_all
from shadowproxy.core.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "AdminConfig",
    "AuthSettings",
    "BackoffConfig",
    "CircuitConfig",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "ConfigErrors",
    "HealthConfig",
    "InterceptorConfig",
    "JwtSettings",
    "Limits",
    "StaticToken",
    "UpstreamConfig",
    "UpstreamLimits",
    "for_stdio",
    "from_mapping",
    "load",
    "located",
    "parse_upstream",
    "pinpoint",
    "problems_of",
    "raise_all",
    "shown",
]
