import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: a bounded load soak (SOAK_CLIENTS, SOAK_SECONDS make it longer)")
