"""Issue 14, "the checker is itself tested": the planted-bug switch is inert when off and refused
outside the chaos harness (the soaks that prove each bug is caught: `make soak-planted`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from actors import planted
from actors.planted import BUGS, PlantedBugRefused, configured
from chaos.soak.planted import PLANTED

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WARDEN_PLANTED_BUG", "WARDEN_CHAOS_HOOKS")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def _active_in_fresh_process(**extra: str) -> list[str]:
    code = "from actors import planted; print(','.join(b for b in planted.BUGS if planted.on(b)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(**extra), capture_output=True, text=True,
                         timeout=60, check=True)
    return [b for b in out.stdout.strip().split(",") if b]


def test_planted_bugs_inert_when_off() -> None:
    assert configured({}) == "", "no WARDEN_PLANTED_BUG: no planted bug"
    assert configured({"WARDEN_CHAOS_HOOKS": "1"}) == "", "chaos hooks alone plant nothing"
    assert _active_in_fresh_process() == [], "a daemon started without WARDEN_PLANTED_BUG runs no planted bug"
    assert not any(planted.on(bug) for bug in BUGS), "this test process runs no planted bug"


def test_planted_bug_refused_without_chaos_hooks() -> None:
    with pytest.raises(PlantedBugRefused, match="WARDEN_CHAOS_HOOKS=1"):
        configured({"WARDEN_PLANTED_BUG": "resend_without_lookup"})
    assert _active_in_fresh_process(WARDEN_PLANTED_BUG="resend_without_lookup") == [], \
        "without the chaos hooks the bug stays off even where the variable is set"


def test_unknown_planted_bug_refused_by_name() -> None:
    with pytest.raises(PlantedBugRefused, match="'typo'.*resend_without_lookup"):
        configured({"WARDEN_PLANTED_BUG": "typo", "WARDEN_CHAOS_HOOKS": "1"})


def test_planted_bug_active_only_under_the_chaos_hooks() -> None:
    for bug in BUGS:
        assert _active_in_fresh_process(WARDEN_PLANTED_BUG=bug, WARDEN_CHAOS_HOOKS="1") == [bug], \
            f"{bug}: exactly that one bug is on"


def test_daemon_refuses_to_start_with_a_planted_bug_outside_the_harness(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(tmp_path / "none.toml")], cwd=ROOT,
                          env=_env(WARDEN_PLANTED_BUG="exit_ignores_fence"), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2, f"refused before anything starts (exit 2), got {proc.returncode}: {proc.stderr}"
    assert "WARDEN_PLANTED_BUG=exit_ignores_fence is refused" in proc.stderr


def test_every_planted_bug_has_a_soak_that_must_catch_it() -> None:
    assert set(PLANTED) == set(BUGS), "each planted bug has its fixed seed and expected invariant"
    for run in PLANTED.values():
        assert run.invariant in ("I1", "I2", "I3", "I4", "I5")
        assert run.minutes <= 10, f"{run.bug}: caught within 10 minutes (issue 14)"
