"""Controllable child actors for the supervision tests (the OTP suite's `supervisor_1`)."""

from __future__ import annotations

import threading
from typing import Any

from supervision import Shutdown, SupervisedActor


class Worker(SupervisedActor):
    """Obeys messages: 'crash', 'stop', 'shutdown', 'system_exit', 'hang', 'ping'."""

    def __init__(self, release: threading.Event | None = None, stop_delay: float = 0.0) -> None:
        super().__init__()
        self.release = release or threading.Event()
        self.stop_delay = stop_delay

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("worker crashed on purpose")
        if message == "stop":
            self.stop()
            return None
        if message == "shutdown":
            raise Shutdown("asked to shut down")
        if message == "system_exit":
            raise SystemExit(7)
        if message == "hang":
            self.release.wait(10.0)
            return "woke"
        return "pong"

    def on_stop(self) -> None:
        if self.stop_delay:
            self.release.wait(self.stop_delay)


class FlakyStart(SupervisedActor):
    """Fails in on_start while `plan['fail_starts']` > 0 (decremented each attempt)."""

    def __init__(self, plan: dict[str, int]) -> None:
        super().__init__()
        self.plan = plan

    def on_start(self) -> None:
        self.plan["attempts"] = self.plan.get("attempts", 0) + 1
        if self.plan.get("fail_starts", 0) > 0:
            self.plan["fail_starts"] -= 1
            raise ConnectionError("cannot start")

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("flaky crashed")
        return "pong"


class Logged(SupervisedActor):
    """Appends its name to `log` on every start attempt; fails while `fails[name]` > 0."""

    def __init__(self, name: str, log: list[str], fails: dict[str, int] | None = None) -> None:
        super().__init__()
        self.name = name
        self.log = log
        self.fails = fails if fails is not None else {}

    def on_start(self) -> None:
        self.log.append(self.name)
        if self.fails.get(self.name, 0) > 0:
            self.fails[self.name] -= 1
            raise ConnectionError(f"{self.name} cannot start")

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError(f"{self.name} crashed on purpose")
        return "pong"


class ExitInInit(SupervisedActor):
    """Raises SystemExit from its constructor while `plan['fail_inits']` > 0."""

    def __init__(self, plan: dict[str, int]) -> None:
        super().__init__()
        plan["inits"] = plan.get("inits", 0) + 1
        if plan.get("fail_inits", 0) > 0:
            plan["fail_inits"] -= 1
            raise SystemExit("exit from __init__")

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crashed on purpose")
        return "pong"
