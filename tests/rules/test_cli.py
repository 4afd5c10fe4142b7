"""``shadowproxy rules check`` and ``rules test``, in-process through a real parser and as a subprocess."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from shadowproxy.rules import cli

from .helpers import write
from .test_validation import THREE_MISTAKES

POLICY = """
default: block
rules:
  - {id: list, match: {direction: client_to_server, method: tools/list}, action: allow}
  - {id: read, match: {direction: client_to_server, tool: "read_*"}, action: allow}
  - {id: mask, priority: 10, match: {}, action: redact}
  - {id: log-calls, priority: 20, match: {tool: "*"}, action: log}
"""
CALL = '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_file","arguments":{"who":"a@b.example"}}}'


def run(*argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="shadowproxy")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    code = args.handler(args, out, err)
    return code, out.getvalue(), err.getvalue()


def test_check_summarises(tmp_path: Path) -> None:
    file = write(tmp_path / "policy.yaml", POLICY)
    code, out, err = run("rules", "check", str(file))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "ok: 4 rules in 1 files (0 disabled)",
        "  actions: allow 2, log 1, redact 1",
        f"  default: block (from {file})",
    ]
    code, out, _ = run("rules", "check", "--json", str(file), "builtin:pii")
    assert code == 0 and json.loads(out)["rules"] == 5


def test_check_names_all_three_mistakes(tmp_path: Path) -> None:
    file = write(tmp_path / "three.yaml", THREE_MISTAKES)
    code, out, err = run("rules", "check", str(file))
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert lines[0] == "error: 3 problems in rules files"
    assert [line.split(": rule")[0].strip() for line in lines[1:]] == [f"{file}:4", f"{file}:8", f"{file}:12"]


def test_test_prints_matches_verdict_and_message(tmp_path: Path) -> None:
    file = write(tmp_path / "policy.yaml", POLICY)
    code, out, err = run("rules", "test", str(file), "--message", CALL)
    assert (code, err) == (0, "")
    assert "log-calls" in out and "mask" in out
    assert "verdict: forward by read (modified)" in out
    assert '"who": "[REDACTED:email]"' in out
    denied = CALL.replace("read_file", "rm")
    code, out, _ = run("rules", "test", str(file), "--message", denied, "--json")
    report = json.loads(out)
    assert code == 0
    assert report["verdict"] == "block" and report["rule"] == "(default)"
    assert report["matched"] == ["log-calls", "mask"]
    assert report["message"]["error"]["code"] == -32010


def test_test_a_reply_with_its_request_from_files(tmp_path: Path) -> None:
    file = write(tmp_path / "policy.yaml", POLICY)
    listing = write(
        tmp_path / "reply.json", '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read_x"},{"name":"rm"}]}}'
    )
    asked = write(tmp_path / "request.yaml", "{jsonrpc: '2.0', id: 1, method: tools/list}")
    code, out, _ = run(
        "rules",
        "test",
        str(file),
        "--message",
        str(listing),
        "--request",
        str(asked),
        "--direction",
        "server_to_client",
    )
    assert code == 0
    assert "hidden tools: rm" in out


def test_test_with_session_and_principal(tmp_path: Path) -> None:
    file = write(
        tmp_path / "p.yaml", "rules:\n  - {id: vip, match: {session: {tags: [vip]}, principal: bob}, action: block}\n"
    )
    base = ("rules", "test", str(file), "--message", CALL, "--json")
    code, out, _ = run(*base, "--session", '{"tags": ["vip"]}', "--principal", "bob")
    assert (code, json.loads(out)["verdict"]) == (0, "block")
    code, out, _ = run(*base, "--session", '{"tags": []}', "--principal", "bob")
    assert (code, json.loads(out)["verdict"]) == (0, "forward")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("{not json", "--message: invalid JSON"),
        ('{"jsonrpc": "1.0", "id": 1, "method": "x"}', '--message: the "jsonrpc" member must be exactly "2.0"'),
        ("/nonexistent/message.json", "--message: cannot read /nonexistent/message.json"),
    ],
)
def test_test_bad_message_is_a_usage_error(tmp_path: Path, message: str, expected: str) -> None:
    file = write(tmp_path / "policy.yaml", POLICY)
    code, out, err = run("rules", "test", str(file), "--message", message)
    assert code == 2 and out == ""
    assert expected in err


def test_test_bad_yaml_message_file_names_the_line(tmp_path: Path) -> None:
    file = write(tmp_path / "policy.yaml", POLICY)
    bad = write(tmp_path / "m.yaml", "jsonrpc: '2.0'\nid: [1\n")
    code, _, err = run("rules", "test", str(file), "--message", str(bad))
    assert code == 2 and f"{bad}:3:" in err


def test_cases_pass_and_fail(tmp_path: Path) -> None:
    file = write(tmp_path / "policy.yaml", POLICY)
    cases = tmp_path / "cases"
    cases.mkdir()
    write(
        cases / "a.yaml",
        f"""
cases:
  - name: reading passes
    message: {CALL}
    expect: {{verdict: forward, rule: read, matched: [log-calls, read], absent: [a@b.example]}}
  - name: wrong expectation
    message: {CALL.replace("read_file", "rm")}
    expect: {{verdict: forward, code: -32602}}
  - name: rate limit after repeats
    repeat: 3
    message: {CALL}
    expect: {{verdict: forward}}
""",
    )
    code, out, _ = run("rules", "test", str(file), "--cases", str(cases))
    assert code == 1
    assert "PASS reading passes" in out
    assert "FAIL wrong expectation" in out
    assert f"{cases / 'a.yaml'}:6: expected verdict forward, got block" in out
    assert "expected error code -32602, got -32010" in out
    assert out.strip().endswith("2 passed, 1 failed")
    code, out, _ = run("rules", "test", str(file), "--cases", str(cases), "--json")
    report = json.loads(out)
    assert (code, report["passed"], report["failed"]) == (1, 2, 1)


def test_malformed_cases_are_a_usage_error(tmp_path: Path) -> None:
    file = write(tmp_path / "policy.yaml", POLICY)
    cases = tmp_path / "cases"
    cases.mkdir()
    write(cases / "a.yaml", "cases:\n  - name: x\n    mesage: {}\n    expect: {verdict: maybe}\n")
    code, _, err = run("rules", "test", str(file), "--cases", str(cases))
    assert code == 2
    assert "a.yaml:3: unknown key 'mesage'" in err
    assert "a.yaml:2: case is missing 'message'" in err
    assert "a.yaml:4: verdict must be one of" in err


def test_usage_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as caught:
        run("rules", "test", "builtin:pii")
    assert caught.value.code == 2
    with pytest.raises(SystemExit) as caught:
        run("rules", "test", "builtin:pii", "--message", "{}", "--cases", "x")
    assert caught.value.code == 2


def test_as_a_subprocess(tmp_path: Path) -> None:
    file = write(tmp_path / "three.yaml", THREE_MISTAKES)
    command = [sys.executable, "-m", "shadowproxy", "rules"]  # the real CLI, which registers ours
    bad = subprocess.run([*command, "check", str(file)], capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2
    assert f"{file}:4:" in bad.stderr and f"{file}:8:" in bad.stderr and f"{file}:12:" in bad.stderr
    good = subprocess.run(
        [*command, "check", "builtin:read-only"], capture_output=True, text=True, timeout=60, check=False
    )
    assert good.returncode == 0 and good.stdout.startswith("ok: 4 rules")
    helped = subprocess.run([*command, "test", "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert helped.returncode == 0 and "examples:" in helped.stdout and "--cases" in helped.stdout


def test_standalone_module_runs_too(tmp_path: Path) -> None:
    file = write(tmp_path / "policy.yaml", POLICY)
    command = [sys.executable, "-m", "shadowproxy.rules.cli", "rules", "test", str(file), "--message", CALL, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rule"] == "read"
