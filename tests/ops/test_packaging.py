"""Issue 15, dependencies: `make run` installs the runtime only (it used to install `.[dev]`,
~250 MB mostly matplotlib); chaos plotting is the `chaos` extra; `make test` gets what it needs."""
from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def requirements(value: str) -> set[str]:
    return {re.split(r"[<>=!~ \[]", line.strip(), maxsplit=1)[0].lower() for line in value.splitlines() if line.strip()}


def installs(target: str) -> list[str]:
    """The pip installs `make TARGET` would run from a fresh clone (make -n -B: print, run nothing)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, timeout=30,
                         check=True).stdout
    return [line.split(" -e ", 1)[1] for line in out.splitlines() if "pip install" in line and " -e " in line]


def test_issue15_make_run_installs_runtime_dependencies_only():
    assert installs("run") == ["."]


def test_issue15_make_chaos_adds_plotting_and_make_test_adds_the_test_tools():
    assert installs("chaos")[-1] == "'.[chaos]'"
    assert installs("test") == ["'.[dev,chaos]'"]  # its chaos and soak smokes draw timelines


def test_issue15_matplotlib_is_only_in_the_chaos_extra():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    runtime = requirements(cfg["options"]["install_requires"])
    extras = {name: requirements(value) for name, value in cfg["options.extras_require"].items()}
    assert "matplotlib" not in runtime | extras["dev"]
    assert "matplotlib" in extras["chaos"]
    assert {"pytest", "pyyaml", "hypothesis", "freezegun"} <= extras["dev"]
    assert "rich" in runtime  # status --watch
