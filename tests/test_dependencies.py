"""No dependency is declared that the product does not import (issue 19, item 6: aiohttp-sse was never used)."""

from __future__ import annotations

import re
import sys
import tomllib
from importlib.metadata import packages_distributions

from tests.support import REPO


def _imported_by_the_product() -> set[str]:
    found: set[str] = set()
    for folder in ("shadowproxy", "rules", "stores", "interceptors"):
        for path in (REPO / folder).rglob("*.py"):
            found.update(re.findall(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", path.read_text(), re.MULTILINE))
    return found


def test_every_declared_dependency_is_imported() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0].lower().replace("_", "-") for spec in declared}
    imported_dists = {
        dist.lower().replace("_", "-")
        for module in _imported_by_the_product()
        for dist in packages_distributions().get(module, [])
    }
    if sys.platform == "win32":
        names.discard("uvloop")
    assert names - imported_dists == set()
