"""What the command line says (issue 18, item 16): errors that name everything wrong at once, with file and line;
outputs that agree with each other; and examples, in ``--help`` and in the README, that run as written.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shadowproxy.cli.main import build_parser, main
from shadowproxy.core.record import SessionRecord
from shadowproxy.rules.validate import ACTIONS
from shadowproxy.stores import open_store
from tests.support import REPO

ALL_ACTIONS = [
    "allow",
    "block",
    "respond",
    "modify",
    "redact",
    "tokenize",
    "delay",
    "rate",
    "log",
    "tag",
    "approve",
    "record",
]


# --- rules check: every valid action is named when one is wrong ---


def test_the_schema_lists_every_action() -> None:
    assert list(ACTIONS) == ALL_ACTIONS


@pytest.mark.parametrize("action", ["blok", "respond", "5", "{blok: 1}", "[block]"])
def test_rules_check_lists_every_action(tmp_path: Path, capsys: pytest.CaptureFixture[str], action: str) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"rules:\n  - id: r1\n    match: {{method: tools/call}}\n    action: {action}\n")
    assert main(["rules", "check", str(policy)]) == 2
    err = capsys.readouterr().err
    assert f"{policy}:4: rule 'r1':" in err
    listed = re.search(r"actions are: ([a-z, ]+)", err)
    assert listed is not None, err
    assert listed.group(1).strip().split(", ") == ALL_ACTIONS, err


def test_a_bare_action_that_needs_settings_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - id: r1\n    match: {}\n    action: respond\n")
    assert main(["rules", "check", str(policy)]) == 2
    assert "takes settings" in capsys.readouterr().err


# --- config check: every problem at once, each with file and line ---

BROKEN = """\
port: eighty
upstreams:
  good: {command: python -m shadowproxy.demo}
  both: {command: x, url: "http://example.com/mcp"}
  typo: {comand: x}
health: {interval: -1}
colour: blue
rules: [missing-policy.yaml]
auth: {tokens: 5}
admin: {token: short}
"""


def test_config_check_reports_every_error_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(BROKEN)
    assert main(["config", "check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    expected = [
        f"{config}:1 [port]: must be a number",
        f"{config}:4 [upstreams.both]: needs exactly one of command or url",
        f"{config}:5 [upstreams.typo.comand]: unknown setting",
        f"{config}:6 [health.interval]: must be 0",
        f"{config}:7 [colour]: unknown key",
        f"{config}:8 [rules]: missing-policy.yaml: no such file or directory",
        f"{config}:9 [auth.tokens]",
        f"{config}:10 [admin.token]",
    ]
    for needle in expected:
        assert needle in err, f"{needle!r} not in:\n{err}"
    assert "8 problems in the configuration" in err


def test_every_unknown_key_of_a_section_and_its_bad_values_are_reported_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text("upstreams:\n  a: {comand: x, colour: red}\nlimits:\n  nope: 3\n  max_sessions: -1\n")
    assert main(["config", "check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    for needle in (
        f"{config}:2 [upstreams.a.comand]: unknown setting",
        f"{config}:2 [upstreams.a.colour]: unknown setting",
        f"{config}:4 [limits.nope]: unknown limit",
        f"{config}:5 [limits.max_sessions]: must be greater than 0",
    ):
        assert needle in err, f"{needle!r} not in:\n{err}"
    # The upstream left out for its typos is not also reported as no upstream at all.
    assert "4 problems in the configuration" in err and "no upstream" not in err


def test_config_check_json_lists_the_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text("port: eighty\ncolour: blue\nupstreams:\n  a: {command: x}\n")
    assert main(["config", "check", "--config", str(config), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert [problem.split(" ")[0] for problem in report["problems"]] == [f"{config}:1", f"{config}:2"]


def test_a_flag_is_not_blamed_on_a_line_of_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text("upstreams:\n  a: {command: x}\nport: 8000\n")
    assert main(["config", "check", "--config", str(config), "--rules", "nowhere.yaml"]) == 2
    err = capsys.readouterr().err
    assert "nowhere.yaml: no such file or directory" in err and f"{config}:" not in err


def test_one_error_keeps_the_one_line_form(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text("upstreams:\n  a: {command: x}\nport: 70000\n")
    assert main(["run", "--config", str(config)]) == 2
    assert capsys.readouterr().err == f"shadowproxy: {config}:3 [port]: must be between 0 (any free port) and 65535\n"


# --- config show and config check agree on the chain ---


def test_show_and_check_agree_on_the_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(
        "upstreams:\n  a: {command: python -m shadowproxy.demo}\n"
        f"interceptors:\n  - name: audit\n    options: {{file: {tmp_path / 'audit.jsonl'}}}\n"
        "rules: [builtin:read-only]\n"
    )
    assert main(["config", "check", "--config", str(config), "--json"]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert main(["config", "show", "--config", str(config), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert checked["chain"] == shown["chain"] == ["pinning", "audit", "rules"]
    assert main(["config", "check", "--config", str(config)]) == 0
    assert "3 interceptor(s) in the chain: pinning, audit, rules" in capsys.readouterr().out
    assert main(["config", "show", "--config", str(config)]) == 0
    assert 'chain: ["pinning", "audit", "rules"]' in capsys.readouterr().out.splitlines()


# --- sessions show: an id prefix, as tap --session takes ---


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite://{tmp_path / 'sessions.db'}"
    now = time.time()
    records = [
        SessionRecord(id=session_id, upstream="demo", created_at=now, last_seen=now)
        for session_id in ("3f2a9c-one", "3f2b11-two", "9e0d77-three")
    ]

    async def put() -> None:
        opened = open_store(url)
        await opened.put_many(records)
        await opened.close()

    asyncio.run(put())
    return url


def test_sessions_show_takes_a_unique_prefix(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sessions", "show", "9e0", "--store", store, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "9e0d77-three"
    assert main(["sessions", "show", "3f2a9c-one", "--store", store, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "3f2a9c-one"


def test_an_ambiguous_prefix_names_the_candidates(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sessions", "show", "3f2", "--store", store]) == 2
    err = capsys.readouterr().err
    assert "'3f2' matches 2 sessions" in err and "3f2a9c-one" in err and "3f2b11-two" in err
    assert main(["sessions", "show", "77", "--store", store]) == 1
    assert "no session '77'" in capsys.readouterr().err


def test_sessions_kill_takes_a_unique_prefix(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sessions", "kill", "3f2b", "--store", store]) == 0
    assert "session 3f2b11-two marked closed" in capsys.readouterr().out


# --- every example, in --help and in the README, runs as written ---


def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from parsers(child)


def commands_in(text: str) -> list[str]:
    """Each ``shadowproxy ...`` command in ``text``, one a line (``a && shadowproxy ...`` too), comments cut."""
    found = []
    for line in text.replace("\\\n", " ").splitlines():
        for part in line.split("&&"):
            if part.strip().startswith("shadowproxy "):
                words = shlex.split(part, comments=True)
                redirected = [index for index, word in enumerate(words) if word in (">", ">>", "|")]
                found.append(shlex.join(words[: redirected[0]] if redirected else words))
    return found


def named_files(args: argparse.Namespace) -> list[str]:
    """The files and directories a parsed command reads, which must exist for it to run as written."""
    named = [str(value) for key in ("config", "cases", "file", "proxy_config") if (value := getattr(args, key, None))]
    named += [*(getattr(args, "paths", None) or []), *(getattr(args, "rules", None) or [])]
    if args.command == "rules":
        for key in ("message", "request", "session"):
            value = getattr(args, key, None)
            if value and not value.lstrip().startswith(("{", "[")):
                named.append(value)
    upstream = getattr(args, "upstream", None)
    words = shlex.split(upstream) if upstream and "://" not in upstream else []
    words += getattr(args, "cmd", None) or []
    named += [word for word in words if word.endswith((".py", ".yaml", ".json"))]
    # builtin: packs ship with the package; ~ is the user's own (an MCP client's config file).
    return [path for path in named if not path.startswith(("builtin:", "~"))]


def check_runs_as_written(command: str) -> None:
    try:
        args = build_parser().parse_args(shlex.split(command)[1:])
    except SystemExit as exc:
        raise AssertionError(f"does not parse: {command}") from exc
    missing = [path for path in named_files(args) if not (REPO / path).exists()]
    assert not missing, f"{command}: no {missing} in the repository"


def help_examples() -> list[str]:
    return [command for parser in parsers(build_parser()) for command in commands_in(parser.epilog or "")]


def readme_examples() -> list[str]:
    blocks = re.findall(r"```(?:bash|sh|shell)\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    return [command for block in blocks for command in commands_in(block)]


def test_there_are_examples_to_check() -> None:
    assert len(help_examples()) > 20 and len(readme_examples()) > 15


@pytest.mark.parametrize("command", help_examples())
def test_each_help_example_runs_as_written(command: str) -> None:
    check_runs_as_written(command)


@pytest.mark.parametrize("command", readme_examples())
def test_each_readme_example_runs_as_written(command: str) -> None:
    check_runs_as_written(command)


def readme_configs() -> list[str]:
    """The README's YAML blocks that are proxy config files (not compose files)."""
    blocks = re.findall(r"```yaml\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    return [block for block in blocks if not block.startswith("# compose.yaml")]


@pytest.mark.parametrize("text", readme_configs(), ids=lambda text: text.splitlines()[0][:30])
def test_each_readme_config_passes_config_check(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    config = tmp_path / "shadowproxy.yaml"
    config.write_text(text)
    # A fragment about one section runs in front of the demo, as it would in a whole file.
    upstream = [] if "upstreams:" in text else ["--upstream", "python -m shadowproxy.demo"]
    assert main(["config", "check", "--config", str(config), *upstream]) == 0, capsys.readouterr().err


def test_readme_links_and_paths_are_in_the_repository() -> None:
    text = (REPO / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)\)", text)
    paths = re.findall(r"`((?:[\w.-]+/)+[\w.-]*)`", text)
    # Paths into the repository's own folders; method names (notifications/cancelled) look alike.
    folders = {entry.name for entry in REPO.iterdir() if entry.is_dir() and not entry.name.startswith(".")}
    local = [*links, *(path for path in paths if path.split("/")[0] in folders)]
    local = [target for target in local if "://" not in target]
    assert len(local) > 10, local
    missing = [target for target in local if not (REPO / target).exists()]
    assert not missing, missing


def test_readme_promises_no_package_or_image_that_does_not_exist() -> None:
    text = (REPO / "README.md").read_text()
    assert "pip install shadowproxy" not in text
    assert "image: shadowproxy" not in text
    assert "../" not in text


def test_the_examples_that_need_no_server_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The rules and config examples run offline: run them, from the repository, and expect success."""
    offline = [
        command
        for command in dict.fromkeys([*help_examples(), *readme_examples()])
        if shlex.split(command)[1:3] in (["rules", "check"], ["rules", "test"], ["config", "check"])
    ]
    assert len(offline) >= 5, offline
    for command in offline:
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(REPO)
            assert main(shlex.split(command)[1:]) == 0, (command, capsys.readouterr())
