"""The ``shadowproxy`` command.

Exit codes: 0 success, 1 a failure the command reports (not found, check
failed), 2 bad usage or bad config, 130 forced exit on a second signal.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Callable, Sequence

from shadowproxy import __version__, config
from shadowproxy.core import logs
from shadowproxy.core.errors import ShadowProxyError

log = logging.getLogger("shadowproxy")

FROM_A_CLONE = "files named shadowproxy/demo/... are examples in a clone of the repository"
EXAMPLES_RUN = f"""examples:
  shadowproxy run --demo
  shadowproxy run --upstream "python -m shadowproxy.demo"
  shadowproxy run --upstream http://127.0.0.1:8765/mcp --port 9000 --rules builtin:read-only
  shadowproxy run --config shadowproxy/demo/shadowproxy.yaml

{FROM_A_CLONE}
"""
EXAMPLES_STDIO = """examples (as an MCP client's server command):
  shadowproxy stdio -- python -m shadowproxy.demo
  shadowproxy stdio --rules builtin:read-only -- python -m shadowproxy.demo
  shadowproxy stdio --upstream http://127.0.0.1:8765/mcp
  shadowproxy stdio --config shadowproxy/demo/gateway.yaml --server all
"""
EXAMPLES_CONFIG = f"""examples:
  shadowproxy config check --config shadowproxy/demo/shadowproxy.yaml
  shadowproxy config show --config shadowproxy/demo/shadowproxy.yaml --json

{FROM_A_CLONE}
"""


def common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help=f"YAML or mcpServers JSON file (default: ./{config.DEFAULT_CONFIG_FILE})")
    parser.add_argument("--store", help="session store URL: memory://, sqlite:///path.db, redis://host:6379/0")
    parser.add_argument("--rules", action="append", help="rules file, directory or builtin:NAME (repeatable)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", choices=["text", "json"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shadowproxy", description="A transparent proxy for MCP.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        help="serve Streamable HTTP in front of one or more MCP servers",
        epilog=EXAMPLES_RUN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common_options(run)
    run.add_argument("--upstream", help='stdio command line ("python server.py") or http(s) URL')
    run.add_argument("--demo", action="store_true", help="front the bundled demo server (tools echo, add, time)")
    run.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    run.add_argument("--port", type=int, help="port to listen on (default 8765; 0 picks a free one)")
    run.add_argument("--path", help="MCP endpoint path (default /mcp)")
    run.add_argument("--allowed-origin", action="append", dest="allowed_origins", help="extra allowed Origin")
    run.add_argument("--allowed-host", action="append", dest="allowed_hosts", help="extra allowed Host ('*': any)")
    run.add_argument("--shutdown-timeout", type=float, help="seconds in-flight requests get on shutdown")
    run.add_argument("--request-timeout", type=float, help="seconds before an unanswered request fails")
    run.add_argument("--session-ttl", type=float, help="seconds of idleness before a session expires")
    run.add_argument("--keepalive-interval", type=float, help="seconds between SSE keep-alive comments")
    run.add_argument(
        "--no-fast-path",
        dest="fast_path",
        action="store_false",
        default=None,
        help="serve every request with aiohttp's own handler (fast_path: false)",
    )
    run.add_argument("--record", metavar="DIR", help="record every session to a tape in DIR (tapes: {dir: DIR})")
    run.set_defaults(handler=cmd_run)

    stdio = commands.add_parser(
        "stdio",
        help="be the stdio server an MCP client launches, and forward to CMD or --upstream URL",
        epilog=EXAMPLES_STDIO,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common_options(stdio)
    stdio.add_argument("--upstream", help="an http(s) URL to bridge to, instead of a command")
    stdio.add_argument("--server", help="serve this upstream or virtual server of --config, instead of a command")
    stdio.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...: the server to spawn")
    stdio.add_argument("--record", metavar="DIR", help="record the session to a tape in DIR")
    stdio.set_defaults(handler=cmd_stdio)

    config_parser = commands.add_parser(
        "config",
        help="check or show the effective configuration",
        epilog=EXAMPLES_CONFIG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config_commands = config_parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    for name, text in (
        ("check", "validate everything, rules and auth included; exit 2 on error"),
        ("show", "print the effective configuration, secrets masked"),
    ):
        action = config_commands.add_parser(name, help=text)
        common_options(action)
        action.add_argument("--upstream", help="stdio command line or http(s) URL")
        action.add_argument("--json", action="store_true", help="print JSON")
        action.set_defaults(handler=cmd_config)

    version = commands.add_parser("version", help="print the version")
    version.set_defaults(handler=lambda args: print(__version__) or 0)
    for register in extra_commands():
        register(commands)
    return parser


def extra_commands() -> list[Callable[[argparse._SubParsersAction], None]]:  # type: ignore[type-arg]
    from shadowproxy.cli.admin import register as administering
    from shadowproxy.cli.approvals import register as approving
    from shadowproxy.cli.credentials import register as credentials
    from shadowproxy.cli.intercept import register as intercepting
    from shadowproxy.cli.pins import register as pinning
    from shadowproxy.cli.roles import register as roles_command
    from shadowproxy.cli.sessions import register as sessions
    from shadowproxy.cli.tap import register as tapping
    from shadowproxy.cli.tape import register as taping
    from shadowproxy.cli.tools import register as tooling
    from shadowproxy.cli.wrap import register as wrapping
    from shadowproxy.rules.cli import register as rules

    return [
        rules,
        sessions,
        wrapping,
        tapping,
        administering,
        roles_command,
        credentials,
        approving,
        intercepting,
        taping,
        tooling,
        pinning,
    ]  # administering and taping add to rules: after it


def load_config(
    args: argparse.Namespace, problems: list[config.ConfigError] | None = None, **extra: object
) -> config.Config:
    overrides = {
        key: getattr(args, key, None)
        for key in (
            "store",
            "rules",
            "host",
            "port",
            "path",
            "allowed_origins",
            "allowed_hosts",
            "shutdown_timeout",
            "request_timeout",
            "session_ttl",
            "keepalive_interval",
            "fast_path",
            "log_level",
            "log_format",
        )
    }
    overrides.update(extra)
    return config.load(args.config, problems=problems, **overrides)


def cmd_run(args: argparse.Namespace) -> int:
    from shadowproxy.serve.runner import run_loop, serve

    upstream = args.upstream
    if args.demo:
        upstream = shlex.join([sys.executable, "-m", "shadowproxy.demo"])
    cfg = recording(load_config(args, upstream=upstream), args.record)
    logs.setup(cfg.log_level, cfg.log_format)
    return run_loop(lambda: serve(cfg))


def cmd_config(args: argparse.Namespace) -> int:
    """Build the proxy and its application without starting them: the config is validated as it is loaded, each
    interceptor's options and rules as it is built.

    ``check`` reports every problem at once, each with its file and line, as ``rules check`` does; ``show`` prints
    the model, secrets masked (:func:`shadowproxy.config.shown`).
    """
    import json

    from shadowproxy.proxy.proxy import Proxy
    from shadowproxy.serve.app import make_app

    problems: list[config.ConfigError] = []
    cfg = load_config(args, problems, upstream=args.upstream)
    problems += section_problems(cfg, problems)
    proxy: Proxy | None = None
    if not problems:
        try:
            proxy = Proxy(cfg)
            make_app(proxy)
        except config.ConfigError as exc:
            problems.append(config.pinpoint(exc, cfg))
            proxy = None
    if proxy is None:
        problems.sort(key=lambda problem: file_order(problem, cfg.source))
        if args.json:
            print(json.dumps({"ok": False, "source": cfg.source, "problems": [str(p) for p in problems]}, indent=2))
        raise config.ConfigErrors(problems) if len(problems) > 1 else problems[0]
    chain = [interceptor.name for interceptor in proxy.chain.interceptors]
    if args.config_command == "show":
        shown = {**config.shown(cfg), "chain": chain}
        if args.json:
            print(json.dumps(shown, indent=2, default=str))
        else:
            for key, value in shown.items():
                print(f"{key}: {json.dumps(value, default=str)}")
        return 0
    where = cfg.source or "defaults and environment"
    if args.json:
        print(json.dumps({"ok": True, "source": where, "upstreams": [u.name for u in cfg.upstreams], "chain": chain}))
    else:
        names = f": {', '.join(chain)}" if chain else ""
        print(f"ok: {where}: {len(cfg.upstreams)} upstream(s), {len(chain)} interceptor(s) in the chain{names}")
    return 0


def file_order(problem: config.ConfigError, source: str | None) -> tuple[int, int]:
    """The config file's problems first, by line; then the others (rules files, variables) as found."""
    file, _, line = (problem.source or "").rpartition(":")
    return (0, int(line)) if source is not None and file == source and line.isdigit() else (1, 0)


def section_problems(cfg: config.Config, found_already: list[config.ConfigError]) -> list[config.ConfigError]:
    """What loading each interceptor finds wrong (its options, by its own model; its rules files), each on its own;
    no upstream at all, unless the file's upstreams were left out for what is wrong with them."""
    from shadowproxy.proxy.plugins import chain_configs, load_interceptor
    from shadowproxy.rules.source import RulesError

    found: list[config.ConfigError] = []
    if not cfg.upstreams and not any((p.key or "").startswith("upstreams") for p in found_already):
        found.append(
            config.ConfigError("no upstream: give --upstream or a config file with upstreams", key="upstreams")
        )
    for key, item in chain_configs(cfg.interceptors, cfg.rules):
        try:
            load_interceptor(item, key)
        except RulesError as exc:
            for problem in exc.problems:
                if problem.line is None:
                    # A path that names nothing: the config's line that names the path is the one to fix.
                    found.append(config.pinpoint(config.ConfigError(str(problem), key=key), cfg))
                else:
                    rule = f"rule {problem.rule!r}: " if problem.rule else ""
                    found.append(config.ConfigError(rule + problem.message, source=f"{problem.file}:{problem.line}"))
        except config.ConfigErrors as exc:
            found += [config.pinpoint(error, cfg) for error in exc.errors]
        except config.ConfigError as exc:
            found.append(config.pinpoint(exc, cfg))
    return found


def recording(cfg: config.Config, directory: str | None) -> config.Config:
    """``--record DIR``: every session on tape in DIR, the file's other ``tapes`` settings kept."""
    from shadowproxy.config.tapes import TapesConfig

    if directory is None:
        return cfg
    if cfg.tapes is None:
        return cfg.model_copy(update={"tapes": TapesConfig(dir=directory)})
    tapes = cfg.tapes.model_copy(update={"dir": directory, "record": "all"})
    return cfg.model_copy(update={"tapes": tapes})


def cmd_stdio(args: argparse.Namespace) -> int:
    from shadowproxy.serve.runner import run_loop, serve_stdio

    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if bool(command) + bool(args.upstream) + bool(args.server) != 1:
        raise config.ConfigError("give one of -- CMD ARGS..., --upstream URL or --server NAME", key="upstream")
    upstream = args.upstream or (shlex.join(command) if command else None)
    cfg = config.for_stdio(load_config(args, upstream=upstream) if upstream else load_config(args))
    cfg = recording(cfg, args.record)
    logs.setup(cfg.log_level, cfg.log_format)
    return run_loop(lambda: serve_stdio(cfg, args.server))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ShadowProxyError as exc:
        print(f"shadowproxy: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
