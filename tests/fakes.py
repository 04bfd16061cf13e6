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
