"""Small fakes shared by the tests: a hand-moved clock and a recording actor."""

from __future__ import annotations

from typing import Any

import pykka


class FakeClock:
    """A clock the test moves by hand (monotonic or epoch seconds, as the caller needs)."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorder(pykka.ThreadingActor):
    """Stands in for another node: records every message it is told, in order."""

    use_daemon_thread = True

    def __init__(self, box: list[Any]) -> None:
        super().__init__()
        self.box = box

    def on_receive(self, message: Any) -> Any:
        self.box.append(message)
        return None


class ActorWorld:
    """The services handed to actors under test, plus every actor the test started (stopped at close)."""

    def __init__(self, services: Any) -> None:
        self.services = services
        self.refs: list[pykka.ActorRef[Any]] = []

    def start(self, factory: type, *args: Any, **kwargs: Any) -> pykka.ActorRef[Any]:
        ref = factory.start(*args, **kwargs)
        self.refs.append(ref)
        return ref

    def recorder(self, node_id: str) -> list[Any]:
        """Register a Recorder as `node_id`; returns the list its messages land in."""
        box: list[Any] = []
        self.services.directory.register(node_id, 0, self.start(Recorder, box))
        return box

    def close(self) -> None:
        for ref in reversed(self.refs):
            try:
                ref.stop(timeout=5)
            except (pykka.ActorDeadError, pykka.Timeout):
                pass
        self.services.timers.stop()
