"""A general supervision library on pykka: OTP supervisor semantics for threads.

No trading knowledge lives here. Public API (DESIGN §7):

    from supervision import Supervisor, ChildSpec, SupervisedActor
"""

from supervision.actor import Shutdown, SupervisedActor, actor_of
from supervision.errors import (
    ActorCrashed,
    AlreadyPresent,
    AlreadyStarted,
    NotFound,
    Restarting,
    Running,
    StartFailed,
    SupervisionError,
)
from supervision.fence import Fence
from supervision.policy import ExitKind, ExitReason, RestartStrategy, RestartType, RestartWindow
from supervision.spec import ChildSpec
from supervision.supervisor import Supervisor, tree_status

__all__ = [
    "ActorCrashed",
    "AlreadyPresent",
    "AlreadyStarted",
    "ChildSpec",
    "ExitKind",
    "ExitReason",
    "Fence",
    "NotFound",
    "RestartStrategy",
    "RestartType",
    "RestartWindow",
    "Restarting",
    "Running",
    "Shutdown",
    "StartFailed",
    "SupervisedActor",
    "Supervisor",
    "SupervisionError",
    "actor_of",
    "tree_status",
]
