"""The ``tapes`` section: recording sessions to JSON Lines files (:mod:`shadowproxy.tapes.writer` writes them).

::

    tapes:
      dir: /var/lib/shadowproxy/tapes     # required
      record: all                         # all: every session; none: only those a rules `record` action picks
      redact: true                        # mask secrets with every detector; false: raw; or {detectors, patterns}
      max_tape_bytes: 10485760            # a longer tape goes on in a new part
      max_age: 604800                     # seconds a tape is kept (0: for ever)
      max_total_bytes: 1073741824         # the oldest tapes go when the folder holds more (0: no bound)
      queue: 10000                        # messages waiting to be written; past it they are dropped and counted
      write_every: 0.05                   # seconds messages gather before they are masked and written
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from shadowproxy.config.validation import Section, Whole, located
from shadowproxy.core.redact import DETECTORS, Redactor


class TapeRedaction(Section):
    """What is masked in a tape: the named detectors and extra regular expressions."""

    detectors: tuple[str, ...] = DETECTORS
    patterns: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _compiles(self) -> TapeRedaction:
        unknown = [name for name in self.detectors if name not in DETECTORS]
        if unknown:
            raise located("detectors", f"unknown detector {unknown[0]!r} (known: {', '.join(DETECTORS)})")
        for index, pattern in enumerate(self.patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise located(f"patterns[{index}]", f"invalid regular expression: {exc}") from None
        return self

    def redactor(self) -> Redactor:
        return Redactor(self.detectors, self.patterns)


def _redaction(value: Any) -> Any:
    if value is True:
        return TapeRedaction()
    if value is False:
        return None
    return value


class TapesConfig(Section):
    """The validated ``tapes`` section."""

    dir: Annotated[str, Field(min_length=1)]
    record: Literal["all", "none"] = "all"
    redact: Annotated[TapeRedaction | None, BeforeValidator(_redaction)] = TapeRedaction()
    """``None``: recorded raw, as ``redact: false`` asks."""
    max_tape_bytes: Annotated[Whole, Field(ge=4096)] = 10 * 1024 * 1024
    max_age: Annotated[float, Field(ge=0)] = 7 * 24 * 3600.0
    max_total_bytes: Annotated[Whole, Field(ge=0)] = 1024 * 1024 * 1024
    queue: Annotated[Whole, Field(gt=0)] = 10_000
    write_every: Annotated[float, Field(gt=0, le=60)] = 0.05
    """Seconds messages gather once one has come, before they are masked and handed to the writing thread: how far
    a tape on disk is behind the traffic. Longer batches cost less per message."""
