"""SupervisedActor: a pykka ThreadingActor whose death is always reported.

Subclasses override `on_start`, `on_stop`, `on_receive` and `on_failure` freely and never
call super: death detection lives in the actor loop, which subclasses do not touch.
What pykka hides and this class reports:

- an exception in `on_start` (pykka stops the actor without calling `on_failure`);
- an exception in a `tell` handler, or in `on_stop`/`on_failure` themselves;
- an actor that stops itself (a normal exit);
- a BaseException (SystemExit, KeyboardInterrupt, GeneratorExit...): pykka would call
  `ActorRegistry.stop_all()` and take every actor down; here it is only this actor's crash.

An exception raised by an `ask` handler goes back to the caller and the actor lives on
(pykka's semantics, kept). Raising `Shutdown` from a handler stops the actor with reason
`shutdown`, OTP's `exit(shutdown)`. However the loop ends, queued asks are answered with
`ActorDeadError`, never left waiting.

pykka internals overridden or relied on (pinned `pykka>=4.1,<5`; each has a contract
test in tests/supervision/test_pykka_contract.py): `_actor_loop` (the thread's target),
`_handle_failure` (pykka's crash path, also taken for an exception in `on_stop`),
`_handle_receive` and `_stop` (called, not overridden), the inbox of `Envelope`s and
`messages._ActorStop`.

Threads are daemon threads: a hung incarnation that was fenced can never keep the
process from exiting.
"""

from __future__ import annotations

import queue
import sys
import weakref
from types import TracebackType
from typing import Any

import pykka
from pykka import messages

from runtime.logging import log_event
from supervision import injection
from supervision.errors import ActorCrashed
from supervision.incarnation import Incarnation, fail_dead, take_spawning
from supervision.policy import SHUTDOWN_EXIT, ExitReason

_live_actors: weakref.WeakValueDictionary[str, SupervisedActor] = weakref.WeakValueDictionary()


def actor_of(ref: pykka.ActorRef[Any]) -> SupervisedActor | None:
    """The actor object behind `ref`, for thread-safe status reads (`status_details`,
    `status_node`) that must not wait in its inbox. Never use it to call handlers."""
    return _live_actors.get(ref.actor_urn)


class Shutdown(Exception):
    """Raise from a handler to stop this actor with exit reason `shutdown`."""


class SupervisedActor(pykka.ThreadingActor):
    """A pykka ThreadingActor that a `Supervisor` can watch, restart and fence.

    Call `super().__init__()` with no arguments. Started by a supervisor (through a
    `ChildSpec`), it carries that incarnation's `generation`; started on its own it
    behaves like a plain ThreadingActor with generation 0.

    Threading: `generation`, `fenced` and `progress()` may be read or called from the
    actor's own thread; `generation` and `fenced` are also safe from any other thread.
    """

    use_daemon_thread = True

    def __init__(self) -> None:
        super().__init__()
        incarnation = take_spawning()
        self._incarnation: Incarnation = incarnation or Incarnation(child_id=self.actor_urn, generation=0)
        self._incarnation.actor = self
        self._stop_called = False
        _live_actors[self.actor_urn] = self

    @property
    def generation(self) -> int:
        """This incarnation's generation; side effects carry it so stale ones are refused."""
        return self._incarnation.generation

    @property
    def fenced(self) -> bool:
        """True once the supervisor has fenced this incarnation (hung or killed): its mailbox
        is closed, its replies are dropped, and it must not act on anything any more."""
        return self._incarnation.fenced

    def progress(self) -> None:
        """Call from inside a long handler to prove it is not hung.

        The child's hang deadline (`ChildSpec.hang_timeout`) starts again from now.
        Only meaningful on the actor's own thread, while a message is being handled.
        """
        self._incarnation.progress()

    # --- the loop (pykka internals) ------------------------------------------------------

    def _actor_loop(self) -> None:
        incarnation = self._incarnation
        try:
            try:
                self.on_start()
            except BaseException as exc:  # noqa: BLE001 - any failure of on_start is this actor's start failure
                self._die(exc, sys.exc_info()[2], call_on_failure=False)
                return
            incarnation.mark_started()
            self._receive_loop()
            if incarnation.fenced:
                # Its mailbox was closed while a handler ran; now that the handler has returned,
                # on_stop releases what it holds (it sees `fenced` and must not speak for the child).
                self._stop_once()
        finally:
            self.close_mailbox()
            self._release_safely()
            incarnation.finish()

    def _receive_loop(self) -> None:
        incarnation = self._incarnation
        while not self.actor_stopped.is_set():
            envelope = self.actor_inbox.get()
            incarnation.begin(envelope)
            try:
                message = envelope.message
                if isinstance(message, messages._ActorStop):  # noqa: SLF001
                    self._stop_once()
                    self._release_safely()
                    response = None
                elif isinstance(message, injection.InjectedFault) and injection.enabled():
                    response = injection.apply(message)
                else:
                    response = self._handle_receive(message)
            except Shutdown:
                incarnation.record_exit(SHUTDOWN_EXIT)
                incarnation.reply(envelope)
                self._stop_once()
            except Exception as exc:  # noqa: BLE001
                if envelope.reply_to is not None:
                    incarnation.reply(envelope, exc_info=sys.exc_info())
                else:
                    self._die(exc, sys.exc_info()[2])
            except BaseException as exc:  # noqa: BLE001 - must never reach pykka's stop_all()
                if envelope.reply_to is not None:
                    crashed = ActorCrashed(f"{type(exc).__name__}: {exc}")
                    incarnation.reply(envelope, exc_info=(ActorCrashed, crashed, sys.exc_info()[2]))
                self._die(exc, sys.exc_info()[2])
            else:
                incarnation.reply(envelope, response)
            finally:
                incarnation.end()

    def _stop_once(self) -> None:
        """pykka's `_stop` (unregister, stop, `on_stop`), at most once per incarnation."""
        if not self._stop_called:
            self._stop_called = True
            self._stop()

    def _die(self, exc: BaseException, tb: TracebackType | None, call_on_failure: bool = True) -> None:
        """This incarnation crashed: record why, stop, and give `on_failure` its chance."""
        self._handle_failure(type(exc), exc, tb)
        if not call_on_failure:
            return
        try:
            self.on_failure(type(exc), exc, tb)
        except BaseException as again:  # noqa: BLE001
            self._handle_failure(type(again), again, sys.exc_info()[2])

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exception_value is not None:
            self._incarnation.record_exit(ExitReason.from_exception(exception_value))
        super()._handle_failure(exception_type, exception_value, traceback)

    def close_mailbox(self) -> None:
        """Unregister, refuse new messages and answer every queued ask with ActorDeadError.

        Safe from any thread; used by the loop's end and by `Incarnation.fence`.
        """
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()
        while True:
            try:
                envelope = self.actor_inbox.get_nowait()  # type: ignore[attr-defined]
            except queue.Empty:
                return
            if isinstance(envelope.message, messages._ActorStop) and envelope.reply_to is not None:  # noqa: SLF001
                try:
                    envelope.reply_to.set(None)
                except queue.Full:
                    pass
            else:
                fail_dead(envelope, self.actor_ref)

    def _release(self) -> None:
        """Hook run on the actor's thread on every way out of its life (stop, crash, failed
        start), before its supervisor hears of the exit. `Supervisor` stops its children here."""

    def _release_safely(self) -> None:
        try:
            self._release()
        except BaseException as exc:  # noqa: BLE001 - the exit must still be reported
            self._incarnation.record_exit(ExitReason.from_exception(exc))
            log_event(self._incarnation.child_id, "cleanup_failed", details={"generation": self._incarnation.generation},
                      level="ERROR", exc=exc)
