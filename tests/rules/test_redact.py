"""The redaction detectors and the plain function API shared with the audit log and the tap."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowproxy.core.redact import DETECTORS, Redactor, iban_valid, luhn_valid, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe+x@mail.example.com today", "write to [REDACTED:email] today"),
        ("Authorization: Bearer abc.DEF-123_456~xyz", "Authorization: Bearer [REDACTED:bearer_token]"),
        ("key=sk-ant-api03-abcdefghijklmnopqrstuvwx", "key=[REDACTED:api_key]"),
        ("AKIAIOSFODNN7EXAMPLE is the id", "[REDACTED:api_key] is the id"),
        ("id AKIAIOSFODNN7EXAMPLE in us-east-1", "id [REDACTED:api_key] in us-east-1"),
        ("stripe sk_live_abcdefghijklmnop1234", "stripe [REDACTED:api_key]"),
        ("Google AIzaSyA-abcdefghijklmnopqrstuvwxyz01234", "Google [REDACTED:api_key]"),
        ("slack xoxb-1234567890-abcdefghij", "slack [REDACTED:api_key]"),
        ('{"password": "hunter2hunter2"}', '{"password": "[REDACTED:api_key]"}'),
        ("api_key: abcdef123456", "api_key: [REDACTED:api_key]"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl", "jwt [REDACTED:jwt]"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", "[REDACTED:private_key]"),
        ("card 4111-1111-1111-1111.", "card [REDACTED:credit_card]."),
        ("card 5500 0000 0000 0004", "card [REDACTED:credit_card]"),
        ("iban DE89 3704 0044 0532 0130 00", "iban [REDACTED:iban]"),
        ("iban FR1420041010050500013M02606", "iban [REDACTED:iban]"),
    ],
)
def test_detectors(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 4111 1111 1111 1112 (fails Luhn)",
        "phone 1234567890123",
        "DE89 3704 0044 0532 0130 01 (bad IBAN checksum)",
        "not an email: a@b",
        "bearer",
        "version 1.2.3, build 20240101",
    ],
)
def test_lookalikes_are_left_alone(text: str) -> None:
    assert redact(text) is text


def test_bearer_keeps_the_scheme_word() -> None:
    # The bearer value overlaps the scheme word only when "Bearer" stands alone before it.
    assert Redactor(["bearer_token"]).text("Bearer abcdefghijklmnop") == "Bearer [REDACTED:bearer_token]"


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and not iban_valid("GB82 WEST 1234 5698 7654 33")
    assert not iban_valid("GB82")


def test_json_values_share_what_is_unchanged() -> None:
    untouched = {"n": 1}
    value = {"a": [untouched, "mail bob@example.com"], "b": True, "c": None, "d": {"x": "clean"}}
    result = redact(value)
    assert result == {"a": [{"n": 1}, "mail [REDACTED:email]"], "b": True, "c": None, "d": {"x": "clean"}}
    assert result["a"][0] is untouched and result["d"] is value["d"]
    assert value["a"][1] == "mail bob@example.com", "the input is never mutated"
    clean = {"a": ["x", {"y": 2}]}
    assert redact(clean) is clean


def test_keys_are_not_redacted() -> None:
    assert redact({"bob@example.com": "x"}) == {"bob@example.com": "x"}


def test_chosen_detectors_patterns_and_mask() -> None:
    only_email = Redactor(["email"], mask="***")
    assert only_email.text("a@b.example 4111111111111111") == "*** 4111111111111111"
    custom = Redactor([], patterns=[r"\bEMP-\d{4}\b"], mask="<{name}>")
    assert custom.text("employee EMP-1234") == "employee <pattern>"
    assert redact("x EMP-9999", detectors=[], patterns=[r"EMP-\d+"]) == "x [REDACTED:pattern]"
    with pytest.raises(ValueError, match="unknown detector 'ssn'"):
        Redactor(["ssn"])
    assert set(DETECTORS) >= {"email", "api_key", "bearer_token", "credit_card", "iban"}


SECRETS = [text for text, _ in test_detectors.pytestmark[0].args[1]] + ["+44 20 7946 0958", "API_\u212aEY: abcdefgh"]
PIECES = [*SECRETS, "hello", "0123456789", " ", "-", "\n", '"', "\\", "é", "@", ":", "=", "DE", "4111", "eyJ"]


@given(st.lists(st.sampled_from(PIECES) | st.text(max_size=8), max_size=6), st.booleans())
def test_a_wire_form_found_clean_has_nothing_to_mask(parts: list[str], ascii_only: bool) -> None:
    """clean() looks at a whole message's bytes at once; whatever value() would mask in it, clean() must see."""
    redactor = Redactor([*DETECTORS, "phone"])
    message = {"jsonrpc": "2.0", "id": 1, "result": {"text": "".join(parts), "list": parts}}
    wire = json.dumps(message, ensure_ascii=ascii_only).encode()
    if redactor.clean(wire):
        assert redactor.value(message) is message


def test_an_ordinary_message_is_clean() -> None:
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hi"}}}
    meta = {**call, "params": {**call["params"], "_meta": {"progressToken": 1234}}}
    assert Redactor().clean(json.dumps(call).encode()) and Redactor().clean(json.dumps(meta).encode())
    assert not Redactor().clean(json.dumps({**call, "id": "a\\nb"}).encode()), "an escape may hide a match"
    assert not Redactor(patterns=["x"]).clean(b"{}"), "extra patterns may be anchored to a string's ends"


@pytest.mark.parametrize(
    "text",
    ["card 4111 1111 1111 1111", "card 4111-1111-1111-1111", "DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432"],
)
def test_a_long_run_of_digits_and_capitals_makes_a_message_unclean(text: str) -> None:
    """Card numbers and IBANs are found by their shape: 13 digits or capitals in a row, separators left out."""
    message = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": text}]}}
    assert Redactor().value(message) is not message, "the detector masks it"
    assert not Redactor().clean(json.dumps(message).encode())


def test_timestamps_and_ids_are_clean() -> None:
    """What MCP results hold most often is not taken for a card number: it would send them to the slow path."""
    text = "at 2026-12-05T03:04:05.123Z, request 1234567890, version 2025-11-25, page 12 of 240"
    message = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": text}]}}
    assert Redactor().clean(json.dumps(message).encode())


VENDOR_KEYS = [
    "sk-proj-abcdefghijklmnopqrstuvwx",
    "sk_live_abcdefghijklmnop",
    "rk_test_abcdefghijklmnop",
    "pk_live_abcdefghijklmnop",
    *(f"gh{kind}_{'a' * 36}" for kind in "pousr"),
    f"github_pat_{'a' * 22}",
    "xoxb-1234567890-abcdef",
    "AKIAABCDEFGHIJKLMNOP",
    f"AIza{'a' * 35}",
]


@pytest.mark.parametrize("key", VENDOR_KEYS)
def test_every_vendor_key_makes_a_message_unclean(key: str) -> None:
    """clean() looks for the vendor prefixes only when characters each holds are there ("A", "k" and "_", "g", "h"
    and "_", "x" and "-"): none may slip past."""
    redactor = Redactor()
    message = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": f"key {key} here"}]}}
    assert redactor.value(message) is not message, "the detector masks it"
    assert not redactor.clean(json.dumps(message).encode())
