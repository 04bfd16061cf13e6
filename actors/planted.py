"""Planted bugs: how the soak's checker is itself tested (issue 14). Test-only, inert in production.

With `WARDEN_PLANTED_BUG=<name>` (and `WARDEN_CHAOS_HOOKS=1`, the chaos harness's switch) the
real engine misbehaves in exactly one way, and a soak on a fixed seed must report the
invariant it breaks (`python -m chaos.soak --planted <name>`). Unset, `on(name)` is one
string comparison. Set without the chaos hooks, or to an unknown name, the daemon refuses
to start (`run.py` exits 2 naming what was wrong): a planted bug never runs by accident.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

BUGS: dict[str, str] = {
    "resend_without_lookup": "an order in doubt (timeout, 503) is sent again under the same client id without "
                             "first asking the venue what became of it (breaks I1)",
    "stop_skipped_while_redis_down": "a stop-loss trigger is dropped while Redis is down, instead of exiting from "
                                     "the last known runtime (breaks I3)",
    "exit_ignores_fence": "Warden's own exits ignore the venue-side protective stop that holds a position: the "
                          "local stop stays armed and no exit takes the protective stop back first, so one "
                          "crossing exits twice (breaks I1)",
}
ENV = "WARDEN_PLANTED_BUG"


class PlantedBugRefused(ValueError):
    """WARDEN_PLANTED_BUG names no known bug, or is set without WARDEN_CHAOS_HOOKS=1."""


def configured(environ: Mapping[str, str]) -> str:
    """The planted bug `environ` asks for ("" for none); raises PlantedBugRefused if it may not run."""
    name = environ.get(ENV, "")
    if not name:
        return ""
    if name not in BUGS:
        raise PlantedBugRefused(f"{ENV}={name!r} is no planted bug; known: {', '.join(BUGS)}")
    if environ.get("WARDEN_CHAOS_HOOKS") != "1":
        raise PlantedBugRefused(f"{ENV}={name} is refused: planted bugs run only under the chaos harness "
                                "(WARDEN_CHAOS_HOOKS=1)")
    return name


try:
    _ACTIVE = configured(os.environ)
except PlantedBugRefused:
    _ACTIVE = ""  # run.py refuses to start with the same error


def on(name: str) -> bool:
    """Is planted bug `name` active in this process?"""
    return name == _ACTIVE
