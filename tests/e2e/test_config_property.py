"""Issue 13 property: for any mutation of a good config, check-config exits 0 and the daemon
starts (and keeps running until SIGTERM, then exits 0), or check-config exits 2 with every
problem naming its field and line, and the daemon exits 2 too. Never a traceback."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chaos.harness import free_port
from runtime.cli import main as cli_main
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

BASE = """\
[node]
name = "prop"
data_dir = "{data_dir}"
[status]
bind = "127.0.0.1:{port}"
[venue]
kind = "sim"
order_timeout_s = 2.0
[feeds]
symbols = ["BTCUSDT", "ETHUSDT"]
heartbeat_timeout_s = 2.0
stale_after_ms = 1000
[risk]
capital = 10000.0
[supervision]
intensity = 3
period_s = 600.0
[[strategies]]
id = "p1"
kind = "scheduled"
symbol = "BTCUSDT"
quantity = 0.01
buy_at = "+1d"
sell_at = "+2d"
stop_loss = 95000.0
params = {{ note = "x" }}
[[strategies]]
id = "p2"
kind = "scheduled"
symbol = "ETHUSDT"
quantity = 0.5
buy_at = "+1h"
sell_at = "+2h"
"""
NASTY = [
    "inf", "-inf", "nan", "1e400", "1" + "0" * 400, "-1", "0", "0.0001", "3", "1.5", "true", "[]", "{}", '""',
    '"x"', '"BTCUSDT"', '"+5s"', '"+99999999999d"', '"+' + "9" * 400 + 's"', '"0001-01-01T00:30:00+01:00"',
    "1979-05-27T07:32:00Z", "1979-05-27", '"0.0.0.0:8765"', '"\\u001b[31mred"', '"sim"',
    '"binance_futures"', '"nope_module:Cls"', "[" * 60 + "]" * 60, '{ a = nan }', '{ a = [1, inf] }',
]
# values each key accepts: mutations that keep the config good exercise the start path
GOOD = {
    "name": ['"other-node"'], "order_timeout_s": ["0.5", "30"], "heartbeat_timeout_s": ["5", "0.5"],
    "stale_after_ms": ["250"], "capital": ["5000", "1e9"], "intensity": ["0", "10"], "period_s": ["60"],
    "quantity": ["0.02", "1"], "buy_at": ['"+2d"', '"2099-01-01T00:00:00Z"'], "sell_at": ['"+300d"'],
    "stop_loss": ["1.0", "1e12"], "params": ['{ a = [1, "b"], c = { d = true }, e = -2.5 }'],
    "symbols": ['["BTCUSDT", "ETHUSDT", "SOLUSDT"]'], "id": ['"p9"'],
}
# every key line except data_dir (a mutated data_dir could land anywhere on this machine)
MUTABLE = [i for i, line in enumerate(BASE.splitlines()) if " = " in line and not line.startswith("data_dir")]
PROBLEM_RE = re.compile(r"^\S+\.toml:\d+: (\S+: )?.+$|^\S+\.toml: \S+: is required")



GOOD_LINES = [i for i in MUTABLE if BASE.splitlines()[i].split(" = ", 1)[0] in GOOD]
mutation = st.one_of(
    st.tuples(st.just("replace"), st.sampled_from(MUTABLE), st.sampled_from(NASTY)),
    st.sampled_from(GOOD_LINES).flatmap(lambda i: st.tuples(
        st.just("replace"), st.just(i), st.sampled_from(GOOD[BASE.splitlines()[i].split(" = ", 1)[0]]))),
    st.tuples(st.just("delete"), st.sampled_from(MUTABLE), st.just("")),
    st.tuples(st.just("duplicate"), st.sampled_from(MUTABLE), st.just("")),
)


def mutate(text: str, edits: list[tuple[str, int, str]]) -> str:
    lines = text.splitlines()
    for op, index, value in edits:
        if op == "replace":
            key = lines[index].split(" = ", 1)[0]
            lines[index] = f"{key} = {value}"
        elif op == "delete":
            lines[index] = "# deleted"
        else:
            lines[index] = lines[index] + "\n" + lines[index]
    return "\n".join(lines) + "\n"


def daemon_starts_and_stays_up(path: Path, data_dir: Path) -> None:
    log_path = data_dir.parent / "daemon.out"
    with open(log_path, "wb") as log:
        daemon = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--config", str(path)], cwd=ROOT,
                                  stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            def node_events() -> list[str]:
                """The node's own: the degradation actor and the state-builder log `started` mid-start too."""
                text = log_path.read_text(errors="replace")
                lines = [json.loads(line) for line in text.splitlines() if line.startswith('{"timestamp"')]
                return [line["event"] for line in lines if line.get("component") == "node"]

            eventually(lambda: daemon.poll() is not None or "started" in node_events(), 60, 0.05, "daemon started")
            assert daemon.poll() is None, \
                f"check-config said ok, so the daemon must start: {log_path.read_text(errors='replace')[-1500:]}"
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=60) == 0, log_path.read_text(errors="replace")[-1500:]
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait(10)
    text = log_path.read_text(errors="replace")
    assert "Traceback" not in text.replace('"traceback"', ""), text[-1500:]


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(edits=st.lists(mutation, min_size=1, max_size=2))
def test_issue13_mutated_config_starts_or_is_refused_with_field_and_line(edits, capsys):
    with tempfile.TemporaryDirectory(prefix="prop-") as tmp:
        data_dir = Path(tmp) / "data"
        text = mutate(BASE.format(data_dir=data_dir, port=free_port()), edits)
        path = Path(tmp) / "c.toml"
        path.write_text(text, encoding="utf-8")
        capsys.readouterr()
        code = cli_main(["check-config", str(path)])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        assert code in (0, 2), f"check-config exits 0 or 2, got {code}: {err}"
        event(f"check-config exit {code}")
        if code == 2:
            problems = [line for line in err.splitlines() if line and not re.match(r"\d+ problem\(s\) in ", line)]
            assert problems and all(PROBLEM_RE.match(p) for p in problems), f"every problem names field and line: {err}"
            done = subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(path)], cwd=ROOT,
                                  capture_output=True, text=True, timeout=60,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
            assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-1500:]
            assert not data_dir.exists(), "a refused config starts nothing"
        else:
            daemon_starts_and_stays_up(path, data_dir)
