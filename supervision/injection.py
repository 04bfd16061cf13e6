"""Fault injection for chaos tests: make a live actor crash or hang on demand.

Off unless enabled (`enable()`, or WARDEN_CHAOS_HOOKS=1 in the environment at import).
When on, every SupervisedActor obeys an `InjectedFault` message before its own handler
sees it: `crash` raises in a tell handler (a real crash, detected like any other), `hang`
blocks the handler for `seconds` (a real hang, for the watchdog to find). Production
nodes leave it off; an operator command that asks for it is refused.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

_enabled = os.environ.get("WARDEN_CHAOS_HOOKS") == "1"


@dataclass(frozen=True)
class InjectedFault:
    kind: str  # "crash" | "hang"
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("crash", "hang"):
            raise ValueError(f"InjectedFault.kind must be 'crash' or 'hang', got {self.kind!r}")


class InjectedCrash(RuntimeError):
    """The crash an InjectedFault('crash') raises."""


def enabled() -> bool:
    return _enabled


def enable(on: bool = True) -> None:
    global _enabled
    _enabled = on


def apply(fault: InjectedFault) -> None:
    """Run on the actor's own thread, inside its message handling."""
    if fault.kind == "crash":
        raise InjectedCrash("crash injected by a chaos test")
    threading.Event().wait(fault.seconds)
