"""Strategy crash → replacement running, under a dynamic supervisor of 1,000 children.

Also measures what the crash costs the bystanders: the ping round-trip of another child
while restarts are under way, against the same round-trip with no crash.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from bench.stats import summary_ms
from supervision import ChildSpec, SupervisedActor, Supervisor

_started: dict[int, float] = {}
_started_lock = threading.Lock()


class BenchChild(SupervisedActor):
    def on_start(self) -> None:
        with _started_lock:
            _started[self.generation] = time.perf_counter()

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("bench crash")
        return "pong"


def _wait_started(generation_after: int, sup: Any, child_id: str, timeout: float = 5.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gen = sup.current_generation(child_id).get()
        if gen is not None and gen > generation_after:
            with _started_lock:
                return _started[gen]
        time.sleep(0.0002)
    raise TimeoutError(f"{child_id} was not replaced within {timeout}s")


def run(children: int = 1000, crashes: int = 200) -> dict[str, Any]:
    ref = Supervisor.start(strategy="dynamic", intensity=crashes * 2, period=600, intensity_scope="child", name="bench")
    sup = ref.proxy()
    try:
        for i in range(children):
            sup.start_child(ChildSpec(f"c{i}", BenchChild)).get()
        bystander = sup.which_children().get()[children - 1]["ref"]
        quiet_pings = []
        for _ in range(crashes):
            t0 = time.perf_counter()
            bystander.ask("ping")
            quiet_pings.append(time.perf_counter() - t0)
        restart_s, busy_pings = [], []
        for k in range(crashes):
            child_id = f"c{k % (children - 1)}"
            before = sup.current_generation(child_id).get()
            victim = _ref_of(sup, child_id)
            t0 = time.perf_counter()
            victim.tell("crash")
            p0 = time.perf_counter()
            bystander.ask("ping")
            busy_pings.append(time.perf_counter() - p0)
            restart_s.append(_wait_started(before, sup, child_id) - t0)
        return {
            "children": children,
            "crashes": crashes,
            "crash_to_replacement": summary_ms(restart_s),
            "bystander_ping_quiet": summary_ms(quiet_pings),
            "bystander_ping_during_crash": summary_ms(busy_pings),
        }
    finally:
        ref.stop(timeout=30)


def _ref_of(sup: Any, child_id: str) -> Any:
    for child in sup.which_children().get():
        if child["id"] == child_id:
            return child["ref"]
    raise KeyError(child_id)
