"""Redaction: find secrets and personal data in strings and replace them with a mask.

A plain function API that the rules engine, the audit log and the live tap share:
:func:`redact` takes any JSON value and returns it with every match masked, or
the very same object when nothing matched (so callers can test ``is``). Only
string values are scanned; keys, numbers and booleans are left alone.

Named detectors: ``email``, ``api_key``, ``bearer_token``, ``jwt``,
``private_key``, ``credit_card`` (checked with Luhn) and ``iban`` (checked with
ISO 13616 mod-97), so that order numbers and other digit runs are not masked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any

DEFAULT_MASK = "[REDACTED:{name}]"

Replace = Callable[[str, str], str]
"""What takes a match's place instead of the mask: called with the detector's name and the matched text."""

# Patterns by part; a detector is one or more parts (api_key: vendor keys and "key = value").
_PATTERNS: dict[str, str] = {
    "private_key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----",
    "bearer_token": r"(?i:\bbearer[ \t]+)(?P<bearer_value>[A-Za-z0-9\-._~+/]{8,}=*)",
    "jwt": r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",
    "api_key": (
        r"(?<![A-Za-z0-9])(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"
        r"|gh[pousr]_[A-Za-z0-9]{36,}"
        r"|github_pat_[A-Za-z0-9_]{22,}"
        r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
        r"|xox[abposr]-[A-Za-z0-9-]{10,}"
        r"|AIza[0-9A-Za-z_-]{35}"
        r"|(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,})"
    ),
    "api_key_assignment": (
        r"(?i:\b(?:api[_-]?key|apikey|secret|client[_-]?secret|access[_-]?token|password|passwd)"
        r"[\"']?[ \t]*[:=][ \t]*[\"']?)(?P<assigned_value>[^\s\"',;]{6,})"
    ),
    # From the "@" on: a pattern that starts with a literal is found by a fast scan; the local part
    # before it is taken by Redactor._scan, walking left.
    "email": r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
    "iban": r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b",
    "credit_card": r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])",
    # Opt-in (not in DETECTORS): 8 to 15 digits (E.164) written as a phone number is, with a leading + or separators.
    "phone": r"(?<![\w+])(?:\+[0-9]|\(?[0-9])[0-9().\- ]{6,22}[0-9](?![\w])",
}
_PARTS: dict[str, tuple[str, ...]] = {
    "private_key": ("private_key",),
    "bearer_token": ("bearer_token",),
    "jwt": ("jwt",),
    "api_key": ("api_key", "api_key_assignment"),
    "email": ("email",),
    "iban": ("iban",),
    "credit_card": ("credit_card",),
    "phone": ("phone",),
}
OPT_IN = ("phone",)
"""Detectors used only when named: phone numbers look too much like other digit runs to mask them by default."""
DETECTORS: tuple[str, ...] = tuple(name for name in _PARTS if name not in OPT_IN)
"""Every detector used by default, in the order they are tried."""

_DETECTOR_OF = {part: name for name, parts in _PARTS.items() for part in parts}
_LOCAL_PART = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")

# A part whose pattern has a value group masks only that group (the "Bearer " or
# "api_key=" before it stays, so the reader still sees what was there).
_VALUE_GROUPS = {"bearer_token": "bearer_value", "api_key_assignment": "assigned_value"}

_DIGITS = "0123456789"
_VENDOR_PREFIXES = ("sk-", "sk_", "rk_", "pk_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox")
_SECRET_WORDS = ("key", "secret", "token", "passw")


def _maybe_vendor_key(text: str) -> bool:
    if ("-" in text or "_" in text) and any(prefix in text for prefix in _VENDOR_PREFIXES):
        return True
    return "AKIA" in text or "ASIA" in text or "AIza" in text


def _maybe_assignment(text: str) -> bool:
    if ":" not in text and "=" not in text:
        return False
    lower = text.lower()
    return any(word in lower for word in _SECRET_WORDS)


# Cheap tests (substring checks that run in C; single characters are fastest) that a
# part could match at all: a string that passes none is not scanned, and the scan runs
# only the parts that pass.
_MAYBE: dict[str, Callable[[str], bool]] = {
    "private_key": lambda text: "PRIVATE KEY" in text,
    "bearer_token": lambda text: "earer" in text or "EARER" in text,
    "jwt": lambda text: "eyJ" in text,
    "api_key": _maybe_vendor_key,
    "api_key_assignment": _maybe_assignment,
    "email": lambda text: "@" in text,
    "iban": lambda text: any(digit in text for digit in _DIGITS),
    "credit_card": lambda text: any(digit in text for digit in _DIGITS),
    "phone": lambda text: any(digit in text for digit in _DIGITS),
}


# For :meth:`Redactor.clean`, what a part's match holds at least: spelt as written (``_WIRE_WORDS``), in
# the lower-cased text (``_WIRE_LOWER``: the assignment's words, every way its pattern allows; "key" alone would be in
# nearly every message, "progressToken"), or in its shape (``_SHAPED``): digits and capitals read as "0", the
# separators card, IBAN and phone numbers may hold deleted, so that "could this be one" is one substring test in C.
Words = tuple[tuple[str, tuple[str, ...]], ...]
"""(gate, words): the words are looked for only when every character of the gate is there. A one-character test is
a ``memchr``, twenty times faster than a test for a word of two or more; the gates are the characters of the words
that MCP traffic holds least (capitals, "k", "-", "_")."""
_WIRE_WORDS: dict[str, Words] = {
    "private_key": (("V", ("PRIVATE KEY",)),),
    "jwt": (("J", ("eyJ",)),),
    "api_key": (
        ("A", ("AKIA", "ASIA", "AIza")),
        ("x-", ("xox",)),
        ("k-", ("sk-",)),
        ("k_", ("sk_", "rk_", "pk_")),
        ("gh_", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")),
    ),
    "email": (("", ("@",)),),
}
_WIRE_LOWER: dict[str, Words] = {
    "bearer_token": (("b", ("bearer",)),),
    "api_key_assignment": (
        ("", ("secret",)),
        ("w", ("passw",)),
        ("k", ("apikey", "api_key", "api-key")),
        ("k", ("accesstoken", "access_token", "access-token")),  # "token": every progressToken
    ),
}
_SHAPES = bytes.maketrans(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"0" * 36)
_SEPARATORS = b" -()."
_SHAPED = {"iban": 15, "credit_card": 13, "phone": 8}
"""How many digits and capitals in a row each holds at least (separators deleted): an IBAN 15, a card number 13, a
phone number 8. Only the shortest enabled is looked for: a run as long holds it."""


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum that every payment card number satisfies."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """ISO 13616: move the first four characters to the end, read letters as 10..35, the number mod 97 is 1."""
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


_DATE = re.compile(r"[0-9]{4}[-./][0-9]{1,2}[-./][0-9]{1,2}|[0-9]{1,2}[-./][0-9]{1,2}[-./][0-9]{2,4}")


def phone_valid(text: str) -> bool:
    """8 to 15 digits (E.164), written as a phone number: with a leading + or a separator between groups; not a
    date."""
    digits = sum(char.isdigit() for char in text)
    if not 8 <= digits <= 15 or _DATE.fullmatch(text):
        return False
    return text.startswith("+") or any(char in text for char in " -.()")


def _valid(name: str, text: str) -> bool:
    if name == "phone":
        return phone_valid(text)
    if name == "credit_card":
        digits = text.replace(" ", "").replace("-", "")
        return 13 <= len(digits) <= 19 and luhn_valid(digits)
    if name == "iban":
        return iban_valid(text)
    return True


class Redactor:
    """A compiled set of detectors and extra patterns with one mask.

    ``mask`` may contain ``{name}``, replaced by the detector's name (``pattern``
    for the extra regexes). The detectors that could match a string run as one
    alternation, so it is scanned once whatever their number.
    """

    __slots__ = ("_alternations", "_mask", "_parts", "_patterns", "_shaped", "_wire_lower", "_wire_words", "detectors")

    def __init__(
        self, detectors: Iterable[str] = DETECTORS, patterns: Sequence[str] = (), mask: str = DEFAULT_MASK
    ) -> None:
        self.detectors = tuple(detectors)
        unknown = [name for name in self.detectors if name not in _PARTS]
        if unknown:
            raise ValueError(f"unknown detector {unknown[0]!r} (known: {', '.join(_PARTS)})")
        self._mask = mask
        # In the one order of _PARTS, whatever the order given: where two could match, the stricter is tried first.
        self._parts = tuple(part for name in _PARTS if name in self.detectors for part in _PARTS[name])
        self._alternations: dict[tuple[str, ...], re.Pattern[str]] = {}
        self._patterns = tuple(re.compile(pattern) for pattern in patterns)
        self._wire_words = tuple(group for part in self._parts for group in _WIRE_WORDS.get(part, ()))
        self._wire_lower = tuple(group for part in self._parts for group in _WIRE_LOWER.get(part, ()))
        runs = [_SHAPED[part] for part in self._parts if part in _SHAPED]
        self._shaped = b"0" * min(runs) if runs else b""

    def _alternation(self, names: tuple[str, ...]) -> re.Pattern[str]:
        compiled = self._alternations.get(names)
        if compiled is None:
            compiled = re.compile("|".join(f"(?P<{name}>{_PATTERNS[name]})" for name in names))
            self._alternations[names] = compiled
        return compiled

    def _masked(self, name: str) -> str:
        return self._mask.replace("{name}", name)

    def _scan(self, value: str, names: tuple[str, ...], replace: Replace | None) -> str:
        pieces: list[str] = []
        position = 0
        for match in self._alternation(names).finditer(value):
            # The detector's group encloses any value group and closes last, so lastgroup names the detector.
            name = match.lastgroup
            assert name is not None
            start, end = match.span()
            if name == "email":
                local = start
                while local > position and value[local - 1] in _LOCAL_PART:
                    local -= 1
                if local == start:
                    continue
                start = local
            elif not _valid(name, value[start:end]):
                continue
            group = _VALUE_GROUPS.get(name)
            if group is not None and match.group(group) is not None:
                start = match.start(group)  # keep "Bearer " or "api_key=" readable
            pieces.append(value[position:start])
            detector = _DETECTOR_OF[name]
            pieces.append(self._masked(detector) if replace is None else replace(detector, value[start:end]))
            position = end
        if not pieces:
            return value
        pieces.append(value[position:])
        return "".join(pieces)

    def text(self, value: str, replace: Replace | None = None) -> str:
        """``value`` with every match masked (or replaced by ``replace(detector, match)``); the same object when
        nothing matched."""
        result = value
        if self._parts:
            names = tuple(part for part in self._parts if _MAYBE[part](value))
            if names:
                result = self._scan(value, names, replace)
        if self._patterns:
            masked = self._masked("pattern")
            for pattern in self._patterns:
                if replace is None:
                    result = pattern.sub(lambda _: masked, result)
                else:
                    result = pattern.sub(lambda match: replace("pattern", match.group(0)), result)
        return value if result == value else result

    def clean(self, raw: bytes) -> bool:
        """Whether nothing in a message's wire form could be masked: a few substring tests in C on the whole,
        instead of walking every string in it; ``False`` says only "look closer" (:meth:`value`).

        A match inside a string is one in the whole text too, as long as no JSON escape (``\\n``, ``\\u0040``)
        splits it: a wire form with a backslash, or extra patterns (which may be anchored to a string's ends),
        are never called clean.
        """
        if self._patterns or raw.find(b"\\") >= 0:
            return False
        text = raw.decode()  # the substring tests below run faster on str than on bytes
        if _holds(text, self._wire_words):
            return False
        if self._wire_lower:
            # casefold, as the patterns' (?i) matches: a non-ASCII letter may fold to an ASCII one they name.
            if _holds(text.lower() if text.isascii() else text.casefold(), self._wire_lower):
                return False
        # find, not in: bytes' "in" first tries the word as an int
        return not self._shaped or raw.translate(_SHAPES, _SEPARATORS).find(self._shaped) < 0

    def value(self, value: Any, replace: Replace | None = None) -> Any:
        """Redact every string inside a JSON value; the same object when nothing changed."""
        if replace is None:
            return walk(value, self.text)
        return walk(value, lambda text: self.text(text, replace))


def _holds(text: str, groups: Words) -> bool:
    for gate, words in groups:
        for char in gate:
            if char not in text:
                break
        else:
            for word in words:
                if word in text:
                    return True
    return False


def walk(value: Any, text: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        changed: dict[str, Any] | None = None
        for key, item in value.items():
            new = walk(item, text)
            if new is not item:
                if changed is None:
                    changed = dict(value)
                changed[key] = new
        return value if changed is None else changed
    if isinstance(value, list):
        changed_list: list[Any] | None = None
        for index, item in enumerate(value):
            new = walk(item, text)
            if new is not item:
                if changed_list is None:
                    changed_list = list(value)
                changed_list[index] = new
        return value if changed_list is None else changed_list
    return value


@lru_cache(maxsize=64)
def _redactor(detectors: tuple[str, ...], patterns: tuple[str, ...], mask: str) -> Redactor:
    return Redactor(detectors, patterns, mask)


def redact(
    value: Any, detectors: Iterable[str] = DETECTORS, patterns: Sequence[str] = (), mask: str = DEFAULT_MASK
) -> Any:
    """Mask secrets and personal data in any JSON value; returns ``value`` itself when nothing matched."""
    return _redactor(tuple(detectors), tuple(patterns), mask).value(value)
