"""The soak world: the real daemon, a real redis-server and the simulated exchange, under the nemesis.

`run_soak(settings)` builds the world on the chaos harness (`chaos.harness.Cluster`), starts
the daemon as its own process, and runs four bounded loops until the end of the run:

- the nemesis applies the seeded schedule (`nemesis.schedule`) at its offsets and heals each
  fault after its duration (`chaos.soak.faults`);
- the daemon keeper records every daemon process; one that exits without a signal from the
  harness is restarted after a second, as systemd would (and the checker flags it);
- the sampler polls `/status` (gate, mode, readiness, feed status per symbol);
- the market follows the seeded dips and rallies (`nemesis.market_moves`) on top of its walk.

Then every fault is healed, entries end (`until`), the engine gets a bounded settle window
(recvWindow plus settle: late requests can no longer land), and the end state is read. The
result is a `Recording`: the only input of `chaos.soak.checker.check`.
"""

from __future__ import annotations

import heapq
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import requests

from chaos.harness import Cluster, StrategySpec, Timeout, wait_for
from chaos.soak import faults as soak_faults
from chaos.soak.nemesis import KINDS, FaultEvent, market_moves, schedule
from chaos.soak.recording import AppliedFault, DaemonRun, Final, Recording, Sample, StrategyInfo
from runtime.store.disk_buffer import DiskBuffer
from runtime.store.errors import CorruptState, StoreUnavailable

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
ACCOUNTS = ("alpha", "beta")
START_PRICE = 100_000.0
QUANTITY = 0.004  # 400 USDT a position: half of it (REDUCED mode) stays above MIN_NOTIONAL (100) after a dip
VOLATILITY = 0.0002  # per market tick (50 ms): stops 0.2-0.6 % under the market are crossed often
TRADER = "chaos.soak.strategies:Trader"
SETTLE_S = 60.0  # bound on waiting for the engine to settle at the end
LATE_S = 7.0  # recvWindow (5 s) plus a margin: after this, no late request can still land
EXTRA_TOML = """[risk]
capital = 1000000000.0
max_trade_loss_pct = 100.0
max_session_loss_pct = 100.0
max_consecutive_losses = 1000000
"""


@dataclass(frozen=True)
class Settings:
    seed: int
    minutes: float = 10.0
    strategies: int = 50
    out: Path = Path("var/soak")
    kinds: tuple[str, ...] | None = None  # restrict the catalogue (the smoke soak)
    tmpfs: bool = True  # data_dir on a small tmpfs, so "disk nearly full" is real
    planted: str | None = None  # a planted bug the daemon runs with (actors.planted): the checker's own test
    settle_s: float = SETTLE_S  # bound on the end's settle wait

    @property
    def duration_s(self) -> float:
        return self.minutes * 60.0

    @property
    def directory(self) -> Path:
        return self.out / str(self.seed)


def build_strategies(seed: int, count: int, start: float, duration_s: float, cue_dir: Path) -> list[StrategySpec]:
    """`count` strategies over SYMBOLS and ACCOUNTS: a third `scheduled`, the rest `Trader` round-trippers."""
    rng = random.Random(f"warden-soak-strategies-{seed}")
    specs = []
    for i in range(count):
        symbol, account = SYMBOLS[i % len(SYMBOLS)], ACCOUNTS[(i // len(SYMBOLS)) % len(ACCOUNTS)]
        if i % 3 == 2:
            buy = start + rng.uniform(3.0, max(4.0, duration_s * 0.4))
            sell = buy + rng.uniform(5.0, max(6.0, duration_s * 0.4))
            specs.append(StrategySpec(f"s{i:02d}", symbol=symbol, account=account, quantity=QUANTITY,
                                      buy_at=_iso(buy), sell_at=_iso(min(sell, start + duration_s - 5.0)),
                                      stop_loss=round(START_PRICE * (1 - rng.uniform(0.002, 0.01)), 1)))
        else:
            specs.append(StrategySpec(f"t{i:02d}", symbol=symbol, account=account, cls=TRADER, params={
                "qty": QUANTITY, "stop_pct": round(rng.uniform(0.15, 0.6), 3),
                "hold_s": round(rng.uniform(3.0, 20.0), 1), "step_s": round(rng.uniform(1.0, 3.0), 2),
                "start_after_s": round(rng.uniform(1.0, 5.0), 2), "until": start + duration_s,
                "cue_dir": str(cue_dir)}))
    return specs


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class World:
    """The live soak: the cluster plus the harness's record of everything it did to it."""

    def __init__(self, settings: Settings, cluster: Cluster, tmpfs: bool) -> None:
        self.settings = settings
        self.cluster = cluster
        self.tmpfs = tmpfs
        self.cue_dir = cluster.workdir / "cues"
        self.symbols = list(cluster.symbols)
        self.strategy_ids = [s.id for s in cluster.strategies]
        self.runs: list[DaemonRun] = []
        self.samples: list[Sample] = []
        self.prices: dict[str, list[tuple[float, float]]] = {s: [] for s in self.symbols}
        self.applied: list[AppliedFault] = []
        self.stop = threading.Event()
        self._lock = threading.RLock()
        self._held_down = 0  # daemon faults in progress: the keeper does not restart meanwhile
        self._restart_at: float | None = None
        self.started = 0.0  # wall time of offset 0 of the schedule

    # --- the daemon ---------------------------------------------------------------------

    def start_daemon(self) -> None:
        with self._lock:
            self.cluster.start_daemon(wait_ready=False)
            self.runs.append(DaemonRun(time.time(), log=f"daemon-{self.cluster.daemon_starts}.log"))
            self._restart_at = None

    def signal_daemon(self, sig: signal.Signals) -> bool:
        """Send `sig` to a running daemon and record it; the keeper will not restart it meanwhile."""
        with self._lock:
            proc = self.cluster.daemon
            if proc is None or proc.poll() is not None:
                return False
            self.runs[-1].signal = sig.name
            self._held_down += 1
            proc.send_signal(sig)
            return True

    def restart_daemon_after_exit(self) -> None:
        """A daemon fault heals: wait (bounded) for the process to end, then start a new one."""
        proc = self.cluster.daemon
        try:
            if proc is not None:
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
                    self.runs[-1].log += " (SIGKILLed after 60 s: SIGTERM did not end it)"
            self._record_exit()
            self.start_daemon()
        finally:
            with self._lock:
                self._held_down -= 1

    def _record_exit(self) -> None:
        with self._lock:
            proc, run = self.cluster.daemon, self.runs[-1] if self.runs else None
            if proc is None or run is None or run.end is not None or proc.poll() is None:
                return
            run.end, run.exit_code = time.time(), proc.returncode
            if run.signal is None:
                self._restart_at = time.monotonic() + 1.0

    def keep_daemon(self) -> None:
        """Record every exit; restart a daemon that exited by itself (systemd's Restart=always)."""
        while not self.stop.wait(0.1):
            self._record_exit()
            with self._lock:
                if self._restart_at is not None and time.monotonic() >= self._restart_at and not self._held_down:
                    self.start_daemon()

    def daemon_ready(self) -> bool:
        sample = self._sample()
        return sample.ready and all(v == "LIVE" for v in sample.feeds.values())

    # --- observation --------------------------------------------------------------------

    def _sample(self) -> Sample:
        status = self.cluster.status_or_none()
        now = time.time()
        if status is None:
            return Sample(now, False)
        states, feeds = {}, {}
        stack = [status.get("tree") or {}]
        while stack:
            node = stack.pop()
            states[node.get("id")] = node.get("state")
            if str(node.get("id", "")).startswith("feed:"):
                feeds[node["id"].removeprefix("feed:")] = str((node.get("details") or {}).get("status"))
            stack.extend(node.get("children", []))
        ready = states.get("execution-engine") == "running" and states.get("position-manager") == "running"
        gate = status.get("gate") or {}
        return Sample(now, True, ready, bool(gate.get("open")), str(status.get("mode")), feeds)

    def sample_status(self) -> None:
        while not self.stop.wait(0.25):
            self.samples.append(self._sample())

    def sample_prices(self) -> None:
        while not self.stop.wait(0.05):
            now = time.time()
            for symbol in self.symbols:
                self.prices[symbol].append((now, float(self.cluster.exchange.price(symbol))))

    def move_market(self, t0: float) -> None:
        """The seeded dips and rallies: down (or up) over `steps` ticks, then back."""
        for move in market_moves(self.settings.seed, self.settings.duration_s, symbols=len(self.symbols)):
            if self.stop.wait(max(0.0, t0 + move.start_s - time.monotonic())):
                return
            symbol = self.symbols[move.symbol_index]
            price = float(self.cluster.exchange.price(symbol))
            low = price * (1 + move.pct / 100.0)
            half = max(2, move.steps // 2)
            path = [price + (low - price) * i / half for i in range(1, half + 1)]
            self.cluster.exchange.script_prices(symbol, path + path[-2::-1] + [price])

    # --- operator -----------------------------------------------------------------------

    def enable_paused(self, reason: str) -> None:
        """The operator's word after a token is restored: enable every paused strategy."""
        status = self.cluster.status_or_none() or {}
        paused, stack = [], [status.get("tree") or {}]
        while stack:  # one /status read, not one per strategy
            node = stack.pop()
            if str(node.get("id", "")).startswith("strategy:") and (node.get("details") or {}).get("status") == "paused":
                paused.append(node["id"].removeprefix("strategy:"))
            stack.extend(node.get("children", []))
        for strategy in paused:
            try:
                self.cluster.command("strategy-enable", id=strategy, reason=reason)
            except (AssertionError, requests.RequestException):
                pass  # the daemon may be down right now; the final heal asks again

    # --- the nemesis --------------------------------------------------------------------

    def run_nemesis(self, events: list[FaultEvent], t0: float) -> None:
        """Apply every event at its offset and heal it after its duration; heal the rest at the end."""
        pending: list[tuple[float, int, str, Any]] = [(e.start_s, e.index, "start", e) for e in events]
        heapq.heapify(pending)
        while pending and not self.stop.is_set():
            at, index, what, item = heapq.heappop(pending)
            if self.stop.wait(max(0.0, t0 + at - time.monotonic())):
                heapq.heappush(pending, (at, index, what, item))
                break
            if what == "start":
                heal_at = self._start_fault(item)
                if heal_at is not None:
                    heapq.heappush(pending, (item.start_s + item.duration_s, index, "heal", heal_at))
            else:
                self._heal(*item)
        for _, _, what, item in sorted(pending):
            if what == "heal":
                self._heal(*item)

    def _start_fault(self, event: FaultEvent) -> tuple[AppliedFault, Callable[[], None]] | None:
        kind = KINDS[event.kind]
        status, note, heal = soak_faults.apply(self, event)
        now = time.time()
        fault = AppliedFault(event.index, event.kind, now, now, status, dict(event.params), note,
                             kind.blocks_orders, kind.blinds, kind.hard_shutdown)
        self.applied.append(fault)
        print(f"soak: +{now - self.started:6.1f}s {event.kind:<15} {status}{' ' + note if note else ''}", flush=True)
        if heal is None:
            fault.end = now + event.duration_s
            return None
        return fault, heal

    def _heal(self, fault: AppliedFault, heal: Callable[[], None]) -> None:
        try:
            heal()
        except Exception as exc:  # noqa: BLE001 - recorded; the final heal tries again
            fault.note += f" heal failed: {type(exc).__name__}: {exc}"
        fault.end = time.time()

    # --- the end ------------------------------------------------------------------------

    def heal_everything(self) -> bool:
        """Whatever is still broken is mended: Redis up and answering, no simulator fault, daemon ready."""
        redis = self.cluster.redis
        if redis.pid is not None:
            os.kill(redis.pid, signal.SIGCONT)
        else:
            redis.restart()
        self.cluster.exchange.clear_faults()
        with self._lock:
            proc = self.cluster.daemon
            if proc is None or proc.poll() is not None:
                self._record_exit()
                if not self._held_down:
                    self.start_daemon()
        try:
            wait_for(self.daemon_ready, 90, "daemon ready with every feed LIVE after the faults healed")
        except Timeout:
            return False
        self.enable_paused("soak end: faults healed")
        return True

    def settled(self) -> bool:
        store = self.cluster.store
        assert store is not None
        try:
            if store.unsettled():
                return False
            return all(not (r := store.load_runtime(s)) or not r.pending_order for s in self.strategy_ids)
        except (StoreUnavailable, CorruptState):
            return False

    def wait_settled(self, timeout: float, quiet_s: float) -> bool:
        """Every order settled and no new request at the venue for `quiet_s` (late ones can no longer land)."""
        deadline = time.monotonic() + timeout
        size, since = len(self.cluster.exchange.ledger()), time.monotonic()
        while time.monotonic() < deadline:
            now_size = len(self.cluster.exchange.ledger())
            if now_size != size:
                size, since = now_size, time.monotonic()
            elif time.monotonic() - since >= quiet_s and self.settled():
                return True
            time.sleep(0.2)
        return False

    def read_final(self, healed: bool) -> Final:
        store = self.cluster.store
        assert store is not None
        runtimes: dict[str, dict[str, Any]] = {}
        for strategy in self.strategy_ids:
            try:
                runtime = store.load_runtime(strategy)
            except CorruptState as exc:
                runtimes[strategy] = {"corrupt": str(exc)}
                continue
            runtimes[strategy] = {} if runtime is None else {
                "position": runtime.position.value, "quantity": runtime.quantity, "status": runtime.status.value,
                "pending_order": runtime.pending_order, "reason": runtime.reason}
        venue = {s: float(self.cluster.exchange.position(s)["positionAmt"]) for s in self.symbols}
        unsettled = [e.client_order_id for e in store.unsettled()]
        return Final(time.time(), runtimes, venue, unsettled, healed)


def run_soak(settings: Settings, log: Callable[[str], None] = print) -> Recording:
    directory = settings.directory
    if directory.exists():
        shutil.rmtree(directory / "work", ignore_errors=True)
    workdir = directory / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    data_dir.mkdir()
    tmpfs = settings.tmpfs and _mount_tmpfs(data_dir)
    events = schedule(settings.seed, settings.duration_s, strategies=settings.strategies, symbols=len(SYMBOLS),
                      kinds=settings.kinds)
    started = time.time() + 15.0  # the daemon's start and the feeds' first LIVE come before the schedule
    (workdir / "cues").mkdir()
    specs = build_strategies(settings.seed, settings.strategies, started, settings.duration_s, workdir / "cues")
    recording = Recording(settings.seed, started, settings.duration_s, list(SYMBOLS),
                          [StrategyInfo(s.id, s.symbol, s.account, "class" if s.cls else "scheduled") for s in specs])
    try:
        with Cluster(f"soak-{settings.seed}", specs, symbols=SYMBOLS, start_price=START_PRICE, extra_toml=EXTRA_TOML,
                     workdir=workdir, data_dir=data_dir,
                     daemon_env={"WARDEN_PLANTED_BUG": settings.planted} if settings.planted else None) as cluster:
            cluster.exchange.configure_market(volatility=VOLATILITY)
            world = World(settings, cluster, tmpfs)
            _run(world, events, recording, log)
    finally:
        if tmpfs:
            _umount(data_dir, directory / "data")
    return recording


def _run(world: World, events: list[FaultEvent], recording: Recording, log: Callable[[str], None]) -> None:
    cluster = world.cluster
    world.start_daemon()
    threads = [threading.Thread(target=fn, name=f"soak-{fn.__name__}", daemon=True)
               for fn in (world.keep_daemon, world.sample_status, world.sample_prices)]
    for thread in threads:
        thread.start()
    try:
        wait_for(world.daemon_ready, 60, "daemon ready with every feed LIVE")
        world.stop.wait(max(0.0, recording.started - time.time()))  # the schedule's offsets count from here
        world.started = recording.started
        t0 = time.monotonic()
        market = threading.Thread(target=world.move_market, args=(t0,), name="soak-market", daemon=True)
        market.start()
        log(f"soak: seed {world.settings.seed}: {len(events)} faults over {world.settings.duration_s:.0f} s, "
            f"{len(world.strategy_ids)} strategies")
        world.run_nemesis(events, t0)
        world.stop.wait(max(0.0, t0 + world.settings.duration_s - time.monotonic()))
        healed = world.heal_everything()
        if not world.wait_settled(world.settings.settle_s, LATE_S):
            log(f"soak: not settled {world.settings.settle_s:.0f} s after the end: the checker will say what is left")
        cluster.exchange.pause_market()  # nothing moves (or triggers) after the end state is read
        recording.final = world.read_final(healed)
        world.signal_daemon(signal.SIGTERM)
        if cluster.daemon is not None:
            try:
                cluster.daemon.wait(60)
            except subprocess.TimeoutExpired:
                cluster.daemon.kill()
                cluster.daemon.wait(10)
        world._record_exit()
    finally:
        world.stop.set()
        for thread in threads:
            thread.join(5)
    _collect(world, recording)


def _collect(world: World, recording: Recording) -> None:
    cluster = world.cluster
    recording.faults = world.applied
    recording.daemon_runs = world.runs
    recording.samples = world.samples
    recording.prices = world.prices
    recording.ledger = cluster.exchange.ledger()
    engine = cluster.exchange.engine
    with engine.lock:  # the venue's final word on each order (a partial's rest fills after its request)
        recording.orders = {str(oid): {"status": o["status"], "executedQty": o["executedQty"]}
                            for oid, o in engine.account.orders.items()}
    assert cluster.store is not None
    try:
        recording.journal = [{k: v for k, v in asdict(e).items() if k != "entry_id"} for e in cluster.store.entries()]
    except StoreUnavailable as exc:
        recording.log_events.append({"event": "soak_journal_unreadable", "details": str(exc)})
    records, _corrupt = DiskBuffer(cluster.data_dir / "buffer" / "orders.jsonl").read()
    recording.buffer = [{"kind": r.kind, "at": r.at, "data": r.data} for r in records]
    recording.log_events = [{"at": int(line["timestamp"]) / 1e9, "level": line.get("level"),
                             "event": line.get("event"), "node": line.get("node") or line.get("component"),
                             "details": line.get("details")}
                            for line in cluster.log_lines() if line.get("level") in ("ERROR", "CRITICAL")]


def _mount_tmpfs(path: Path, size: str = "256m") -> bool:
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                          capture_output=True, timeout=15, check=False)
    return proc.returncode == 0


def _umount(path: Path, keep: Path) -> None:
    """Copy the logs and the disk buffer out of the tmpfs, then unmount it."""
    (path / "soak-disk-filler.bin").unlink(missing_ok=True)
    shutil.copytree(path, keep, dirs_exist_ok=True)
    if subprocess.run(["umount", str(path)], capture_output=True, timeout=15, check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=15, check=False)
