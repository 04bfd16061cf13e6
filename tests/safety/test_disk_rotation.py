"""F20: the disk alert rotates the logs once per incident, on the first crossing of 90 %, even
when one sample jumps straight past 95/98 % (only rotated logs are cleaned up at 98 %); and its
action_taken never claims a rotation that did not happen."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from loguru import logger

from actors.monitors import DISK_EMERGENCY, DISK_NO_COLD_WRITES, DISK_OK, ResourceMonitor
from tests.safety.test_actor_monitors import FakeClock, Sampler, make_world, wait_samples  # noqa: F401
from tests.waiting import eventually


@pytest.fixture
def alerts() -> Iterator[list[dict[str, Any]]]:
    found: list[dict[str, Any]] = []
    handler = logger.add(lambda m: found.append(dict(m.record["extra"])) if m.record["extra"].get("event") == "disk_high"
                         else None, level="INFO")
    yield found
    logger.remove(handler)


def test_f20_jump_past_95_still_rotates_once_then_cleanup_finds_the_rotated_log(make_world, tmp_path, alerts):
    logs = tmp_path / "data" / "logs"
    logs.mkdir(parents=True)
    (logs / "warden.log").write_text("x" * 100)

    def rotate() -> None:  # what a real hook does: the active log becomes a rotated one
        (logs / "warden.log").rename(logs / "warden.2026-01-01_00-00-00_000000.log")
        (logs / "warden.log").write_text("")

    world = make_world(f"[node]\ndata_dir = '{tmp_path / 'data'}'\n")
    clock = FakeClock()
    sampler = Sampler(clock)
    monitor = world.start(ResourceMonitor, world.services, 0.01, sampler=sampler, clock=clock, rotate_logs=rotate)

    def level() -> str:
        return monitor.status_details().get()["disk_level"]

    sampler.disk = 96.0  # one write took it from 50 % past 95 % between two samples
    eventually(lambda: level() == DISK_NO_COLD_WRITES)
    wait_samples(monitor)
    assert (logs / "warden.2026-01-01_00-00-00_000000.log").exists(), "rotated on the first crossing, at 96 %"
    assert "logs rotated" in alerts[0]["action_taken"]
    sampler.disk = 98.5
    eventually(lambda: level() == DISK_EMERGENCY)
    eventually(lambda: sorted(p.name for p in logs.iterdir()) == ["warden.log"],
               what="98 %: the rotated (formerly active) log is deleted, the fresh active log kept")
    assert len(alerts) == 2, "one alert per level change, one rotation per incident"


def test_f20_alert_says_when_there_is_no_rotation_hook(make_world, tmp_path, alerts):
    world = make_world(f"[node]\ndata_dir = '{tmp_path}'\n")
    clock = FakeClock()
    sampler = Sampler(clock)
    monitor = world.start(ResourceMonitor, world.services, 0.01, sampler=sampler, clock=clock)
    sampler.disk = 91.0
    eventually(lambda: alerts)
    assert "not rotated" in alerts[0]["action_taken"] and "logs rotated" not in alerts[0]["action_taken"]
    sampler.disk = 50.0
    eventually(lambda: monitor.status_details().get()["disk_level"] == DISK_OK)
