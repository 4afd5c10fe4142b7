"""Human control of messages in flight: holds (a rule's ``approve``, breakpoints), parked until someone decides.

:mod:`.registry` parks held messages and settles them (kept in the store's hold book so any instance can decide);
:mod:`.breakpoints` is the operator's filter of messages to hold; :mod:`.decisions` turns a settled hold into the
chain's verdict.
"""

from shadowproxy.control.breakpoints import Breakpoint, BreakpointError
from shadowproxy.control.registry import HoldError, HoldRegistry

__all__ = ["Breakpoint", "BreakpointError", "HoldError", "HoldRegistry"]
