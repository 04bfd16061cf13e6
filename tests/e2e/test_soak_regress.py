"""Violations the soak found (chaos/soak_seeds.txt) that need the real daemon: its own process,
a real redis-server, the simulated exchange. Named after the seed and the invariant broken.

Orders are counted only after late requests can no longer land (recvWindow 1 s + settle).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from chaos.harness import Cluster, StrategySpec, wait_for
from runtime.exit_codes import EXIT_STOP_DEADLINE
from runtime.store.local_snapshot import read_snapshot
from tests.e2e.test_daemon_start import ROOT, write_config
from tests.e2e.test_store_faults import FAST, LATE_REQUESTS_S, assert_finished_clean


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_seed21_I1_I5_restart_under_redis_outage_takes_back_protective_stops_and_exits_once() -> None:
    """Seed 21: SIGTERM placed protective stops; the daemon restarted while Redis was down (its
    generations then came from the process alone: 1); once Redis came back, the deferred cold
    start found a protective stop triggered meanwhile and its runtime write was refused as stale
    (generation 1 < 1000001 stored): position-manager crashed on every start, root escalated."""
    strategies = [StrategySpec("P1", buy_at="+2s", stop_loss=99_000.0),
                  StrategySpec("P2", buy_at="+2s", stop_loss=97_000.0)]
    with Cluster("seed21-e2e", strategies, settings=FAST) as c:
        assert c.store is not None
        c.store.generations()  # an earlier process reserved a block: this run's writes carry a higher one
        c.start_with_positions("P1", "P2")
        assert c.terminate_daemon() == 0
        assert c.open_stops() == ["P1:p1", "P2:p1"], "SIGTERM leaves a protective stop per position"
        c.redis.kill()
        c.start_daemon()
        c.exchange.set_price("BTCUSDT", 98_000.0)  # P1's protective stop triggers while Redis is down
        wait_for(lambda: len(c.exits("P1")) == 1, 10, "P1's protective stop triggered at the venue")
        c.redis.restart()
        wait_for(lambda: c.gate_open(), 30, "gate reopened after the deferred cold start")
        wait_for(lambda: c.open_stops() == [], 15, "P2's protective stop taken back")
        assert c.daemon is not None and c.daemon.poll() is None and not c.events("root_escalated"), \
            "I5: the daemon never escalates because it started while Redis was down"
        wait_for(lambda: c.runtime("P1").position.value == "exited_by_sl", 10,
                 "P1's runtime records the exit its protective stop made")
        c.exchange.set_price("BTCUSDT", 96_000.0)  # P2's local stop, armed again after the take-back
        wait_for(lambda: c.exits("P2"), 10, "P2's local stop exited")
        time.sleep(LATE_REQUESTS_S)
        first = [e["client_order_id"] for e in c.exits("P1") if e["client_order_id"] in ("P1:p1", "P1:x1")]
        assert first == ["P1:p1"] and [e["client_order_id"] for e in c.exits("P2")] == ["P2:x1"], \
            f"I1: one crossing, one exit per position (a scheduled P1 may buy again after the restart: e2/x2): " \
            f"{[e['client_order_id'] for e in c.exits('P1') + c.exits('P2')]}"
        assert_finished_clean(c)


@pytest.mark.timeout(120)
def test_seed480472_I5_sigterm_before_the_handler_is_installed_is_still_a_clean_stop(tmp_path) -> None:
    """Seed 480472: SIGTERM reached a daemon 0.5 s after it started, while run.py was still loading
    its config (user strategy modules are imported there); Python's default action killed it: -15."""
    (tmp_path / "slow_start.py").write_text(
        "import pathlib, time\nfrom actors.strategy import Strategy\n"
        f"here = pathlib.Path({str(tmp_path)!r})\n"
        "(here / 'importing').touch()\n"
        "deadline = time.monotonic() + 60\n"
        "while not (here / 'go').exists() and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n"
        "class Slow(Strategy):\n    pass\n")
    path = write_config(tmp_path, strategies=0,
                        strategy_toml='[[strategies]]\nid = "slow"\nsymbol = "BTCUSDT"\nclass = "slow_start:Slow"\n')
    daemon = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--config", str(path)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": f"{ROOT}:{tmp_path}"})
    try:
        wait_for(lambda: (tmp_path / "importing").exists(), 60, "run.py loading the config (importing the module)")
        daemon.send_signal(signal.SIGTERM)
        (tmp_path / "go").touch()
        code = daemon.wait(timeout=90)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
    err = daemon.stderr.read().decode(errors="replace") if daemon.stderr else ""
    assert code == 0, f"I5: a SIGTERM while the daemon is still starting is a clean stop (exit 0), got {code}: {err[-1500:]}"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_seed724076_I5_sigterm_in_a_429_flood_exits_by_the_stop_deadline_and_the_next_start_settles() -> None:
    """Seed 724076: SIGTERM came during a 67 s 429 flood; the graceful stop waited for the orders in
    flight, and stop-losses kept waiting out Retry-After (a rate limit is never a failed attempt), so
    the harness SIGKILLed the daemon 60 s later (as systemd's TimeoutStopSec would). With
    `[node] stop_deadline_s` the daemon stops waiting, names what it leaves and exits 4; the order in
    flight stays journaled and pending, and the next start looks it up before sending it again."""
    deadline_s = 8.0
    strategies = [StrategySpec("D1", buy_at="+2s", stop_loss=99_000.0),
                  StrategySpec("D2", buy_at="+2s", stop_loss=97_000.0)]
    with Cluster("seed724076-e2e", strategies, settings={**FAST, "node": f"stop_deadline_s = {deadline_s}"}) as c:
        assert c.store is not None and c.daemon is None
        c.start_with_positions("D1", "D2")
        c.exchange.set_fault("http_429", retry_after_s=5)  # on until cleared: outlasts the deadline
        c.exchange.set_price("BTCUSDT", 98_000.0)  # crosses D1's stop only
        wait_for(lambda: any(e["details"].get("client_order_id") == "D1:x1" for e in c.events("order_retry")), 20,
                 "D1's stop-loss waiting out Retry-After")
        assert c.runtime("D1").pending_order == "D1:x1", "journaled and pending before it was sent"
        assert c.daemon is not None
        c.daemon.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        try:
            code: int | None = c.daemon.wait(deadline_s + 20)
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - sent
        assert code == EXIT_STOP_DEADLINE, \
            f"I5: a graceful stop ends by its deadline ({deadline_s:g} s; waited {took:.1f} s), exit " \
            f"{EXIT_STOP_DEADLINE} with an order in flight; got {code}"
        (said,) = c.events("stop_deadline_passed")
        assert said["level"] == "CRITICAL" and said["details"]["in_doubt"] == ["D1:x1"], said
        assert [u.split(" ")[0] for u in said["details"]["unprotected"]] == ["D1", "D2"], \
            "the flood refused the protective stops too: both positions are named"
        assert "D1:x1" in said["action_taken"] and "D2 (BTCUSDT" in said["action_taken"], "one line says it all"
        assert c.executed("D1:x1") == [] and c.runtime("D1").pending_order == "D1:x1", \
            "the order in flight is left pending for the next start"
        assert c.store.is_unsettled("D1:x1"), "its journal entry stays unsettled: nothing is lost"

        c.exchange.clear_faults("http_429")
        c.start_daemon()
        exits = lambda: [e["client_order_id"] for e in c.exits("D1")]  # noqa: E731 - x1, or x1.<k> if resent
        wait_for(exits, 30, "the next start settled D1:x1 and exited D1")
        wait_for(lambda: c.runtime("D1").position.value == "exited_by_sl", 15, "D1 exited by its stop-loss")
        time.sleep(LATE_REQUESTS_S)
        assert len(exits()) == 1 and exits()[0].startswith("D1:x1") and c.bought("D2"), \
            f"I1: one crossing, one exit; the sibling's position untouched: {exits()}"
        resent = [e for e in c.events("exit_resent") if e["details"].get("client_order_id") == "D1:x1"]
        assert resent, "sent again only after a lookup settled D1:x1 as never executed"
        assert not c.store.is_unsettled("D1:x1"), "its journal entry is settled now"
        assert c.terminate_daemon() == 0


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_seed4242_I3_a_daemon_started_while_redis_is_down_arms_its_stops_from_the_local_snapshot() -> None:
    """Seed 4242 (+1225 s): the daemon was SIGKILLed while Redis was down; the new process had no
    last known runtime (it lived only in the killed process's memory), so no stop was armed until
    Redis came back, and five crossings in that window got no exit. The last known runtimes now
    outlive the process in an fsynced local snapshot (merged with the disk buffer), confirmed
    against the venue's position and armed at a start without Redis."""
    strategies = [StrategySpec("K1", buy_at="+2s", stop_loss=99_000.0),
                  StrategySpec("K2", buy_at="+2s", stop_loss=97_000.0)]
    with Cluster("seed4242-e2e", strategies, settings=FAST) as c:
        c.start_with_positions("K1", "K2")
        c.redis.kill()
        wait_for(lambda: c.gate_open() is False and c.node("monitor:store")["details"]["state"] == "down", 10,
                 "monitor:store saw Redis down")
        c.kill_daemon()  # SIGKILL: no graceful stop, no venue-side protective stops
        assert c.open_stops() == [], "a killed daemon leaves no venue-side stop: only a local one can protect"
        c.start_daemon()  # restarted (as systemd would) while Redis is still down
        c.exchange.set_price("BTCUSDT", 98_000.0)  # crosses K1's stop only
        wait_for(lambda: c.exits("K1"), 10, "K1's stop-loss exited though the daemon started without Redis")
        time.sleep(LATE_REQUESTS_S)
        assert [e["client_order_id"] for e in c.exits("K1")] == ["K1:x1"] and c.exits("K2") == [], \
            f"I3: a stop crossing gives exactly one exit, from the last known runtime, even in a process that " \
            f"started while Redis was down; the sibling's share untouched: " \
            f"{[e['client_order_id'] for e in c.exits('K1') + c.exits('K2')]}"
        assert float(c.exchange.position("BTCUSDT")["positionAmt"]) == pytest.approx(0.01), "K2's 0.01 left"

        c.redis.restart()
        wait_for(lambda: c.gate_open(), 30, "gate reopened after the replay and the deferred cold start")
        wait_for(lambda: c.runtime("K1").position.value == "exited_by_sl", 10,
                 "K1's runtime records the exit (replayed from the disk buffer)")
        assert c.bought("K2")
        time.sleep(LATE_REQUESTS_S)
        assert [e["client_order_id"] for e in c.exits("K1")] == ["K1:x1"] and c.exits("K2") == [], \
            "I1: no second exit once Redis is back"
        assert c.daemon is not None and c.daemon.poll() is None and not c.events("root_escalated")
        assert_finished_clean(c)


SETTLE_S = 12.0  # the default settle window: long enough that "at once" and "after it" cannot be confused
REAL_WINDOWS = {"venue": f"reconcile_every_s = 1.0\nrecv_window_ms = 1000\nsettle_window_s = {SETTLE_S}"}
LATE_AFTER_SETTLE_S = 1.0 + SETTLE_S + 1.0  # recvWindow + settle window + margin: no late request lands after


def _sent(c: Cluster, client_id: str, word: str) -> list[dict]:
    return [e for e in c.events("venue_request") if e["details"].get("path") == "/fapi/v1/order"
            and e["details"].get("method") == "POST" and f"client_order_id={client_id}" in e["details"]["outcome"]
            and word in e["details"]["outcome"]]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_seed724076_I3_exit_deferred_by_the_budget_then_sigkill_is_sent_at_once_after_the_restart() -> None:
    """Seed 724076 (30 min, f7b3ec8): an exit was journaled, but the request budget deferred its
    first attempt locally (nothing left the process); the daemon was SIGKILLed during the deferral.
    The next start could not know that, kept the order UNKNOWN for the whole settle window and the
    stop-loss went 5.9 s late. Now "nothing of it left" is durable: one NOT_FOUND settles it."""
    with Cluster("seed724076-unsent", [StrategySpec("U1", buy_at="+2s", stop_loss=99_000.0)],
                 settings=REAL_WINDOWS) as c:
        c.start_with_positions("U1")
        c.exchange.set_fault("http_429", count=1, retry_after_s=40)  # the next request bans the budget for 40 s
        wait_for(lambda: [e for e in c.events("venue_request") if "http=429" in e["details"]["outcome"]], 20,
                 "a request answered 429: the budget holds every request back for 40 s")
        c.exchange.set_price("BTCUSDT", 98_000.0)  # through U1's stop
        wait_for(lambda: _sent(c, "U1:x1", "not sent"), 20, "U1's stop-loss journaled, its attempt deferred locally")
        pending = c.runtime("U1")
        assert pending.pending_order == "U1:x1", "journaled and pending before any attempt"
        c.kill_daemon()  # during the deferral: nothing of U1:x1 ever left the process
        assert c.executed("U1:x1") == [] and not c.exchange.ledger("U1:x1"), "the venue never saw U1:x1"
        allowed_at = pending.pending_since + SETTLE_S  # venue clock: the earliest resend a lookup-wait allows
        c.start_daemon()
        wait_for(lambda: c.exits("U1"), 30, "the restarted daemon exited U1")
        time.sleep(LATE_AFTER_SETTLE_S)
        exits = c.exits("U1")
        assert len(exits) == 1, \
            f"I1: one crossing, one exit, counted after recvWindow + settle window: {exits}"
        went = exits[0]["time_ms"] / 1000.0
        assert went < allowed_at - 3.0, \
            f"I3: an order that never left the process is settled by one NOT_FOUND and the exit goes at once, " \
            f"not after the settle window: went {allowed_at - went:.1f} s before it ended (needs > 3 s)"
        assert c.duplicates() == 0 and c.lost() == 0


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_seed4242_a_corrupt_local_snapshot_is_a_clear_error_and_the_start_without_redis_goes_on() -> None:
    """The snapshot a start without Redis arms from is unreadable: one ERROR naming the file, no
    crash, no escalation; the daemon behaves as before it existed (stops armed by the deferred
    cold start once Redis is back), and a new snapshot is written."""
    with Cluster("seed4242-corrupt", [StrategySpec("C1", buy_at="+2s", stop_loss=99_000.0)], settings=FAST) as c:
        c.start_with_positions("C1")
        snapshot = c.data_dir / "buffer" / "runtimes.json"
        wait_for(snapshot.exists, 10, "the local snapshot written")
        c.redis.kill()
        wait_for(lambda: c.node("monitor:store")["details"]["state"] == "down", 10, "monitor:store saw Redis down")
        c.kill_daemon()
        snapshot.write_bytes(b"0badc0de {\"format\": 1, torn")
        c.start_daemon()
        (said,) = wait_for(lambda: c.events("last_known_runtimes_unreadable"), 15, "the unreadable snapshot said")
        assert said["level"] == "ERROR" and str(snapshot) in " ".join(said["details"]["problems"]), said
        assert c.tree_state("position-manager") == "running" and not c.events("root_escalated"), \
            "I5: a corrupt snapshot never fails a start"
        assert snapshot.with_name("runtimes.json.corrupt").exists(), "kept for the operator"

        c.redis.restart()
        wait_for(lambda: c.gate_open(), 30, "gate reopened after the deferred cold start")
        c.exchange.set_price("BTCUSDT", 98_000.0)
        wait_for(lambda: c.exits("C1"), 10, "C1's stop, armed by the cold start, exited")
        time.sleep(LATE_REQUESTS_S)
        assert [e["client_order_id"] for e in c.exits("C1")] == ["C1:x1"], "I1: one crossing, one exit"
        wait_for(lambda: "C1" in read_snapshot(snapshot).runtimes, 10, "a new snapshot written after the cold start")
        assert_finished_clean(c)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_seed724076_I1_an_exit_attempt_that_left_still_waits_the_settle_window_after_the_restart() -> None:
    """The converse: the stop-loss's attempt did leave ("unknown" 503, nothing executed, but it
    might execute later), and the daemon was SIGKILLed while it looked the order up. The next start
    still waits out the settle window before it sends again, and there is exactly one exit."""
    with Cluster("seed724076-sent", [StrategySpec("W1", buy_at="+2s", stop_loss=99_000.0)],
                 settings=REAL_WINDOWS) as c:
        c.start_with_positions("W1")
        c.exchange.set_fault("unknown_503", count=1, execute=False)
        c.exchange.set_price("BTCUSDT", 98_000.0)  # through W1's stop
        wait_for(lambda: c.exchange.ledger("W1:x1"), 20, "W1's stop-loss reached the venue, answered 'unknown'")
        pending = c.runtime("W1")
        assert pending.pending_order == "W1:x1", "pending while in doubt"
        c.kill_daemon()  # while it looks W1:x1 up: the send left, so it may still execute
        allowed_at = pending.pending_since + SETTLE_S
        c.start_daemon()
        wait_for(lambda: c.exits("W1"), 60, "the restarted daemon exited W1 once the settle window passed")
        time.sleep(LATE_AFTER_SETTLE_S)
        exits = c.exits("W1")
        assert len(exits) == 1, f"I1: one crossing, one exit, counted after recvWindow + settle window: {exits}"
        went = exits[0]["time_ms"] / 1000.0
        assert went >= allowed_at - 0.5, \
            f"I1: a send that left is never sent again before its settle window ended ({allowed_at - went:.1f} s early)"
        assert c.duplicates() == 0 and c.lost() == 0


@pytest.mark.timeout(150)
def test_seed4242_I3_a_stop_loss_refused_for_credentials_is_armed_again_when_the_operator_resumes() -> None:
    """Seed 4242 (re-run on d9fcb2a), t16#57: its stop-loss crossed during a token expiry and was
    refused -2015 (F3: no retry, the account paused). The operator re-authed and enabled t16, the
    price stayed through the stop, and no stop-loss went until a reconcile happened to re-arm the
    stop 17 s later: the crossing that fired it had disarmed it, and nothing armed it again."""
    slow_reconcile = {"store": "protect_after_s = 2.0",
                      "venue": "reconcile_every_s = 120.0\nrecv_window_ms = 1000\nsettle_window_s = 1.0"}
    with Cluster("seed4242-token", [StrategySpec("A1", buy_at="+2s", stop_loss=99_000.0)],
                 settings=slow_reconcile) as c:
        c.start_with_positions("A1")
        c.exchange.set_fault("token_invalid")
        c.exchange.set_price("BTCUSDT", 98_500.0)  # through the stop while the key is refused
        wait_for(lambda: c.events("account_paused"), 20, "F3: the stop-loss refused -2015 paused the account")
        refused = [e["client_order_id"] for e in c.exchange.ledger() if e.get("action") == "place"]
        c.exchange.clear_faults("token_invalid")
        c.command("strategy-enable", id="A1", reason="operator re-auth")
        wait_for(lambda: c.exits("A1"), 15, "I3: the price is still through the stop: once resumed, its stop "
                                            "exits the position (not the next reconcile, 120 s away)")
        time.sleep(LATE_REQUESTS_S)
        assert len(c.exits("A1")) == 1, f"I1: one exit: {[e['client_order_id'] for e in c.exits('A1')]}"
        assert refused and all(cid.startswith("A1:x") for cid in refused[1:]), f"F3: refused, not retried: {refused}"
        assert c.runtime("A1").position.value == "exited_by_sl"
