"""``shadowproxy roles``: check the ``roles`` section, and explain what one principal may do and why.

Exit codes: 0 ok, 2 a problem in the configuration (each named with its file and line).
"""

from __future__ import annotations

import argparse
import json

from shadowproxy import config
from shadowproxy.config.roles import KINDS, flattened, lineage
from shadowproxy.core.errors import ConfigError
from shadowproxy.proxy.roles import Access

EXAMPLES = """examples (docs/examples/roles.yaml is README.md's example):
  shadowproxy roles check --config docs/examples/roles.yaml
  shadowproxy roles explain bob --config docs/examples/roles.yaml
  shadowproxy roles explain carol --claims '{"groups": ["developers"]}' --config docs/examples/roles.yaml
"""


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``roles check|explain`` to the ``shadowproxy`` command."""
    formatter = argparse.RawDescriptionHelpFormatter
    roles = commands.add_parser(
        "roles", help="check roles; explain what a principal may do", epilog=EXAMPLES, formatter_class=formatter
    )
    actions = roles.add_subparsers(dest="roles_command", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate the roles section and the roles tokens name; exit 2 on error")
    check.add_argument("--config", help=f"YAML file (default: ./{config.DEFAULT_CONFIG_FILE})")
    check.set_defaults(handler=cmd_check)
    explain = actions.add_parser("explain", help="print a principal's roles, why it has them, and what they allow")
    explain.add_argument("principal", metavar="PRINCIPAL", help="a static token's name or a JWT subject")
    explain.add_argument("--claims", help="the JWT's claims as JSON, to map its roles claim")
    explain.add_argument("--config", help=f"YAML file (default: ./{config.DEFAULT_CONFIG_FILE})")
    explain.set_defaults(handler=cmd_explain)


def loaded(path: str | None) -> tuple[config.Config, Access]:
    cfg = config.load(path)
    if cfg.roles is None:
        raise ConfigError("no roles section: every principal may use everything", key="roles", source=cfg.source)
    return cfg, Access(cfg)


def cmd_check(args: argparse.Namespace) -> int:
    cfg, access = loaded(args.config)
    defined = len(cfg.roles.define) if cfg.roles is not None else 0
    tokens = [token for token in cfg.auth.tokens if token.roles] if cfg.auth else []
    admin = [token for token in cfg.admin.tokens if token.roles] if cfg.admin else []
    print(
        f"{cfg.source or 'the configuration'}: {len(access.definitions)} roles ({defined} defined there), "
        f"{len(tokens)} client and {len(admin)} admin tokens with roles, "
        f"default role: {', '.join(access.default) or 'none'}; ok"
    )
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    cfg, access = loaded(args.config)
    principal = args.principal
    if args.claims is not None:
        try:
            claims = json.loads(args.claims)
        except ValueError as exc:
            raise ConfigError(f"is not JSON: {exc}", key="--claims") from None
        if not isinstance(claims, dict):
            raise ConfigError("must be a JSON object", key="--claims")
        access.note(principal, claims)
    roles = access.roles_of(principal)
    if principal in access.static:
        why = f"the static token {principal!r} names them"
    elif access.noted.get(principal):
        why = f"the JWT claim {access.claim!r} maps to them"
    else:
        why = "the default role" if roles else "no role: no token names any, and there is no default"
    print(f"{principal}: roles {', '.join(roles) or 'none'} ({why})")
    for role in roles:
        inherited = lineage(role, access.definitions)[1:]
        print(f"  role {role}: extends {', '.join(inherited) or 'nothing'}")
    permissions = access.permissions(principal)
    for upstream in cfg.upstreams:
        allowed = permissions.mount(upstream.name)
        print(f"  mount {upstream.name}: {'allowed' if allowed else f'refused (missing mount:{upstream.name})'}")
    for kind in KINDS:
        grants = describe(access, roles, kind)
        print(f"  {kind}: {grants or 'none'}")
    admin = sorted(permissions.admin)
    print(f"  admin operations: {', '.join(admin) or 'none'}")
    return 0


def describe(access: Access, roles: tuple[str, ...], kind: str) -> str:
    grants: dict[str, list[str]] = {}
    for role in roles:
        for each in flattened(role, access.definitions):
            for upstream, globs in getattr(each, kind).items():
                grants.setdefault(upstream, []).extend(glob for glob in globs if glob not in grants.get(upstream, []))
    parts = [f"{upstream}: {' '.join(globs)}" for upstream, globs in grants.items() if globs]
    return "; ".join(parts)
