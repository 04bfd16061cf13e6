"""Contract tests: the pykka internals `SupervisedActor` overrides or relies on.

`supervision/actor.py` overrides `_actor_loop` and `_handle_failure`, and calls
`_handle_receive`, `_stop`, the inbox of `Envelope`s and `messages._ActorStop`. pykka is
pinned `>=4.1,<5`; these tests pin the behaviour itself, so a pykka release that changes
any of it fails here, by name, rather than somewhere in the supervision tree.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import queue
import threading
from typing import Any

import pykka
import pytest
from pykka import messages
from pykka._envelope import Envelope

from tests.waiting import eventually


class Plain(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self) -> None:
        super().__init__()
        self.stopped_hook = threading.Event()

    def on_receive(self, message: Any) -> Any:
        return f"got {message}"

    def on_stop(self) -> None:
        self.stopped_hook.set()

    def ping(self) -> str:
        return "pong"


def start_plain() -> tuple[pykka.ActorRef[Any], Plain]:
    """A started Plain actor and the object behind its ref (to call internals on)."""
    holder: list[Plain] = []

    class Capturing(Plain):
        def on_start(self) -> None:
            holder.append(self)

    ref = Capturing.start()
    eventually(lambda: holder)
    return ref, holder[0]


def test_pykka_major_version_is_4():
    assert importlib.metadata.version("pykka").split(".")[0] == "4"


def test_actor_loop_is_the_thread_target():
    ran_on: list[str] = []

    class LoopOverridden(pykka.ThreadingActor):
        use_daemon_thread = True

        def _actor_loop(self) -> None:
            ran_on.append(threading.current_thread().name)

    LoopOverridden.start()
    eventually(lambda: ran_on, what="the overridden _actor_loop ran")
    assert ran_on[0] != threading.current_thread().name, "_actor_loop runs on the actor's own thread"


def test_handle_failure_unregisters_and_stops():
    params = list(inspect.signature(pykka.Actor._handle_failure).parameters)
    assert params == ["self", "exception_type", "exception_value", "traceback"]
    ref, actor = start_plain()
    assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is ref
    actor._handle_failure(RuntimeError, RuntimeError("x"), None)  # noqa: SLF001
    assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is None
    assert actor.actor_stopped.is_set()


def test_stop_unregisters_sets_stopped_calls_on_stop_and_routes_its_errors_to_handle_failure():
    failures: list[BaseException | None] = []

    class StopFails(Plain):
        def on_stop(self) -> None:
            raise ValueError("on_stop failed")

        def _handle_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
            failures.append(exception_value)
            super()._handle_failure(exception_type, exception_value, traceback)

    ref, actor = start_plain()
    actor._stop()  # noqa: SLF001
    assert actor.stopped_hook.is_set() and actor.actor_stopped.is_set()
    assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is None
    failing = StopFails.start()
    failing.stop()
    assert [type(e) for e in failures] == [ValueError]


def test_handle_receive_dispatches_stop_proxy_calls_and_plain_messages():
    assert list(inspect.signature(pykka.Actor._handle_receive).parameters) == ["self", "message"]
    ref = Plain.start()
    assert ref.ask("hi") == "got hi"
    assert ref.proxy().ping().get(timeout=5) == "pong"
    ref.stop()


def test_inbox_holds_envelopes_and_stop_sends_an_actor_stop_envelope():
    class Blocked(pykka.ThreadingActor):
        use_daemon_thread = True
        gate = threading.Event()

        def on_start(self) -> None:
            Blocked.gate.wait(10)

    Blocked.gate.clear()
    ref = Blocked.start()
    future = ref.stop(block=False)
    ref.ask("question", block=False)
    inbox = ref.actor_inbox
    assert isinstance(inbox, queue.Queue)
    first, second = inbox.get_nowait(), inbox.get_nowait()
    assert isinstance(first, Envelope) and isinstance(first.message, messages._ActorStop)  # noqa: SLF001
    assert first.reply_to is not None and second.message == "question" and second.reply_to is not None
    first.reply_to.set(None)
    assert future.get(timeout=1) is True
    Blocked.gate.set()
    ref.stop()


def test_tell_and_ask_refuse_once_actor_stopped_is_set():
    ref = Plain.start()
    ref.actor_stopped.set()
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("x")
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("x", block=False).get(timeout=1)
    assert not ref.is_alive()
    pykka.ActorRegistry.unregister(ref)
    ref.actor_inbox.put(Envelope(messages._ActorStop()))  # noqa: SLF001 - let its thread end


def test_future_refuses_a_second_answer():
    future = pykka.ThreadingFuture()
    future.set("first")
    with pytest.raises(queue.Full):
        future.set("second")
    with pytest.raises(queue.Full):
        future.set_exception(exc_info=(ValueError, ValueError("late"), None))
    assert future.get(timeout=1) == "first"
