"""Reversible tokens for one session: ``jane@example.com`` becomes ``[EMAIL_1]`` on the way to the client, and
``[EMAIL_1]`` becomes the address again on the way to the server.

A :class:`TokenVault` belongs to one session (``SessionRecord.tokens``) and dies with it. It never shows its values:
its ``repr`` counts them, and the only form that leaves memory is :meth:`TokenVault.sealed`, the map encrypted with
Fernet (``cryptography``), which the session store keeps. The key is ``SHADOWPROXY_TOKEN_KEY`` (a Fernet key, the
same on every instance of a cluster so that one can carry on another's session), or a random one per process, with
which a restarted proxy cannot read what it sealed: the tokens of a restored session then die, which is safe.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

import orjson

from shadowproxy.core.jsonrpc import RESPONSE, Message
from shadowproxy.core.redact import walk

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

KEY_ENV = "SHADOWPROXY_TOKEN_KEY"
MAX_VALUES = 10_000
"""Values one session may have tokens for; past it a value is masked for good instead."""
TOKEN = re.compile(r"\[([A-Z][A-Z_]*)_([0-9]+)\]")
TOKEN_BYTES = re.compile(rb"\[[A-Z][A-Z_]*_[0-9]+\]")
"""Whether a message's bytes may hold a token at all: one C scan before anything is decoded or walked."""
KINDS = {
    "email": "EMAIL",
    "credit_card": "CARD",
    "iban": "IBAN",
    "api_key": "API_KEY",
    "bearer_token": "BEARER",
    "jwt": "JWT",
    "private_key": "PRIVATE_KEY",
    "phone": "PHONE",
    "pattern": "PII",
}

_fernet: Fernet | None = None


def _cipher() -> Fernet:
    global _fernet
    if _fernet is None:
        # Imported on first use: cryptography costs every start about 30 ms, and most sessions never seal a vault.
        from cryptography.fernet import Fernet

        key = os.environ.get(KEY_ENV)
        _fernet = Fernet(key.encode() if key else Fernet.generate_key())
    return _fernet


class TokenVault:
    """One session's values and their tokens, both ways."""

    __slots__ = ("_by_token", "_by_value", "_counts", "_sealed")

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_token: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._sealed: str | None = None

    def __len__(self) -> int:
        return len(self._by_token)

    def __repr__(self) -> str:
        return f"TokenVault({len(self._by_token)} values)"

    def token(self, detector: str, value: str) -> str:
        """The token for ``value`` (the same one each time it is seen in this session)."""
        kind = KINDS.get(detector, detector.upper())
        token = self._by_value.get((kind, value))
        if token is not None:
            return token
        if len(self._by_token) >= MAX_VALUES:
            return f"[{kind}_REDACTED]"
        number = self._counts.get(kind, 0) + 1
        self._counts[kind] = number
        token = f"[{kind}_{number}]"
        self._by_value[(kind, value)] = token
        self._by_token[token] = value
        self._sealed = None
        return token

    def restore_text(self, text: str) -> str:
        """``text`` with every token of this vault replaced by its value; the same object when none was."""
        if "[" not in text:
            return text
        restored = TOKEN.sub(lambda match: self._by_token.get(match.group(0), match.group(0)), text)
        return text if restored == text else restored

    def restore(self, value: Any) -> Any:
        """Every string inside a JSON value restored; the same object when nothing changed."""
        return walk(value, self.restore_text)

    def restore_message(self, message: Message) -> Message:
        """A client's message with its tokens replaced by their values, or the message itself: a request's or a
        notification's params, and a response's result (the client's answer to a server's sampling, elicitation
        or roots request, which may carry back what it was shown as tokens)."""
        if message.kind is RESPONSE:
            result = message.result
            restored_result = self.restore(result)
            return message if restored_result is result else message.evolve(result=restored_result)
        params = message.params
        restored = self.restore(params)
        return message if restored is params else message.evolve(params=restored)

    def sealed(self) -> str:
        """The map encrypted (cached until it changes): what the session store keeps."""
        if self._sealed is None:
            plain = orjson.dumps([[token, value] for token, value in self._by_token.items()])
            self._sealed = _cipher().encrypt(plain).decode()
        return self._sealed

    @classmethod
    def unseal(cls, sealed: str) -> TokenVault | None:
        """A vault from its sealed form; None when this process's key cannot read it (the tokens die)."""
        from cryptography.fernet import InvalidToken

        try:
            pairs = orjson.loads(_cipher().decrypt(sealed.encode()))
        except (InvalidToken, ValueError, orjson.JSONDecodeError):
            return None
        vault = cls()
        for token, value in pairs:
            match = TOKEN.fullmatch(token)
            if match is None:
                continue
            kind, number = match.group(1), int(match.group(2))
            vault._by_token[token] = value
            vault._by_value[(kind, value)] = token
            vault._counts[kind] = max(vault._counts.get(kind, 0), number)
        vault._sealed = sealed
        return vault
