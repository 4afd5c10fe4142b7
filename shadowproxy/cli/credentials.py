"""``shadowproxy credentials keygen|set|delete``: the key per-principal upstream secrets are encrypted with,
and a principal's own secret for an upstream, set on a running proxy through its admin API.

Exit codes: 0 done, 1 the proxy said no, 2 usage or connection error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import aiohttp

from shadowproxy.cli.admin import PREFIX, TIMEOUT, TOKEN_ENV, connection

EXAMPLES = f"""examples:
  shadowproxy credentials keygen > /run/secrets/shadowproxy-credentials-key
  export {TOKEN_ENV}=...
  printf %s "$ALICE_GITHUB_TOKEN" | shadowproxy credentials set github alice
  shadowproxy credentials set github alice --from-env ALICE_GITHUB_TOKEN --url http://proxy:8765
  shadowproxy credentials delete github alice
"""
OK, REFUSED, USAGE = 0, 1, 2


def keygen_command(args: argparse.Namespace) -> int:
    # cryptography is imported by this command only: every other shadowproxy command registers this module.
    from cryptography.fernet import Fernet

    print(Fernet.generate_key().decode())
    return OK


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    formatter = argparse.RawDescriptionHelpFormatter
    parser = commands.add_parser(
        "credentials", help="per-principal upstream secrets", epilog=EXAMPLES, formatter_class=formatter
    )
    actions = parser.add_subparsers(dest="credentials_command", metavar="ACTION", required=True)
    keygen = actions.add_parser("keygen", help="print a new key for credentials.key_file or key_env")
    keygen.set_defaults(handler=keygen_command)
    for name, text in (("set", "set a principal's secret for an upstream"), ("delete", "delete it")):
        action = actions.add_parser(name, help=text, epilog=EXAMPLES, formatter_class=formatter)
        action.add_argument("upstream", metavar="UPSTREAM")
        action.add_argument("principal", metavar="PRINCIPAL", help="a static token's name or a JWT subject")
        connection(action)
        if name == "set":
            action.add_argument("--from-env", metavar="VAR", help="read the secret from VAR (default: stdin)")
        action.set_defaults(handler=cmd_change)


def cmd_change(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        print(f"shadowproxy credentials: no admin token: give --token or set {TOKEN_ENV}", file=sys.stderr)
        return USAGE
    body = None
    if args.credentials_command == "set":
        secret = os.environ.get(args.from_env, "") if args.from_env else sys.stdin.read()
        if not secret.strip():
            where = f"${args.from_env}" if args.from_env else "stdin"
            print(f"shadowproxy credentials: no secret on {where}", file=sys.stderr)
            return USAGE
        body = {"secret": secret.strip()}
    method = "PUT" if body is not None else "DELETE"
    path = f"{PREFIX}/credentials/{args.upstream}/{args.principal}"
    try:
        status, answer = asyncio.run(send(args.url.rstrip("/") + path, method, token, body))
    except (aiohttp.ClientError, TimeoutError) as exc:
        print(f"shadowproxy credentials: cannot reach the proxy at {args.url}: {exc}", file=sys.stderr)
        return USAGE
    if status == 204:
        return OK
    print(f"shadowproxy credentials: the proxy said {status}: {answer}", file=sys.stderr)
    return USAGE if status == 401 else REFUSED


async def send(url: str, method: str, token: str, body: dict[str, str] | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as client,
        client.request(method, url, headers=headers, json=body) as response,
    ):
        return response.status, (await response.text())[:500]
