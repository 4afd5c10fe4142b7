"""``shadowproxy rules check`` and ``shadowproxy rules test``: work on policy without a running proxy.

Exit status: 0 all good, 1 a policy case failed, 2 invalid files or usage.
Errors go to stderr and name file:line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

import orjson

from shadowproxy.core.chain import Direction
from shadowproxy.core.errors import JsonRpcError
from shadowproxy.rules.cases import load_cases, message_of, resulting, run_case, subject_for, verdict_name
from shadowproxy.rules.engine import Engine, Outcome
from shadowproxy.rules.ruleset import RuleSet, load
from shadowproxy.rules.source import RulesError

OK, FAILED, INVALID = 0, 1, 2

FROM_A_CLONE = "files named shadowproxy/demo/... and rules/packs/... are in a clone of the repository"
CHECK_EXAMPLES = f"""examples:
  shadowproxy rules check shadowproxy/demo/policy.yaml
  shadowproxy rules check shadowproxy/demo/policy.yaml builtin:no-secrets
  shadowproxy rules check --json builtin:read-only

{FROM_A_CLONE}
"""
HUGE_SUM = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":5000000}}}'
TEST_EXAMPLES = f"""examples:
  shadowproxy rules test shadowproxy/demo/policy.yaml --message '{HUGE_SUM}'
  shadowproxy rules test shadowproxy/demo/policy.yaml --message shadowproxy/demo/reply.json \\
      --request shadowproxy/demo/call.json --direction server_to_client
  shadowproxy rules test shadowproxy/demo/policy.yaml --cases shadowproxy/demo/cases/
  shadowproxy rules test builtin:read-only --cases rules/packs/cases/read-only/

{FROM_A_CLONE}
"""


class UsageError(Exception):
    """A command-line value that cannot be used (exit 2)."""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``rules check`` and ``rules test`` to a CLI's subcommands."""
    rules = subparsers.add_parser("rules", help="check and test rules files", description=__doc__)
    commands = rules.add_subparsers(dest="rules_command", metavar="{check,test}", required=True)
    formatter = argparse.RawDescriptionHelpFormatter

    check = commands.add_parser(
        "check", help="validate rules files", epilog=CHECK_EXAMPLES, formatter_class=formatter,
        description="Validate rules files and print a summary; exit 2 naming file:line of every problem.",
    )  # fmt: skip
    check.add_argument("paths", nargs="+", metavar="PATH", help="file, directory or builtin:NAME")
    check.add_argument("--json", action="store_true", help="print the summary as JSON")
    check.set_defaults(handler=run_check)

    test = commands.add_parser(
        "test", help="judge a message, or run a folder of cases", epilog=TEST_EXAMPLES, formatter_class=formatter,
        description="Print which rules match a message and the verdict, or run expected-verdict cases.",
    )  # fmt: skip
    test.add_argument("paths", nargs="+", metavar="PATH", help="file, directory or builtin:NAME")
    what = test.add_mutually_exclusive_group(required=True)
    what.add_argument("--message", metavar="FILE_OR_JSON", help="the JSON-RPC message, inline or in a file")
    what.add_argument("--cases", metavar="DIR", type=Path, help="a directory of case files to run")
    test.add_argument("--direction", choices=[d.value for d in Direction], default=Direction.CLIENT_TO_SERVER.value)
    test.add_argument("--request", metavar="FILE_OR_JSON", help="for a response: the request it answers")
    test.add_argument("--session", metavar="FILE_OR_JSON", help="session attributes: client_name, tags, ...")
    test.add_argument("--principal", help="the authenticated identity")
    test.add_argument("--upstream", default="default", help="the upstream server's name")
    test.add_argument("--json", action="store_true", help="print the result as JSON")
    test.set_defaults(handler=run_test)


def run_check(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``rules check``: validate and summarise."""
    out, err = out or sys.stdout, err or sys.stderr  # looked up per call: a test may have replaced them
    rules = _load(args.paths, err)
    if rules is None:
        return INVALID
    summary = rules.summary()
    if args.json:
        out.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")
        return OK
    actions = ", ".join(f"{name} {count}" for name, count in summary["by_action"].items()) or "none"
    out.write(f"ok: {summary['rules']} rules in {len(summary['files'])} files ({summary['disabled']} disabled)\n")
    out.write(f"  actions: {actions}\n")
    default = summary["default"] + (f" (from {summary['default_from']})" if summary["default_from"] else "")
    out.write(f"  default: {default}\n")
    return OK


def run_test(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``rules test``: judge one message, or run a cases directory."""
    out, err = out or sys.stdout, err or sys.stderr  # looked up per call: a test may have replaced them
    rules = _load(args.paths, err)
    if rules is None:
        return INVALID
    if args.cases is not None:
        return _run_cases(rules, args.cases, args.json, out, err)
    try:
        message = message_of(_json_arg(args.message, "--message"), "--message")
        request = message_of(_json_arg(args.request, "--request"), "--request") if args.request else None
        session = _json_arg(args.session, "--session") if args.session else None
        if session is not None and not isinstance(session, dict):
            raise UsageError("--session: must be a JSON object")
    except (UsageError, JsonRpcError) as exc:
        err.write(f"error: {exc}\n")
        return INVALID
    engine = Engine()
    subject = subject_for(
        message,
        Direction(args.direction),
        request=request,
        session=session,
        principal=args.principal,
        upstream=args.upstream,
        engine=engine,
    )
    outcome = engine.evaluate(rules, subject, trace=True)
    _report(outcome, message, args.json, out)
    return OK


def _run_cases(rules: RuleSet, directory: Path, as_json: bool, out: TextIO, err: TextIO) -> int:
    try:
        cases = load_cases(directory)
    except RulesError as exc:
        err.write(f"error: {exc}\n")
        return INVALID
    results = [run_case(rules, case) for case in cases]
    failed = [result for result in results if not result.passed]
    if as_json:
        report = [{"name": r.case.name, "where": r.case.where, "failures": r.failures} for r in results]
        out.write(orjson.dumps({"passed": len(results) - len(failed), "failed": len(failed), "cases": report}).decode())
        out.write("\n")
    else:
        for result in results:
            out.write(f"{'PASS' if result.passed else 'FAIL'} {result.case.name}\n")
            for failure in result.failures:
                out.write(f"     {result.case.where}: {failure}\n")
        out.write(f"{len(results) - len(failed)} passed, {len(failed)} failed\n")
    return FAILED if failed else OK


def _report(outcome: Outcome, message: Any, as_json: bool, out: TextIO) -> None:
    final = resulting(outcome, message)
    verdict = verdict_name(outcome)
    deciding = outcome.rule.id if outcome.rule is not None else ("(default)" if outcome.error else None)
    if as_json:
        report = {
            "verdict": verdict,
            "rule": deciding,
            "matched": [rule.id for rule in outcome.matched or ()],
            "error": outcome.error.to_error() if outcome.error is not None else None,
            "delay": outcome.delay,
            "hidden_tools": list(outcome.hidden_tools),
            "modified": outcome.message is not None,
            "message": final,
        }
        out.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    out.write("matched rules:\n" if outcome.matched else "matched rules: none\n")
    for rule in outcome.matched or ():
        out.write(f"  {rule.id:<30} {rule.effect.value:<8} {rule.file}:{rule.line}\n")
    detail = f" by {deciding}" if deciding else ""
    if outcome.error is not None:
        detail += f": {outcome.error.code} {outcome.error.message}"
    elif outcome.message is not None:
        detail += " (modified)"
    if verdict == "delay":
        detail += f" of {outcome.delay:g}s, then on to the next interceptor"
    elif outcome.delay:
        detail += f" after a delay of {outcome.delay:g}s"
    out.write(f"verdict: {verdict}{detail}\n")
    if outcome.hidden_tools:
        out.write(f"hidden tools: {', '.join(outcome.hidden_tools)}\n")
    out.write("message:\n" + orjson.dumps(final, option=orjson.OPT_INDENT_2).decode() + "\n")


def _load(paths: list[str], err: TextIO) -> RuleSet | None:
    try:
        return load(paths)
    except RulesError as exc:
        err.write(f"error: {exc}\n")
        return None


def _json_arg(value: str, option: str) -> Any:
    """Inline JSON when it looks like JSON, else a JSON or YAML file."""
    text = value.strip()
    if text.startswith(("{", "[")):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise UsageError(f"{option}: invalid JSON: {exc}") from None
    path = Path(value)
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{option}: cannot read {value}: {exc.strerror}") from None
    import yaml  # here: every shadowproxy command registers this one, few read a YAML message

    try:
        return yaml.safe_load(content)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise UsageError(f"{option}: {value}:{line}: invalid JSON/YAML: {exc.problem}") from None


def main(argv: list[str] | None = None) -> int:
    """Run ``rules ...`` on its own: ``python -m shadowproxy.rules.cli rules check policy.yaml``."""
    parser = argparse.ArgumentParser(prog="shadowproxy")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
