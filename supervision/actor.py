"""SupervisedActor: a pykka ThreadingActor whose death is always reported.

Subclasses override `on_start`, `on_stop`, `on_receive` and `on_failure` freely and never
call super: death detection lives in pykka's private loop methods, which subclasses do
not touch. What pykka hides and this class reports:

- an exception in `on_start` (pykka stops the actor without calling `on_failure`);
- an exception in a `tell` handler, or in `on_stop`/`on_failure` themselves;
- an actor that stops itself (a normal exit);
- a BaseException (SystemExit, KeyboardInterrupt, GeneratorExit...): pykka would call
  `ActorRegistry.stop_all()` and take every actor down; here it is only this actor's crash.

An exception raised by an `ask` handler goes back to the caller and the actor lives on
(pykka's semantics, kept). Raising `Shutdown` from a handler stops the actor with reason
`shutdown`, OTP's `exit(shutdown)`.

Threads are daemon threads: a hung incarnation that was abandoned can never keep the
process from exiting.
"""

from __future__ import annotations

import sys
import weakref
from types import TracebackType
from typing import Any

import pykka

from supervision import injection
from supervision.errors import ActorCrashed
from supervision.incarnation import Incarnation, take_spawning
from supervision.policy import SHUTDOWN_EXIT, ExitKind, ExitReason


_live_actors: weakref.WeakValueDictionary[str, SupervisedActor] = weakref.WeakValueDictionary()


def actor_of(ref: pykka.ActorRef[Any]) -> SupervisedActor | None:
    """The actor object behind `ref`, for thread-safe status reads (`status_details`,
    `status_node`) that must not wait in its inbox. Never use it to call handlers."""
    return _live_actors.get(ref.actor_urn)


class Shutdown(Exception):
    """Raise from a handler to stop this actor with exit reason `shutdown`."""


class SupervisedActor(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self) -> None:
        super().__init__()
        incarnation = take_spawning()
        self._incarnation: Incarnation = incarnation or Incarnation(child_id=self.actor_urn, generation=0)
        self._incarnation.actor = self
        _live_actors[self.actor_urn] = self

    @property
    def generation(self) -> int:
        """This incarnation's generation; side effects carry it so stale ones are refused."""
        return self._incarnation.generation

    @property
    def fenced(self) -> bool:
        """True once the supervisor has abandoned this incarnation (hung or killed)."""
        return self._incarnation.abandoned

    # --- pykka internals, wrapped --------------------------------------------------

    def _actor_loop(self) -> None:
        incarnation = self._incarnation
        try:
            self._actor_loop_setup()
            incarnation.mark_started()
            self._actor_loop_running()
            self._actor_loop_teardown()
        except BaseException as exc:  # noqa: BLE001 - a BaseException out of on_start or teardown
            incarnation.record_exit(ExitReason.from_exception(exc))
            self.actor_stopped.set()
        finally:
            pykka.ActorRegistry.unregister(self.actor_ref)
            incarnation.finish()

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exception_value is not None:
            self._incarnation.record_exit(ExitReason.from_exception(exception_value))
        super()._handle_failure(exception_type, exception_value, traceback)

    def _handle_receive(self, message: Any) -> Any:
        incarnation = self._incarnation
        incarnation.busy_since = incarnation.clock()
        try:
            if isinstance(message, injection.InjectedFault) and injection.enabled():
                injection.apply(message)
                return None
            return super()._handle_receive(message)
        except Shutdown:
            incarnation.record_exit(SHUTDOWN_EXIT)
            self._stop()
            return None
        except Exception:
            raise
        except BaseException as exc:  # noqa: BLE001 - must never reach pykka's stop_all()
            incarnation.record_exit(ExitReason.from_exception(exc))
            pykka.ActorRegistry.unregister(self.actor_ref)
            self.actor_stopped.set()
            raise ActorCrashed(f"{type(exc).__name__}: {exc}").with_traceback(sys.exc_info()[2]) from exc
        finally:
            incarnation.busy_since = None
            incarnation.messages_done += 1
            if incarnation.abandoned:
                # A hung handler that finally returned: its replacement owns the id now.
                incarnation.record_exit(ExitReason(ExitKind.HUNG, message="fenced after hang"))
                self.actor_stopped.set()
