"""Invalid rules are refused at load with every problem named by file, line and rule id."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowproxy.core.errors import ConfigError
from shadowproxy.interceptors.rules import create
from shadowproxy.rules.ruleset import load
from shadowproxy.rules.source import RulesError

from .helpers import write

A = "rules:\n  - id: a\n"

THREE_MISTAKES = """\
rules:
  - id: typo
    description: the key "match" is misspelt
    mtach: {method: tools/call}
    action: allow
  - id: bad-regex
    match:
      tool: {regex: "([a-z"}
    action: block
  - id: unknown-action
    match: {method: "tools/*"}
    action: {deny: {message: no}}
"""


def problems_of(tmp_path: Path, text: str, name: str = "rules.yaml") -> list[str]:
    file = write(tmp_path / name, text)
    with pytest.raises(RulesError) as caught:
        load([str(file)])
    return [str(problem) for problem in caught.value.problems]


def test_three_mistakes_are_all_reported_with_their_lines(tmp_path: Path) -> None:
    file = write(tmp_path / "three.yaml", THREE_MISTAKES)
    with pytest.raises(RulesError) as caught:
        load([str(file)])
    problems = caught.value.problems
    assert [(p.line, p.rule) for p in problems] == [(4, "typo"), (8, "bad-regex"), (12, "unknown-action")]
    assert "unknown key 'mtach'" in problems[0].message and "did you mean 'match'" in problems[0].message
    assert "bad regex '([a-z'" in problems[1].message
    assert "unknown action 'deny'" in problems[2].message
    text = str(caught.value)
    assert text.startswith("3 problems in rules files")
    assert f"{file}:4: rule 'typo':" in text


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        (
            "rules:\n  - id: a\n    match: {mehtod: x}\n    action: allow\n",
            3,
            "unknown key 'mehtod' in match (did you mean 'method'?)",
        ),
        ("rulez: []\n", 1, "unknown key 'rulez'"),
        (
            "rules:\n  - id: a\n    match: {}\n    action: blok\n",
            4,
            "'blok' is not a valid action (did you mean 'block'?)",
        ),
        (A + "    match: {}\n", 2, "missing required key 'action'"),
        (
            "rules:\n  - id: a\n    priority: high\n    match: {}\n    action: allow\n",
            3,
            "priority must be an integer, not 'high'",
        ),
        ("rules:\n  - id: a b\n    match: {}\n    action: allow\n", 2, "rule id 'a b' may hold only"),
        (
            "rules:\n  - id: a\n    match: {direction: inbound}\n    action: allow\n",
            3,
            "'inbound' is not a valid match.direction",
        ),
        (A + "    match: {params: {'a..b': 1}}\n    action: allow\n", 3, "cannot parse path 'a..b'"),
        (A + "    match: {params: {x: {regx: a}}}\n    action: allow\n", 3, "unknown key 'regx'"),
        (
            "rules:\n  - id: a\n    match: {}\n    action:\n      modify: {set: {arguments.x: 1}}\n",
            5,
            "must start with 'params.' or 'result.'",
        ),
        (
            "rules:\n  - id: a\n    match: {}\n    action:\n      modify: {remove: [params._meta]}\n",
            5,
            "params._meta is protocol metadata",
        ),
        (A + "    match: {}\n    action: {redact: {detectors: [ssn]}}\n", 4, "'ssn' is not a valid"),
        (A + "    match: {}\n    action: {rate: {limit: 0, per: 1}}\n", 4, "less than the minimum"),
        (A + "    match: {}\n    action: {delay: 1000}\n", 4, "greater than the maximum"),
        (A + "    match: {}\n    action: 5\n", 4, "an action is a name"),
        ("default: deny\nrules: []\n", 1, "'deny' is not a valid default"),
        (
            "rules:\n  - id: a\n    match: {}\n    action: allow\n  - id: a\n    match: {}\n    action: block\n",
            5,
            "duplicate rule id",
        ),
        (A + "    id: b\n    match: {}\n    action: allow\n", 3, "duplicate key 'id'"),
        (A + "    match: {tool: [a, b\n", 4, "invalid YAML"),
        ("", 1, "the file is empty"),
    ],
)
def test_each_mistake_is_named(tmp_path: Path, text: str, line: int, expected: str) -> None:
    problems = problems_of(tmp_path, text)
    assert any(f"rules.yaml:{line}:" in problem and expected in problem for problem in problems), problems


def test_json_is_accepted_and_lines_still_known(tmp_path: Path) -> None:
    good = write(tmp_path / "good.json", '{"rules": [{"id": "a", "match": {"tool": "x"}, "action": "block"}]}')
    assert [rule.id for rule in load([str(good)]).rules] == ["a"]
    problems = problems_of(
        tmp_path, '{\n  "rules": [\n    {"id": "a", "match": {}, "action": "nope"}\n  ]\n}\n', "bad.json"
    )
    assert any("bad.json:3:" in problem and "'nope'" in problem for problem in problems)


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "rules:\n  - {id: same, match: {}, action: allow}\n")
    write(tmp_path / "b.yaml", "rules:\n  - {id: same, match: {}, action: block}\n")
    with pytest.raises(RulesError) as caught:
        load([str(tmp_path)])
    assert "b.yaml:2: rule 'same': duplicate rule id (first defined at" in str(caught.value)


def test_paths_that_name_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RulesError) as caught:
        load([str(tmp_path / "missing.yaml"), str(tmp_path / "empty"), "builtin:nope"])
    text = str(caught.value)
    assert "missing.yaml: no such file or directory" in text
    assert "holds no .yaml" in text
    assert (
        "no built-in pack 'nope' (known: allowlist-example, no-secrets, pii, read-only, tool-poisoning, "
        "tool-poisoning-results)" in text
    )


def test_errors_in_several_files_are_all_reported(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "rules:\n  - {id: a, match: {tol: x}, action: allow}\n")
    write(tmp_path / "b.yaml", "rules:\n  - {id: b, match: {}, action: nope}\n")
    with pytest.raises(RulesError) as caught:
        load([str(tmp_path)])
    assert [Path(p.file).name for p in caught.value.problems] == ["a.yaml", "b.yaml"]


def test_create_raises_config_error_listing_everything(tmp_path: Path) -> None:
    file = write(tmp_path / "three.yaml", THREE_MISTAKES)
    with pytest.raises(ConfigError) as caught:
        create({"paths": [str(file)]})
    message = str(caught.value)
    for line in (4, 8, 12):
        assert f"three.yaml:{line}:" in message


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "[interceptors.rules.paths]: must be a non-empty list"),
        ({"paths": []}, "[interceptors.rules.paths]: must be a non-empty list"),
        ({"paths": ["builtin:pii"], "wach": True}, "[interceptors.rules.wach]: unknown option"),
        ({"paths": ["builtin:pii"], "watch": "yes"}, "[interceptors.rules.watch]: must be true or false"),
        ({"paths": ["builtin:pii"], "watch_interval": 0}, "[interceptors.rules.watch_interval]: must be a positive"),
        ({"paths": ["builtin:pii"], "rate_backend": "redis"}, "[interceptors.rules.rate_backend]: 'redis' is not"),
    ],
)
def test_bad_options(options: dict, expected: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as caught:
        create(options)
    assert expected in str(caught.value)


def test_builtin_packs_load_by_name() -> None:
    interceptor = create({"paths": ["builtin:read-only", "builtin:no-secrets"], "watch": False})
    assert interceptor.name == "rules"
    assert len(interceptor.rules.rules) == 5
