"""The circuit breaker's states on a clock the test moves, and the ``health`` config that sets it up."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowproxy import config
from shadowproxy.config import CircuitConfig
from shadowproxy.core.errors import UPSTREAM_UNAVAILABLE, ConfigError
from shadowproxy.upstreams.circuit import Circuit, CircuitState, UpstreamUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def circuit(clock: Clock, failures: int = 3, window: float = 10, open_for: float = 30) -> Circuit:
    return Circuit("files", CircuitConfig(failures=failures, window=window, open_for=open_for), clock)


def test_failures_within_the_window_open_it_and_it_refuses_until_half_open() -> None:
    clock = Clock()
    breaker = circuit(clock)
    for _ in range(2):
        breaker.failed()
        breaker.check()
    assert breaker.state is CircuitState.CLOSED
    breaker.failed()
    assert breaker.state is CircuitState.OPEN and breaker.opens == 1
    clock.now += 12
    with pytest.raises(UpstreamUnavailable) as refused:
        breaker.check()
    assert refused.value.code == UPSTREAM_UNAVAILABLE and refused.value.retry_after == 18
    assert refused.value.data == {
        "reason": "UPSTREAM_UNAVAILABLE",
        "upstream": "files",
        "circuit": "open",
        "retry_after": 18,
    }
    clock.now += 18
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.check()  # one attempt may go


def test_a_failed_half_open_attempt_opens_it_again_and_a_success_closes_it() -> None:
    clock = Clock()
    breaker = circuit(clock, failures=1)
    breaker.failed()
    clock.now += 30
    breaker.failed()
    assert breaker.state is CircuitState.OPEN and breaker.opens == 2 and breaker.retry_after() == 30
    breaker.failed()  # a straggler while open does not push the reopening further
    assert breaker.retry_after() == 30
    clock.now += 30
    breaker.succeeded()
    assert breaker.state is CircuitState.CLOSED and breaker.retry_after() == 0


def test_failures_spread_wider_than_the_window_do_not_open_it() -> None:
    clock = Clock()
    breaker = circuit(clock)
    for _ in range(6):
        breaker.failed()
        clock.now += 6
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("health:\n  interval: -1\n", "cfg.yaml:2 [health.interval]", "0 (no pings) or more"),
        ("health:\n  timeout: 0\n", "cfg.yaml:2 [health.timeout]", "greater than 0"),
        ("health:\n  circuit:\n    failures: many\n", "cfg.yaml:3 [health.circuit.failures]", "must be a number"),
        ("health:\n  backoff:\n    initial: 2\n    max: 1\n", "cfg.yaml:4 [health.backoff.max]", "not be less than"),
        (
            "health:\n  circuit:\n    open: 1\n",
            "cfg.yaml:3 [health.circuit.open]",
            "known settings are: failures, window, open_for",
        ),
        ("health: 5\n", "cfg.yaml:1 [health]", "must be a mapping"),
        ("metrics_port: 70000\n", "[metrics_port]", "between 1 and 65535"),
    ],
)
def test_bad_health_config_names_file_line_and_key(tmp_path: Path, text: str, where: str, problem: str) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        config.load(str(path), env={})
    assert where in str(error.value) and problem in str(error.value)


def test_health_defaults_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("health:\n  interval: 0\n  circuit: {failures: 2}\nmetrics_port: 9102\n")
    loaded = config.load(str(path), env={"SHADOWPROXY_METRICS_PORT": "9103"})
    assert loaded.health.interval == 0 and loaded.health.timeout == 5
    assert loaded.health.circuit == CircuitConfig(failures=2, window=60, open_for=60)
    assert loaded.metrics_port == 9103
