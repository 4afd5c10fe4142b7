"""The chain: order, first non-forward verdict wins, modifications carry on, failures close."""

from __future__ import annotations

from shadowproxy.core.chain import Action, Chain, Direction, MessageContext, Verdict, block, delay, forward, respond
from shadowproxy.core.jsonrpc import Message, decode


def request() -> Message:
    message = decode(b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}')
    assert isinstance(message, Message)
    return message


class Hook:
    def __init__(self, name: str, verdict: Verdict | None = None, error: Exception | None = None) -> None:
        self.name = name
        self.verdict = verdict
        self.error = error
        self.seen: list[Message] = []

    async def on_message(self, ctx: MessageContext) -> Verdict:
        self.seen.append(ctx.message)
        if self.error is not None:
            raise self.error
        return self.verdict if self.verdict is not None else forward()


async def test_empty_chain_forwards_unmodified() -> None:
    verdict = await Chain().run(MessageContext(request(), Direction.CLIENT_TO_SERVER))
    assert verdict.is_forward and verdict.message is None


async def test_modification_carries_to_the_next_hook_and_out() -> None:
    original = request()
    changed = original.evolve(params={"name": "u"})
    first, second = Hook("first", forward(changed)), Hook("second")
    ctx = MessageContext(original, Direction.CLIENT_TO_SERVER)
    verdict = await Chain([first, second]).run(ctx)
    assert second.seen == [changed]
    assert verdict.is_forward and verdict.message is changed


async def test_first_stop_wins_and_names_its_hook() -> None:
    stopper, after = Hook("stopper", block(-32010, "no")), Hook("after")
    verdict = await Chain([stopper, after]).run(MessageContext(request(), Direction.CLIENT_TO_SERVER))
    assert verdict.action is Action.BLOCK and verdict.by == "stopper" and verdict.error.code == -32010  # type: ignore[union-attr]
    assert after.seen == []


async def test_delay_then_continue() -> None:
    later = Hook("later", respond({"ok": True}))
    verdict = await Chain([Hook("wait", delay(0.01)), later]).run(MessageContext(request(), Direction.CLIENT_TO_SERVER))
    assert verdict.action is Action.RESPOND and verdict.result == {"ok": True} and len(later.seen) == 1


async def test_a_raising_or_silent_hook_fails_closed_and_is_counted() -> None:
    chain = Chain([Hook("broken", error=RuntimeError("x"))])
    verdict = await chain.run(MessageContext(request(), Direction.CLIENT_TO_SERVER))
    assert verdict.action is Action.BLOCK and verdict.error.code == -32603  # type: ignore[union-attr]
    assert chain.failures.by_name == {"broken": 1}

    class Silent:
        name = "silent"

        async def on_message(self, ctx: MessageContext) -> Verdict:
            return None  # type: ignore[return-value]

    silent = Chain([Silent()])
    assert (await silent.run(MessageContext(request(), Direction.CLIENT_TO_SERVER))).action is Action.BLOCK


async def test_respond_on_a_reply_replaces_its_result() -> None:
    reply = decode(b'{"jsonrpc":"2.0","id":1,"result":{"a":1}}')
    assert isinstance(reply, Message)
    ctx = MessageContext(reply, Direction.SERVER_TO_CLIENT, request=request())
    verdict = await Chain([Hook("mock", respond({"b": 2}))]).run(ctx)
    assert verdict.is_forward and verdict.message.result == {"b": 2}  # type: ignore[union-attr]
    assert ctx.method == "tools/call"


class Lister(Hook):
    """A selective hook that names the only method it may want: ``wants`` says yes to all it is asked."""

    methods = frozenset({"tools/list"})

    def __init__(self) -> None:
        super().__init__("lister")
        self.asked: list[Message] = []

    def wants(self, message: Message, direction: Direction, request: Message | None) -> bool:
        self.asked.append(message)
        return True


def test_a_hook_with_methods_is_asked_only_of_those() -> None:
    lister = Lister()
    chain = Chain([lister])
    s2c = Direction.SERVER_TO_CLIENT
    listing = decode(b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}')
    answer = decode(b'{"jsonrpc":"2.0","id":2,"result":{"tools":[]}}')
    called = decode(b'{"jsonrpc":"2.0","id":1,"result":{}}')
    assert isinstance(listing, Message) and isinstance(answer, Message) and isinstance(called, Message)
    assert chain.declines(request(), Direction.CLIENT_TO_SERVER)
    assert chain.declines(called, s2c, request())
    assert lister.asked == [], "a tools/call and its reply are not its methods"
    assert not chain.declines(answer, s2c, listing)
    assert not chain.declines(listing, Direction.CLIENT_TO_SERVER)
    assert lister.asked == [answer, listing]
