"""What a held message waits for: the terms of a rule's ``approve`` action or of a breakpoint.

A :class:`HoldSpec` is the ``result`` of a ``hold`` verdict (:func:`shadowproxy.core.chain.hold`); the mount
gives the message to the hold registry (:mod:`shadowproxy.control`), which parks it until a person decides.
"""

from __future__ import annotations

from dataclasses import dataclass

APPROVAL, BREAKPOINT = "approval", "breakpoint"
OPERATOR, USER = "operator", "user"
BLOCK, APPROVE = "block", "approve"


@dataclass(frozen=True, slots=True)
class HoldSpec:
    """Why a message is held and what happens when no one decides in time.

    ``by`` is who is asked (``operator`` through the admin API and CLI, ``user`` through the client's
    elicitation); ``fallback`` is what ``by: user`` becomes when the client cannot be asked (``operator`` or
    ``block``); ``on_timeout`` is the decision taken after ``timeout`` seconds (``block`` or ``approve``).
    """

    kind: str = APPROVAL
    rule: str | None = None
    by: str = OPERATOR
    timeout: float = 300.0
    on_timeout: str = BLOCK
    fallback: str = OPERATOR
