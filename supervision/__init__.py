"""A general supervision library on pykka: OTP supervisor semantics for threads.

No trading knowledge lives here. Public API (DESIGN §7):

    from supervision import Supervisor, ChildSpec, SupervisedActor

with the admin errors named after OTP's (`AlreadyStarted`, `AlreadyPresent`, `Running`,
`NotFound`, `Restarting`), `StartFailed` (raised by `Supervisor.start` and
`start_child`/`restart_child`) and `Shutdown` (raise it to exit with reason shutdown).
Also exported for callers that read or check the tree from other threads: `Fence`
(generation checks for side-effect owners), `tree_status` and `actor_of` (lock-free
status reads).
"""

from supervision.actor import Shutdown, SupervisedActor, actor_of
from supervision.errors import AlreadyPresent, AlreadyStarted, NotFound, Restarting, Running, StartFailed
from supervision.fence import Fence
from supervision.spec import ChildSpec
from supervision.supervisor import Supervisor, tree_status

__all__ = [
    "AlreadyPresent",
    "AlreadyStarted",
    "ChildSpec",
    "Fence",
    "NotFound",
    "Restarting",
    "Running",
    "Shutdown",
    "StartFailed",
    "SupervisedActor",
    "Supervisor",
    "actor_of",
    "tree_status",
]
