"""Hypothesis profiles: ``ci`` (the default, bounded) and ``long`` (a soak run; see SECURITY.md).

``HYPOTHESIS_PROFILE=long`` runs 100,000 examples per property; ``SHADOWPROXY_FUZZ_EXAMPLES=N`` sets the count.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
EXAMPLES = int(os.environ.get("SHADOWPROXY_FUZZ_EXAMPLES", 100_000 if LONG else 300))
settings.register_profile(
    "shadowproxy",
    max_examples=EXAMPLES,
    deadline=None,
    database=None if not LONG else settings.default.database,
    suppress_health_check=CHECKS,
)
settings.load_profile("shadowproxy")
