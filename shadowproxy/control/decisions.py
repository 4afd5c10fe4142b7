"""What a decision is, as the hold book records it, and the verdict it gives the held message.

Three decisions serve approvals and breakpoints alike: ``approve`` lets the message go on (as it was, with
new tool ``arguments``, or replaced by an edited ``message``), ``deny`` drops it (a request gets JSON-RPC
-32010 naming the rule and who denied it), ``answer`` gives a request the proxy's ``result`` instead.
"""

from __future__ import annotations

import time
from typing import Any

from shadowproxy.core.chain import Verdict, block, forward, respond
from shadowproxy.core.errors import POLICY_BLOCKED
from shadowproxy.core.hold import APPROVAL, HoldSpec
from shadowproxy.core.jsonrpc import Message, classify

DECISIONS = ("approve", "deny", "answer")
STATES = {"approve": "approved", "deny": "denied", "answer": "answered"}


def ending_for(
    decision: str,
    decider: str,
    reason: str | None,
    *,
    by: str | None = None,
    arguments: Any = None,
    message: Any = None,
    result: Any = None,
) -> dict[str, Any]:
    """What settles a hold: the decision, who took it (``decider`` is a kind: operator, user, timeout, restart,
    shutdown, client), and what it changes."""
    ending: dict[str, Any] = {
        "state": STATES[decision],
        "decision": decision,
        "decider": decider,
        "decided_by": by or decider,
        "reason": reason,
        "decided_at": time.time(),
    }
    if arguments is not None:
        ending["edited"] = {"arguments": arguments}
    elif message is not None:
        ending["edited"] = {"message": message}
    if result is not None:
        ending["result"] = result
    return ending


def verdict_for(hold: dict[str, Any], message: Message, spec: HoldSpec) -> Verdict:
    """The chain's verdict for ``message`` once its hold is settled."""
    decision = hold.get("decision")
    if decision == "approve":
        return forward(_edited(hold.get("edited"), message))
    if decision == "answer" and message.is_request:
        return respond(hold.get("result"))
    who = hold.get("decided_by") or hold.get("decider")
    reason = hold.get("reason")
    if spec.kind == APPROVAL:
        text = f"denied by {who} (rule {spec.rule!r})" + (f": {reason}" if reason else "")
    else:
        text = f"dropped at a breakpoint by {who}" + (f": {reason}" if reason else "")
    data = {"rule": spec.rule, "hold": hold.get("id"), "by": who, "reason": reason}
    return block(POLICY_BLOCKED, text, data)


def _edited(edited: Any, message: Message) -> Message | None:
    if not isinstance(edited, dict):
        return None
    if "arguments" in edited and isinstance(message.params, dict):
        return message.evolve(params={**message.params, "arguments": edited["arguments"]})
    whole = edited.get("message")
    if isinstance(whole, dict):
        # The id stays the proxy's: an edit cannot make the message answer another request.
        data = {**whole, "jsonrpc": "2.0"}
        if message.id is not None:
            data["id"] = message.id
        return classify(data, None)
    return None
