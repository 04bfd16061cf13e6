"""Issue 13 end to end: the real daemon (`python run.py --config …`) refuses a bad start with
exit 2 before anything starts, honours SIGTERM while starting, and its operator commands
are validated against the live tree and breakers and say what happened."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import psutil
import pytest

from chaos.harness import free_port
import requests

from runtime.cli import main as cli_main
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow



def write_config(tmp: Path, *, bind: str | None = None, extra: str = "", strategies: int = 2,
                 strategy_toml: str = "") -> Path:
    bind = bind or f"127.0.0.1:{free_port()}"
    body = "".join(f'[[strategies]]\nid = "s{i}"\nkind = "scheduled"\nsymbol = "BTCUSDT"\nquantity = 0.001\n'
                   f'buy_at = "+1d"\nsell_at = "+2d"\n' for i in range(strategies))
    path = tmp / "warden.toml"
    path.write_text(f'[node]\nname = "e2e"\ndata_dir = "{tmp / "data"}"\n[status]\nbind = "{bind}"\n{extra}\n'
                    f'[venue]\nkind = "sim"\n[feeds]\nsymbols = ["BTCUSDT"]\n{body}{strategy_toml}', encoding="utf-8")
    return path


def run_daemon(path: Path, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(path)], cwd=ROOT, timeout=timeout,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def assert_refused_before_start(done: subprocess.CompletedProcess, tmp: Path, field: str, line: int) -> None:
    assert done.returncode == 2, f"a bad start exits 2 before anything starts: {done.stderr[-800:]}"
    assert f"warden.toml:{line}: {field}:" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp / "data").exists(), "nothing started: no Redis, no logs, no data_dir"


def test_issue13_non_loopback_bind_without_token_exits_2(tmp_path):
    done = run_daemon(write_config(tmp_path, bind=f"0.0.0.0:{free_port()}"))
    assert_refused_before_start(done, tmp_path, "status.bind", 5)
    assert "not loopback, and no token is set" in done.stderr


def test_issue13_busy_port_exits_2_naming_status_bind(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        done = run_daemon(write_config(tmp_path, bind=f"127.0.0.1:{busy.getsockname()[1]}"))
    assert_refused_before_start(done, tmp_path, "status.bind", 5)
    assert "Address already in use" in done.stderr


def test_issue13_unset_token_env_exits_2_before_the_tree_starts(tmp_path):
    done = run_daemon(write_config(tmp_path, extra='token_env = "WARDEN_E2E_UNSET_TOKEN"'))
    assert_refused_before_start(done, tmp_path, "status.token_env", 6)


def test_issue13_user_module_exiting_is_exit_2_in_daemon_and_check_config_alike(tmp_path, capsys):
    (tmp_path / "quitter.py").write_text("import sys\nsys.exit(0)\n")
    path = write_config(tmp_path, strategies=0,
                        strategy_toml='[[strategies]]\nid = "q"\nsymbol = "BTCUSDT"\nclass = "quitter:Q"\n')
    done = run_daemon(path, env={"PYTHONPATH": f"{ROOT}:{tmp_path}"})
    assert_refused_before_start(done, tmp_path, "strategies[0].class", 14)
    sys.path.insert(0, str(tmp_path))
    try:
        assert cli_main(["check-config", str(path)]) == 2
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("quitter", None)
    assert "warden.toml:14: strategies[0].class:" in capsys.readouterr().err


class StartingDaemon:
    """The daemon started in the background with its console (JSON lines) in `daemon.log`."""

    def __init__(self, tmp: Path, path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = tmp / "daemon.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed by stop()
        self.process = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--config", str(path)], cwd=ROOT,
                                        stdout=self._log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def node_events(self) -> list[str]:
        """The node's own events in order (components log `started` too: degradation, state-builder)."""
        lines = [json.loads(line) for line in self.text().splitlines() if line.startswith('{"timestamp"')]
        return [line["event"] for line in lines if line.get("component") == "node"]

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def sigterm(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=90)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


def assert_clean_stop(daemon: StartingDaemon, code: int, left: list[psutil.Process]) -> list[str]:
    text = daemon.text()
    assert code == 0, f"SIGTERM while starting is a clean stop (exit 0), got {code}: {text[-2000:]}"
    _, alive = psutil.wait_procs(left, timeout=30)
    assert not alive, f"nothing the daemon started is left running (embedded Redis...): {alive}"
    events = daemon.node_events()
    assert "stopping" in events and events[-1] == "stopped", f"the graceful stop ran to its end: {events}"
    assert "Traceback" not in text, text[-2000:]
    return events


def test_issue13_sigterm_while_starting_stops_cleanly(tmp_path):
    """The SIGTERM lands while starting, at the last point of the start (every strategy started,
    the node not yet `started`): the test-only start window holds the start there until it does."""
    daemon = StartingDaemon(tmp_path, write_config(tmp_path, strategies=2),
                            env={"WARDEN_CRASH_WINDOW": "strategies_started"})
    try:
        eventually(lambda: daemon.process.poll() is not None or "crash_window" in daemon.node_events(), 90, 0.05,
                   "the start held at strategies_started")
        assert daemon.process.poll() is None, daemon.text()[-2000:]
        left = daemon.descendants()
        code = daemon.sigterm()
    finally:
        daemon.stop()
    events = assert_clean_stop(daemon, code, left)
    assert "start_aborted" in events and "started" not in events and "ready" not in events, \
        f"the start stopped where it was, it did not announce itself started after the SIGTERM: {events}"
    assert events.index("crash_window") < events.index("start_aborted") < events.index("stopping"), events


def test_issue13_sigterm_at_any_moment_of_start_stops_cleanly(tmp_path):
    """SIGTERM as soon as the status server answers, wherever the start is by then (a loaded machine
    decides): either the start is aborted or it completed first and the stop follows; both exit 0."""
    path = write_config(tmp_path, strategies=1000)
    port = int(path.read_text().split("127.0.0.1:")[1].split('"')[0])
    daemon = StartingDaemon(tmp_path, path)
    session = requests.Session()
    session.trust_env = False

    def answering() -> bool:
        try:
            return session.get(f"http://127.0.0.1:{port}/status", timeout=2).status_code == 200
        except requests.RequestException:
            return daemon.process.poll() is not None
    try:
        eventually(answering, 60, 0.01, "status served while the node starts")
        left = daemon.descendants()
        code = daemon.sigterm()
    finally:
        daemon.stop()
    events = assert_clean_stop(daemon, code, left)
    if "started" in events:
        assert "start_aborted" not in events and events.index("started") < events.index("stopping"), events
    else:
        assert "start_aborted" in events and events.index("start_aborted") < events.index("stopping"), events


# ----------------------------------------------------------------------------- commands


@pytest.fixture(scope="module")
def daemon_url(tmp_path_factory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("cmd")
    path = write_config(tmp, strategies=3)
    port = int(path.read_text().split("127.0.0.1:")[1].split('"')[0])
    log = open(tmp / "daemon.log", "wb")  # noqa: SIM115 - closed below
    daemon = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--config", str(path)], cwd=ROOT,
                              stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = f"http://127.0.0.1:{port}"
    session = requests.Session()
    session.trust_env = False

    def ready() -> bool:
        assert daemon.poll() is None, (tmp / "daemon.log").read_text()[-1500:]
        try:
            return session.get(url + "/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False
    try:
        eventually(ready, 60, 0.05, "daemon ready")
        yield url
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(10)
        log.close()


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli_main([*argv, "--reason", "e2e", "--timeout", "30"])
    out, err = capsys.readouterr()
    return code, out, err


def test_issue13_breaker_typo_fails_naming_the_known_breakers(daemon_url, capsys):
    code, out, err = cli(capsys, "breaker", "reset", "rapid_los", "--url", daemon_url)
    assert code == 1, "a typo in a breaker name must not say ok"
    assert "HTTP 404" in err and "no breaker 'rapid_los'" in err and "rapid_loss" in err


def test_issue13_breaker_reset_answer_says_what_happened(daemon_url, capsys):
    code, out, _ = cli(capsys, "breaker", "reset", "rapid_loss", "--url", daemon_url)
    assert code == 0
    assert out.startswith("breaker-reset: applied=True  breaker=rapid_loss  state=CLOSED")


def test_issue13_strategy_command_validated_against_the_tree(daemon_url, capsys):
    code, _, err = cli(capsys, "strategy", "stop", "nosuch", "--url", daemon_url)
    assert code == 1 and "HTTP 404" in err and "known strategies: s0, s1, s2" in err
    code, out, _ = cli(capsys, "strategy", "stop", "s1", "--url", daemon_url)
    assert code == 0 and "strategy=s1" in out and "state=stopped" in out
    code, out, _ = cli(capsys, "strategy", "start", "s1", "--url", daemon_url)
    assert code == 0 and "state=running" in out


def test_issue13_halt_and_resume_are_awaited(daemon_url, capsys):
    code, out, _ = cli(capsys, "halt", "--url", daemon_url)
    assert code == 0 and "applied=True" in out and "trading=HALTED" in out
    code, out, _ = cli(capsys, "resume", "--url", daemon_url)
    assert code == 0 and "applied=True" in out and "trading=HALTED" not in out


def test_issue9_a_symbol_the_venue_does_not_trade_exits_2_before_redis_starts(tmp_path):
    """exchangeInfo is loaded at start: a configured symbol the venue does not list fails the start
    (exit 2, field and line named) before Redis or the tree start, not at the first order."""
    from runtime.simexchange import SimExchange

    exchange = SimExchange(["BTCUSDT"], {"BTCUSDT": 100_000.0}, seed=1, volatility=0.0).start()
    try:
        path = tmp_path / "warden.toml"
        path.write_text(
            f'[node]\nname = "e2e"\ndata_dir = "{tmp_path / "data"}"\n[status]\nbind = "127.0.0.1:{free_port()}"\n'
            f'[venue]\nkind = "binance_futures"\nrest_url = "{exchange.rest_url}"\nws_url = "{exchange.ws_url}"\n'
            'api_key_env = "WARDEN_E2E_KEY"\napi_secret_env = "WARDEN_E2E_SECRET"\n'
            '[feeds]\nsymbols = ["BTCUSDT", "XRPUSDT"]\n', encoding="utf-8")
        done = run_daemon(path, env={"WARDEN_E2E_KEY": exchange.api_key, "WARDEN_E2E_SECRET": exchange.api_secret})
    finally:
        exchange.stop()
    assert done.returncode == 2, f"a symbol the venue does not trade is a bad config: {done.stderr[-800:]}"
    assert "warden.toml:13: feeds.symbols: XRPUSDT: not a TRADING symbol" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "redis").exists(), "refused before the embedded Redis started"
