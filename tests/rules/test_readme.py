"""Every rules example in rules/README.md is a valid rules file."""

from __future__ import annotations

import re

import yaml

from shadowproxy.rules.ruleset import loads
from shadowproxy.rules.source import PACKS_DIR

README = PACKS_DIR.parent / "README.md"


def test_readme_examples_load() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    rule_files = [
        block for block in blocks if isinstance(yaml.safe_load(block), dict) and "rules" in yaml.safe_load(block)
    ]
    assert len(rule_files) >= 4
    for block in rule_files:
        assert loads(block, "README.md").rules
