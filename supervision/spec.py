"""ChildSpec: how a supervisor starts, restarts and stops one child."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from supervision.policy import RestartType

ChildKind = Literal["worker", "supervisor"]
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
WORKER_SHUTDOWN = 5.0  # OTP's default for a worker; a supervisor child defaults to infinity (None)


@dataclass(frozen=True)
class ChildSpec:
    """One child of a supervisor.

    `factory` is a pykka actor class (a `SupervisedActor` subclass, or `Supervisor` with
    its options as kwargs). `shutdown` is how long a stop may take before the child is
    fenced and marked `killed`: by default 5 s for a worker and unbounded (None) for a
    supervisor, which stops its own children within their own timeouts (OTP's defaults).
    `start_timeout` is the same bound for `on_start`.
    `hang_timeout` is how long one message may be in progress without a sign of life
    (`SupervisedActor.progress()`) before the child counts as hung: it is fenced and
    replaced (None: never).

    Threading: frozen; safe to share between threads and supervisors.
    """

    id: str
    factory: type
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    restart: RestartType | str = RestartType.PERMANENT
    shutdown: float | None | Literal["default"] = "default"
    kind: ChildKind = "worker"
    hang_timeout: float | None = None
    start_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID_PATTERN.match(self.id):
            raise ValueError(f"ChildSpec.id must match {_ID_PATTERN.pattern}, got {self.id!r}")
        object.__setattr__(self, "restart", RestartType(self.restart))
        if self.kind not in ("worker", "supervisor"):
            raise ValueError(f"ChildSpec.kind must be 'worker' or 'supervisor', got {self.kind!r}")
        if self.shutdown == "default":
            object.__setattr__(self, "shutdown", None if self.kind == "supervisor" else WORKER_SHUTDOWN)
        if self.shutdown is not None and (not isinstance(self.shutdown, (int, float)) or self.shutdown < 0):
            raise ValueError(f"ChildSpec {self.id}: shutdown must be seconds >= 0 or None (unbounded), got {self.shutdown!r}")
        if self.start_timeout <= 0:
            raise ValueError(f"ChildSpec {self.id}: start_timeout must be > 0, got {self.start_timeout!r}")
        if self.hang_timeout is not None and self.hang_timeout <= 0:
            raise ValueError(f"ChildSpec {self.id}: hang_timeout must be > 0 or None")
