"""The tokenize action without a proxy: stable per-session tokens, the way back, the vault never showing values."""

from __future__ import annotations

from cryptography.fernet import Fernet

from shadowproxy.core import vault
from shadowproxy.core.vault import TokenVault
from shadowproxy.interceptors.rules import RulesInterceptor, RulesOptions
from shadowproxy.rules.ruleset import loads

from .helpers import C2S, S2C, call, ctx, reply, session, text_result

POLICY = """
rules:
  - id: tokens
    match: {direction: server_to_client}
    action: {tokenize: {detectors: [email, phone, credit_card], patterns: ["EMP-[0-9]{6}"]}}
"""
TEXT = "Jane <jane@example.com>, +33 1 42 68 53 00, card 4111 1111 1111 1111, badge EMP-123456; again jane@example.com"


async def test_tokens_out_and_values_back() -> None:
    rules = loads(POLICY)
    interceptor = RulesInterceptor(RulesOptions(paths=["x"], watch=False), rules)
    record = session()
    request = call("lookup", {})
    out = ctx(reply(text_result(TEXT)), S2C, request_message=request, session_record=record)
    verdict = await interceptor.on_message(out)
    assert verdict.message is not None
    assert verdict.message.result["content"][0]["text"] == (
        "Jane <[EMAIL_1]>, [PHONE_1], card [CARD_1], badge [PII_1]; again [EMAIL_1]"
    )
    assert repr(record.tokens) == "TokenVault(4 values)" and "jane" not in repr(record)

    plain = call("send", {"to": "nobody"}, id=3)
    await interceptor.on_message(ctx(plain, C2S, session_record=record))  # indexes the call's key: no rule for it
    assert not interceptor.wants(plain, C2S, None), "a call without a token is declined"
    tokened = call("send", {"to": "[EMAIL_1]", "note": "[PHONE_1] [EMAIL_9]"}, id=2)
    assert interceptor.wants(tokened, C2S, None), "one carrying a token is judged"
    back = ctx(tokened, C2S, session_record=record)
    assert (await interceptor.on_message(back)).message is None, "what the chain and its observers see is unchanged"
    assert back.restore is not None
    restored = back.restore(back.message)
    assert restored.params["arguments"] == {"to": "jane@example.com", "note": "+33 1 42 68 53 00 [EMAIL_9]"}

    other = ctx(tokened, C2S, session_record=session(id="s-2"))
    await interceptor.on_message(other)
    assert other.restore is None, "another session's tokens mean nothing here"


def test_the_sealed_vault_opens_only_with_its_key(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    tokens = TokenVault()
    tokens.token("email", "jane@example.com")
    sealed = tokens.sealed()
    assert "jane" not in sealed
    opened = TokenVault.unseal(sealed)
    assert opened is not None and opened.restore_text("[EMAIL_1]") == "jane@example.com"
    assert opened.token("email", "bob@example.com") == "[EMAIL_2]", "numbering goes on"
    monkeypatch.setattr(vault, "_fernet", Fernet(Fernet.generate_key()))
    assert TokenVault.unseal(sealed) is None, "another key: the tokens die"
