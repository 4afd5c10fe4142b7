"""A chain that declines a message skips it: the rules say so only of messages they would forward unchanged."""

from __future__ import annotations

from pathlib import Path

from shadowproxy.core.chain import Chain, MessageContext, Verdict, forward
from shadowproxy.core.jsonrpc import Message

from .helpers import C2S, S2C, call, ctx, error_reply, interceptor, notification, reply, request, text_result

POLICY = """
rules:
  - id: no-danger
    match: {direction: client_to_server, tool: "danger_*"}
    action: block
  - id: mask-secrets
    match: {direction: server_to_client, tool: secrets}
    action: redact
  - id: no-root-shell
    match: {tool: shell, params: {"arguments.user": root}}
    action: block
  - id: slow-lists
    match: {method: resources/list}
    action: {delay: 0.001}
"""

ECHO = call("echo", {"text": "mail jane@example.com"})
SECRETS = call("secrets", {})
CASES: list[tuple[str, Message, object, Message | None, bool]] = [
    ("a call to a tool no rule names", ECHO, C2S, None, False),
    ("its reply", reply(text_result("mail jane@example.com")), S2C, call("echo", {"text": "hi"}), False),
    ("a notification", notification("notifications/progress", {"progressToken": 1, "progress": 1}), C2S, None, False),
    ("a blocked tool", call("danger_rm"), C2S, None, True),
    ("a reply to redact", reply(text_result("key sk-live-0123456789abcdef0123")), S2C, SECRETS, True),
    ("a call whose arguments decide", call("shell", {"user": "alice"}), C2S, None, True),
    ("a method with a delay", request("resources/list"), C2S, None, True),
    ("a tools/list result to filter", reply({"tools": []}), S2C, request("tools/list"), True),
]


async def test_the_rules_decline_only_what_they_would_forward_unchanged(tmp_path: Path) -> None:
    rules = interceptor(tmp_path, POLICY)
    for what, message, direction, related, wanted in CASES:
        # Not indexed yet: judged in full, which indexes it (a reply's key, once its request was looked at).
        if related is None or wanted:
            assert rules.wants(message, direction, related), what  # type: ignore[arg-type]
        verdict = await rules.on_message(ctx(message, direction, request_message=related))  # type: ignore[arg-type]
        assert rules.wants(message, direction, related) is wanted, what  # type: ignore[arg-type]
        if not wanted:
            assert verdict.is_forward and verdict.message is None and not verdict.seconds, what


async def test_a_default_block_file_wants_everything(tmp_path: Path) -> None:
    rules = interceptor(tmp_path, "default: block\nrules: []\n")
    for _ in range(2):
        verdict = await rules.on_message(ctx(ECHO))
        assert not verdict.is_forward
        assert rules.wants(ECHO, C2S, None)


class Looker:
    """An interceptor without ``wants``: every message is its own."""

    name = "looker"

    def __init__(self) -> None:
        self.seen = 0

    async def on_message(self, ctx: MessageContext) -> Verdict:
        self.seen += 1
        return forward()


async def test_a_chain_declines_only_when_every_interceptor_does(tmp_path: Path) -> None:
    rules = interceptor(tmp_path, POLICY)
    await rules.on_message(ctx(ECHO))
    assert Chain([rules]).declines(ECHO, C2S)
    assert not Chain([rules]).declines(call("danger_rm"), C2S)
    assert not Chain([rules, Looker()]).declines(ECHO, C2S)
    assert Chain([]).declines(ECHO, C2S), "no interceptor has anything to say"


async def test_a_reload_is_seen_by_the_next_message(tmp_path: Path) -> None:
    rules = interceptor(tmp_path, POLICY)
    await rules.on_message(ctx(ECHO))
    assert not rules.wants(ECHO, C2S, None)
    (tmp_path / "rules.yaml").write_text(POLICY + "  - id: no-echo\n    match: {tool: echo}\n    action: block\n")
    assert await rules.reload()
    assert rules.wants(ECHO, C2S, None)
    assert not (await rules.on_message(ctx(ECHO))).is_forward


async def test_a_declined_call_stays_declined_until_a_reload_names_its_tool(tmp_path: Path) -> None:
    rules = interceptor(tmp_path, POLICY)
    await rules.on_message(ctx(ECHO))
    echo_reply = reply(text_result("hi"))
    await rules.on_message(ctx(echo_reply, S2C, request_message=ECHO))
    for _ in range(2):  # the second answer comes from the interceptor's cache of declined keys
        assert not rules.wants(ECHO, C2S, None)
        assert not rules.wants(echo_reply, S2C, ECHO)
        assert rules.wants(call("danger_rm"), C2S, None), "a tool a rule names is never declined"
    (tmp_path / "rules.yaml").write_text(POLICY + "  - id: no-echo\n    match: {tool: echo}\n    action: block\n")
    assert await rules.reload() is True
    assert rules.wants(ECHO, C2S, None), "the new rules are asked again"
    verdict = await rules.on_message(ctx(ECHO))
    assert not verdict.is_forward
    assert rules.wants(ECHO, C2S, None)


async def test_a_call_no_rule_could_answer_for_marks_itself_and_its_reply_is_declined_at_once(tmp_path: Path) -> None:
    rules = interceptor(
        tmp_path, POLICY + "  - id: log-echo-errors\n    match: {kind: error, tool: hello}\n    action: log\n"
    )
    for tool in ("echo", "secrets", "hello"):
        await rules.on_message(ctx(call(tool, {})))
    echo = call("echo", {"text": "again"})
    assert not rules.wants(echo, C2S, None) and echo.memo is rules.rules
    # Its reply's key was never judged, yet it is declined at once: no rule could touch a result or an error of echo.
    assert not rules.wants(reply(text_result("hi")), S2C, echo)
    for tool, answer in (
        ("secrets", reply(text_result("sk-live-0123456789abcdef0123"))),
        ("hello", error_reply(1, "x")),
    ):
        again = call(tool, {})  # a rule on its results, or on its errors
        assert not rules.wants(again, C2S, None) and again.memo is None, tool
        assert rules.wants(answer, S2C, again), tool
    (tmp_path / "rules.yaml").write_text(
        POLICY + "  - id: mask-echo\n    match: {direction: server_to_client, tool: echo}\n    action: redact\n"
    )
    assert await rules.reload()
    secret = reply(text_result("key sk-live-0123456789abcdef0123"))
    await rules.on_message(ctx(secret, S2C, request_message=echo))
    assert rules.wants(secret, S2C, echo), "the mark of the rule set before the reload counts for nothing"
