"""``shadowproxy tape list|show|replay|serve|diff`` and ``rules test --tape``: work with recorded sessions.

Exit codes: 0 done (replay: every answer equal; diff: the tapes agree; rules test: nothing newly blocked),
1 a difference (replay, diff) or a message the policy would newly block, 2 bad usage, an unreadable tape or
a server that cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from shadowproxy.core.errors import ShadowProxyError, UpstreamError
from shadowproxy.tapes import format as tape_format
from shadowproxy.tapes.compare import Pattern, parse_ignore

DEMO_TAPE = "shadowproxy/demo/tapes/demo-session.jsonl"
EXAMPLES = f"""examples:
  shadowproxy run --demo --rules shadowproxy/demo/policy.yaml --record tapes/
  shadowproxy tape list shadowproxy/demo/tapes/
  shadowproxy tape show {DEMO_TAPE}
  shadowproxy tape replay {DEMO_TAPE} --upstream "python -m shadowproxy.demo"
  shadowproxy tape replay {DEMO_TAPE} --upstream "python -m shadowproxy.demo" --ignore 'result.content[*].text'
  shadowproxy tape serve {DEMO_TAPE}                # a mock server on stdio
  shadowproxy tape serve {DEMO_TAPE} --port 9000    # on Streamable HTTP
  shadowproxy tape diff {DEMO_TAPE} {DEMO_TAPE} --json
  shadowproxy rules test shadowproxy/demo/policy.yaml --tape shadowproxy/demo/tapes/

files named shadowproxy/demo/... are examples in a clone of the repository
exit codes: 0 equal / done; 1 a difference (replay, diff), or rules test --tape would block what passed;
2 usage, an unreadable tape, or a server that cannot be reached.
"""
OK, DIFFERENT, FAILED = 0, 1, 2


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``tape`` and, to ``rules test``, ``--tape``."""
    formatter = argparse.RawDescriptionHelpFormatter
    tape = commands.add_parser("tape", help="list, show, replay, serve and diff recorded sessions",
                               epilog=EXAMPLES, formatter_class=formatter, description=__doc__)  # fmt: skip
    actions = tape.add_subparsers(dest="tape_command", metavar="{list,show,replay,serve,diff}", required=True)

    listing = actions.add_parser("list", help="the tapes in a folder", epilog=EXAMPLES, formatter_class=formatter)
    listing.add_argument("dir", metavar="DIR", help="the tapes folder (tapes.dir, or --record DIR)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=cmd_list)

    show = actions.add_parser("show", help="a tape as a conversation", epilog=EXAMPLES, formatter_class=formatter)
    show.add_argument("tape", metavar="TAPE", help="a tape file")
    show.add_argument("--json", action="store_true", help="print the header and messages as JSON")
    show.set_defaults(handler=cmd_show)

    replay = actions.add_parser("replay", help="play a tape against a server and compare its answers",
                                epilog=EXAMPLES, formatter_class=formatter)  # fmt: skip
    replay.add_argument("tape", metavar="TAPE", help="a tape file")
    replay.add_argument("--upstream", required=True, help='the server: a command line ("python server.py") or URL')
    _ignore(replay)
    replay.add_argument("--speed", type=float, default=0.0,
                        help="1: the recorded timing, 2: twice as fast; 0 (default): as fast as possible")  # fmt: skip
    replay.add_argument("--timeout", type=float, default=60.0, help="seconds one answer may take (default 60)")
    replay.add_argument("--json", action="store_true", help="print the differences as JSON")
    replay.set_defaults(handler=cmd_replay)

    serve = actions.add_parser("serve", help="answer a client from a tape (a mock server)", epilog=EXAMPLES,
                               formatter_class=formatter)  # fmt: skip
    serve.add_argument("tape", metavar="TAPE", help="a tape file")
    serve.add_argument("--port", type=int, help="serve Streamable HTTP on this port (0: a free one); else stdio")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--path", default="/mcp", help="the MCP endpoint path (default /mcp)")
    serve.add_argument(
        "--match",
        choices=["params", "method"],
        default="params",
        help="answer a request recorded with the same method and params (default), or method only",
    )
    serve.set_defaults(handler=cmd_serve)

    diff = actions.add_parser("diff", help="where two tapes part", epilog=EXAMPLES, formatter_class=formatter)
    diff.add_argument("a", metavar="A", help="a tape file")
    diff.add_argument("b", metavar="B", help="another tape file")
    _ignore(diff)
    diff.add_argument("--json", action="store_true", help="print JSON")
    diff.set_defaults(handler=cmd_diff)

    test = _subcommand(_subcommand(commands.choices["rules"]).choices["test"])
    test.add_argument("--tape", metavar="TAPE_OR_DIR",
                      help="judge recorded traffic: a tape or a folder (with --cases: exit 1 when the policy would "
                           "block a recorded call that a forward case expects to pass)")  # fmt: skip
    for group in test._mutually_exclusive_groups:
        group.required = False  # --message or --cases, as before, or --tape (with --cases or without)
    judged_alone = test.get_default("handler")

    def handler(args: argparse.Namespace) -> int:
        if args.tape is not None:
            return cmd_rules_tape(args)
        if args.message is None and args.cases is None:
            test.error("one of the arguments --message --cases --tape is required")
        return int(judged_alone(args))

    test.set_defaults(handler=handler)


def cmd_rules_tape(args: argparse.Namespace) -> int:
    from shadowproxy.rules.cases import load_cases, run_case
    from shadowproxy.rules.ruleset import load
    from shadowproxy.rules.source import RulesError
    from shadowproxy.tapes.dryrun import dry_run, expectations

    if args.message is not None:
        print("error: --tape judges recorded messages: give --message or --tape, not both", file=sys.stderr)
        return FAILED
    try:
        rules = load(args.paths)
        cases = load_cases(args.cases) if args.cases is not None else None
    except RulesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return FAILED
    tapes = [tape_format.read(path) for path in tape_format.tapes_in(args.tape)]
    result = dry_run(rules, tapes, expected=expectations(cases) if cases is not None else None)
    failed = [run for run in (run_case(rules, case) for case in cases or ()) if not run.passed]
    if args.json:
        failures = [{"name": run.case.name, "where": run.case.where, "failures": run.failures} for run in failed]
        print(json.dumps({**result.to_json(), **({"failed_cases": failures} if cases is not None else {})}, indent=2))
    else:
        sys.stdout.write(result.text())
        for run in failed:
            print(f"FAIL case {run.case.name} ({run.case.where}): {'; '.join(run.failures)}")
        if cases is not None:
            print(f"{len(cases) - len(failed)} of {len(cases)} case(s) pass")
    if cases is not None:
        return DIFFERENT if result.contradicted or failed else OK
    return DIFFERENT if result.newly_blocked else OK


def _subcommand(parser: argparse.ArgumentParser) -> Any:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return parser


def _ignore(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ignore", action="append", default=[], metavar="PATH",
                        help="a member not to compare, like 'result.content[*].text' (repeatable)")  # fmt: skip


def _patterns(args: argparse.Namespace) -> tuple[Pattern, ...]:
    try:
        return tuple(parse_ignore(text) for text in args.ignore)
    except ValueError as exc:
        raise ShadowProxyError(f"--ignore: {exc}") from None


def cmd_list(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    if not folder.is_dir():
        print(f"shadowproxy: {folder}: no such folder", file=sys.stderr)
        return FAILED
    rows = [tape_format.describe(path) for path in tape_format.tapes_in(folder)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return OK
    for row in rows:
        client = row["client"] or {}
        print(f"{row['name']}  {row['size']:>9} B  {row['messages']:>5} msgs  {row['upstream']}/{row['transport']}"
              f"  {client.get('name', '?')} {client.get('version', '')}  {row['started']}")  # fmt: skip
    print(f"{len(rows)} tape(s) in {folder}")
    return OK


def cmd_show(args: argparse.Namespace) -> int:
    from shadowproxy.tapes.conversation import render

    tape = tape_format.read(args.tape)
    if args.json:
        entries = [{"line": e.line, "t": e.t, "dir": e.direction, "verdict": e.verdict, "by": e.by,
                    "from_proxy": e.from_proxy, "msg": e.data} for e in tape.entries]  # fmt: skip
        print(json.dumps({"header": tape.header, "messages": entries}, indent=2))
    else:
        sys.stdout.write(render(tape))
    return OK


def cmd_replay(args: argparse.Namespace) -> int:
    from shadowproxy.tapes.replay import replay

    tape = tape_format.read(args.tape)
    ignore = _patterns(args)
    try:
        report = asyncio.run(replay(tape, args.upstream, ignore=ignore, speed=args.speed, within=args.timeout))
    except UpstreamError as exc:
        print(f"shadowproxy: {args.upstream}: {exc.message}", file=sys.stderr)
        return FAILED
    except TimeoutError:
        print(f"shadowproxy: {args.upstream}: no answer within {args.timeout:g}s", file=sys.stderr)
        return FAILED
    if args.json:
        mismatches = [{"line": m.line, "what": m.what,
                       "differences": [{"path": d.path, "recorded": d.recorded, "now": d.now} for d in m.differences]}
                      for m in report.mismatches]  # fmt: skip
        summary = {"compared": report.compared, "equal": report.equal, "not_compared": report.changed_by_chain}
        print(json.dumps({**summary, "mismatches": mismatches}, indent=2))
    else:
        sys.stdout.write(report.text())
    return OK if report.equal else DIFFERENT


def cmd_serve(args: argparse.Namespace) -> int:
    from shadowproxy.tapes.mock import Mock
    from shadowproxy.tapes.mock_serve import serve_http, serve_stdio

    mock = Mock(tape_format.read(args.tape), args.match)
    if args.port is None:
        asyncio.run(serve_stdio(mock))
        return OK

    async def ready(url: str) -> None:
        print(f"serving tape {Path(args.tape).name} at {url}", file=sys.stderr, flush=True)

    try:
        asyncio.run(serve_http(mock, args.host, args.port, args.path, ready))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"shadowproxy: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return FAILED
    return OK


def cmd_diff(args: argparse.Namespace) -> int:
    from shadowproxy.tapes.diff import diff

    parts = diff(tape_format.read(args.a), tape_format.read(args.b), _patterns(args))
    if args.json:
        print(json.dumps({"equal": not parts, "parts": [part.to_json() for part in parts]}, indent=2))
    else:
        for part in parts:
            print(part.text())
        print("the tapes agree" if not parts else f"{len(parts)} place(s) where the tapes part")
    return DIFFERENT if parts else OK
