"""Errors of the supervision API, named after OTP's supervisor return values."""

from __future__ import annotations


class SupervisionError(Exception):
    """Base class of every error the supervision API raises."""


class AlreadyStarted(SupervisionError):
    """`start_child` with the id of a child that is running (OTP `{already_started, Pid}`)."""


class AlreadyPresent(SupervisionError):
    """`start_child` with the id of a spec that exists but is not running (OTP `already_present`)."""


class Running(SupervisionError):
    """`restart_child` / `delete_child` on a running child (OTP `running`)."""


class Restarting(SupervisionError):
    """`restart_child` / `delete_child` on a child waiting for its restart (OTP `restarting`)."""


class NotFound(SupervisionError):
    """No child spec with that id (OTP `not_found`)."""


class StartFailed(SupervisionError):
    """A child (or a supervisor's initial children) failed to start."""


class ActorCrashed(Exception):
    """A BaseException (SystemExit, KeyboardInterrupt, ...) escaped an actor's handler.

    pykka answers such an exception with `ActorRegistry.stop_all()`, which would take
    the whole tree down; `SupervisedActor` converts it into this ordinary crash instead.
    """
