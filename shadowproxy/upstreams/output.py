"""A stdio child's output, bounded: stdout cut into lines none over the message limit, stderr into few short lines.

Both are fed from protocol callbacks (no task); what they leave out is counted in
``shadowproxy_limit_hits_total`` under ``upstream_message`` and ``upstream_stderr``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from shadowproxy.core.limit_hits import HITS
from shadowproxy.core.tokenbucket import TokenBucket


@dataclass(slots=True)
class Oversized:
    """A line from the child over the message limit: its first bytes (to find the id) and its size so far."""

    head: bytes
    size: int

    @property
    def reply_id(self) -> object:
        """The ``id`` of a reply, when it is among the first top-level members (as every SDK writes it)."""
        members = self.head.split(b"{", 2)[1] if self.head.count(b"{") > 1 else self.head
        match = _REPLY_ID.search(members)
        if match is None or b'"method"' in members:
            return None
        number, text = match.groups()
        return int(number) if number is not None else text.decode(errors="replace")


_REPLY_ID = re.compile(rb'"id"\s*:\s*(?:(-?\d+)|"((?:[^"\\]|\\.)*)")')
HEAD = 512


class BoundedLines:
    """Splits a child's stdout into lines, none over ``limit``: a longer one is skipped to its end and reported.

    Chunks of a line are kept in a list and joined once, so a long line costs its length, not its square.
    """

    __slots__ = ("chunks", "limit", "size", "skipping")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.skipping: Oversized | None = None

    def feed(self, data: bytes) -> Sequence[bytes | Oversized]:
        parts = data.split(b"\n")
        rest = parts.pop()
        if len(data) <= self.limit and not self.chunks and self.skipping is None:
            # The usual read: lines that begin in it, none of which can be over the limit.
            if rest:
                self.chunks.append(rest)
                self.size = len(rest)
            return parts
        lines: list[bytes | Oversized] = []
        for index, part in enumerate(parts):
            if index == 0 and (self.chunks or self.skipping is not None):
                line = self._end(part)
                if line is not None:
                    lines.append(line)
            elif len(part) > self.limit:
                lines.append(Oversized(part[:HEAD], len(part)))
            else:
                lines.append(part)
        if rest:
            self._keep(rest, lines)
        return lines

    def _end(self, part: bytes) -> bytes | Oversized | None:
        """The end of a line begun in an earlier chunk."""
        skipped, self.skipping = self.skipping, None
        if skipped is not None:
            skipped.size += len(part)
            return None
        line = b"".join((*self.chunks, part))
        self.chunks.clear()
        self.size = 0
        return Oversized(line[:HEAD], len(line)) if len(line) > self.limit else line

    def _keep(self, rest: bytes, lines: list[bytes | Oversized]) -> None:
        if self.skipping is not None:
            self.skipping.size += len(rest)
            return
        self.chunks.append(rest)
        self.size += len(rest)
        if self.size > self.limit:
            head = b"".join(self.chunks)[:HEAD] if len(self.chunks[0]) < HEAD else self.chunks[0][:HEAD]
            self.skipping = Oversized(head, self.size)
            self.chunks.clear()
            self.size = 0
            # Reported now, while the child is still writing it: the waiting request fails at once.
            lines.append(self.skipping)


class StderrLines:
    """A child's stderr cut into lines for the log, each at most ``width`` bytes, and not too many of them.

    ``burst`` lines may come at once and ``rate`` a second after that: a child that floods stderr cannot flood
    the proxy's log. :attr:`notice` says when lines start to be left out, and how many once they are let in again.
    """

    __slots__ = ("bucket", "notice", "partial", "suppressed", "width")

    def __init__(self, width: int = 2000, rate: float = 50.0, burst: float = 200.0) -> None:
        self.width = width
        self.bucket = TokenBucket(rate, burst, time.monotonic())
        self.partial = b""
        self.suppressed = 0
        self.notice: str | None = None

    def feed(self, data: bytes) -> list[bytes]:
        self.notice = None
        lines = (self.partial + data).split(b"\n")
        # A line without an end yet keeps only its last ``width`` bytes: memory stays bounded.
        self.partial = lines.pop()[-self.width :]
        kept = [line[: self.width] for line in lines if line.strip()]
        if not kept:
            return kept
        allowed = self.bucket.take_up_to(len(kept), time.monotonic())
        if allowed == len(kept) and self.suppressed:
            self.notice = f"{self.suppressed} stderr lines were left out of the log"
            self.suppressed = 0
        elif allowed < len(kept):
            if not self.suppressed:
                self.notice = (
                    f"stderr comes faster than {self.bucket.rate:g} lines a second; lines are left out of the log"
                )
            self.suppressed += len(kept) - allowed
            HITS.labels("upstream_stderr").inc(len(kept) - allowed)
            kept = kept[:allowed]
        return kept
