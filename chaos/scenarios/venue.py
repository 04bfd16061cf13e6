"""The venue and order-path rows of DESIGN §5: F1-F6 (the broker and the lock), F14 (a corrupt
runtime record) and F25 (an operator stop while an order is retrying).

Each scenario breaks one thing for real (the simulated exchange's fault controls, Redis keys
written behind the daemon's back, an operator command over HTTP) and then checks from the
outside: the exchange's ledger (every order request it received, with its outcome), Redis,
`/status` and the daemon's JSON log. Client order ids are `<strategy>:e<n>` / `<strategy>:x<n>`,
so "no duplicate" and "same id on every retry" are read straight off the ledger.

The harness config has `order_timeout_s = 1.0`; the engine's retry backoff is 1/2/4 s + 20 %
jitter and at most 3 resends (F1), its per-strategy Redis lock has a 10 s TTL and a 2 s wait.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from chaos.harness import NAMESPACE, Cluster, StrategySpec, cued, quiet_for, steady_for, wait_for
from chaos.scenario import Result, finish, ms_since, scenario
from runtime.store.errors import CorruptState
from runtime.store.runtime_state import Runtime




# --- reading the outside world ----------------------------------------------------------------


def placed(c: Cluster, client_order_id: str | None = None, *, prefix: str | None = None) -> list[dict[str, Any]]:
    """Every POST /fapi/v1/order the exchange received (executed or refused), oldest first."""
    return [e for e in c.exchange.ledger(client_order_id) if e.get("action") == "place"
            and (prefix is None or str(e.get("client_order_id", "")).startswith(prefix))]


def runtime_of(c: Cluster, strategy_id: str) -> Runtime | None | str:
    """The stored runtime, or the text of the schema error when the record is corrupt."""
    try:
        return c.runtime(strategy_id)
    except CorruptState as exc:
        return f"corrupt: {exc}"


def has(c: Cluster, strategy_id: str, *, position: str | None = None, status: str | None = None,
        settled: bool = True) -> bool:
    r = runtime_of(c, strategy_id)
    if not isinstance(r, Runtime):
        return False
    return ((position is None or r.position.value == position) and (status is None or r.status.value == status)
            and (not settled or not r.pending_order))


def details(c: Cluster, strategy_id: str) -> dict[str, Any]:
    node = c.node(f"strategy:{strategy_id}") or {}
    return node.get("details") or {}


def wall_ms() -> float:
    return time.time() * 1000.0


def logged(c: Cluster, event: str, match: Callable[[dict[str, Any]], bool] = lambda _: True) -> list[dict[str, Any]]:
    return [line for line in c.events(event) if match(line.get("details") or {})]


def logged_soon(c: Cluster, event: str, match: Callable[[dict[str, Any]], bool] = lambda _: True,
                timeout: float = 5.0) -> list[dict[str, Any]]:
    """`logged`, waiting (bounded) for a first match: Redis is written just before the log line."""
    deadline = time.monotonic() + timeout
    while not (found := logged(c, event, match)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def log_ms(line: dict[str, Any]) -> float:
    return int(line["timestamp"]) / 1e6


def intent_ms(c: Cluster, client_order_id: str) -> float:
    """When the engine journaled the intent: the moment just before its first send."""
    return next(e.at for e in c.store.entries() if e.kind == "intent" and e.client_order_id == client_order_id) * 1e3


# --- F1 ---------------------------------------------------------------------------------------

SETTLE_WINDOW_S = 5.0  # F1's [venue] settle_window_s: its "unknown" replies never execute, so shorter than the default
F1_ENTRY_BOUND_S = 40.0


@scenario("broker-timeout", "F1")
def broker_timeout(result: Result) -> None:
    """The BUY executes but its reply comes late; then a BUY answered 503 "unknown" (not executed) ×3.

    F1: no reply within order_timeout → look the client id up before anything is resent. The held
    BUY is found FILLED by the lookup: one order, position bought. The "unknown" BUY is looked up
    over the settle window (an "unknown" may still execute, F29), not found, resent with the same
    client id once both the settle window and the 1/2/4 s backoff have passed since the failed
    reply (the backoff counts from the reply, so the settle wait covers it: issue 14, seed 1001),
    and fills on the last allowed resend. Three settle windows take ~15 s, so this scenario's entry
    bound is 40 s (default 10 s: the entry would be dropped rather than sent late, which is right,
    but not what F1 shows).
    """
    with Cluster("broker-timeout", [StrategySpec("t1", buy_at="+2s", stop_loss=90_000.0), cued("t2")],
                 settings={"venue": f"entry_bound_s = {F1_ENTRY_BOUND_S}\nsettle_window_s = {SETTLE_WINDOW_S}"}) as c:
        c.start_sampling()
        c.exchange.set_fault("hold_reply", count=1, hold_s=3.0)  # reply 2 s past the 1 s order_timeout
        c.start_trading()
        wait_for(lambda: c.executed("t1:e1"), 15, "t1's BUY executed at the exchange (reply held)")
        sent_ms = placed(c, "t1:e1")[0]["time_ms"]
        wait_for(lambda: has(c, "t1", position="bought"), 10, "t1 settled as bought by the lookup")
        timeouts = logged(c, "venue_request", lambda d: "t1:e1" in d.get("outcome", "")
                          and "no reply within timeout" in d.get("outcome", ""))
        if result.check(bool(timeouts), "the late reply was detected as a timeout (UNKNOWN)"):
            result.detect_ms = round(log_ms(timeouts[0]) - sent_ms, 1)
            result.check(900 <= result.detect_ms <= 2500,
                         f"detected after ~order_timeout (1 s), not later ({result.detect_ms} ms)")
        settled = logged_soon(c, "order_filled", lambda d: d.get("client_order_id") == "t1:e1")
        if result.check(bool(settled), "t1:e1 logged filled (by the lookup)"):
            result.notes["t1_settled_by_lookup_after_ms"] = round(log_ms(settled[0]) - sent_ms, 1)
        result.check(len(placed(c, "t1:e1")) == 1, "the timed-out BUY was looked up, never resent")
        result.check(len(c.executed("t1:e1")) == 1, "exactly one BUY for intent t1:e1")
        result.check(c.store.unsettled() == [], "no journal intent left unsettled")

        # Part 2: 503 "execution status unknown", not executed, three times in a row.
        c.exchange.set_fault("unknown_503", count=3, execute=False, scope="place")
        c.cue("t2")
        wait_for(lambda: has(c, "t2", position="bought"), F1_ENTRY_BOUND_S + 10,
                 "t2 bought after three 'unknown' replies")
        filled = logged_soon(c, "order_filled", lambda d: d.get("client_order_id") == "t2:e1")
        if result.check(bool(filled), "t2:e1 logged filled"):
            result.recover_ms = round(log_ms(filled[0]) - intent_ms(c, "t2:e1"), 1)
        attempts = placed(c, prefix="t2:")
        result.notes["t2_attempts"] = [(e["client_order_id"], e["outcome"], e["time_ms"]) for e in attempts]
        result.check([e["client_order_id"] for e in attempts] == ["t2:e1"] * 4,
                     f"first send + 3 resends, all with client id t2:e1 ({[e['client_order_id'] for e in attempts]})")
        gaps = [round((b["time_ms"] - a["time_ms"]) / 1000.0, 2) for a, b in zip(attempts, attempts[1:])]
        result.notes["t2_resend_gaps_s"] = gaps
        result.check(len(gaps) == 3 and all(gap >= max(SETTLE_WINDOW_S, step) - 0.05 for gap, step in zip(gaps, (1, 2, 4))),
                     f"no resend within the {SETTLE_WINDOW_S:g} s settle window nor the 1/2/4 s backoff ({gaps})")
        result.check(len(c.executed("t2:e1")) == 1, "exactly one BUY for intent t2:e1")
        retries = logged(c, "order_retry", lambda d: d.get("client_order_id") == "t2:e1")
        result.check(len(retries) == 3, f"each resend logged as order_retry ({len(retries)})")
        finish(result, c)


# --- F2 ---------------------------------------------------------------------------------------


@scenario("broker-reject", "F2")
def broker_reject(result: Result) -> None:
    """The venue rejects r1's BUY with -2019 (margin): permanent, so no retry; r1 failed, reason shown.

    r2, on the same account and symbol, keeps trading.
    """
    with Cluster("broker-reject", [StrategySpec("r1", buy_at="+2s"), cued("r2")]) as c:
        c.start_sampling()
        c.exchange.set_fault("order_reject", count=1, code=-2019)
        c.start_trading()
        wait_for(lambda: placed(c, "r1:e1"), 15, "r1's BUY reached the exchange")
        rejected_ms = placed(c, "r1:e1")[0]["time_ms"]
        wait_for(lambda: details(c, "r1").get("status") == "failed", 10, "r1 shown failed in /status")
        result.notes["shown_failed_after_ms"] = round(wall_ms() - rejected_ms, 1)
        shown = details(c, "r1")
        result.notes["r1_status"] = shown
        result.check("-2019" in str(shown.get("reason", "")), f"the reject code is in r1's status reason ({shown})")
        runtime = runtime_of(c, "r1")
        result.check(isinstance(runtime, Runtime) and runtime.status.value == "failed" and "-2019" in runtime.reason
                     and runtime.position.value == "none",
                     f"runtime:{{r1}} is failed with the reason, position unchanged ({runtime})")
        aborts = logged_soon(c, "safety_abort", lambda d: d.get("strategy") == "r1")
        if result.check(bool(aborts) and "REJECTED_PERMANENT" in aborts[0]["details"]["reason"],
                        "SAFETY_ABORT logged with the permanent reject"):
            result.detect_ms = round(log_ms(aborts[0]) - rejected_ms, 1)
        c.cue("r2")
        wait_for(lambda: has(c, "r2", position="bought"), 15, "r2 bought: another strategy keeps trading")
        quiet_for(1.5, lambda: len(placed(c, prefix="r1:")), "r1 sent nothing after the permanent reject")
        result.check(len(placed(c, prefix="r1:")) == 1, "no retry of a permanent reject (one request from r1)")
        result.check(c.executed("r1:e1") == [], "nothing executed for r1:e1")
        finish(result, c)


# --- F3 ---------------------------------------------------------------------------------------


@scenario("token-invalid", "F3")
def token_invalid(result: Result) -> None:
    """a1's BUY is answered 401 -2015: no retry, SAFETY_ABORT, every strategy of account alice paused.

    a2 (alice) never sends; b1 (bob) trades. The operator re-authenticates (the fault is cleared)
    and enables a1 and a2: both trade.
    """
    a2, b1 = cued("a2"), cued("b1")
    a2.account, b1.account = "alice", "bob"
    with Cluster("token-invalid", [StrategySpec("a1", account="alice", buy_at="+2s"), a2, b1]) as c:
        c.start_sampling()
        c.exchange.set_fault("token_invalid", count=1, scope="place")
        c.start_trading()
        wait_for(lambda: placed(c, "a1:e1"), 15, "a1's BUY reached the exchange")
        refused_ms = placed(c, "a1:e1")[0]["time_ms"]
        wait_for(lambda: has(c, "a1", status="paused") and has(c, "a2", status="paused"), 10,
                 "every strategy of account alice paused in Redis")
        result.notes["account_paused_seen_after_ms"] = round(wall_ms() - refused_ms, 1)
        # The line follows the last runtime write of the account, so it may land just after Redis shows both.
        paused = logged_soon(c, "account_paused", lambda d: d.get("account") == "alice")
        logged_strategies = paused[0]["details"]["strategies"] if paused else None
        if result.check(logged_strategies == ["a1", "a2"],
                        f"account_paused logged for alice: a1, a2 (logged: {logged_strategies})"):
            result.detect_ms = round(log_ms(paused[0]) - refused_ms, 1)
        wait_for(lambda: details(c, "a1").get("status") == "paused" and details(c, "a2").get("status") == "paused",
                 5, "a1 and a2 shown paused in /status")
        result.notes["a1_status"], result.notes["a2_status"] = details(c, "a1"), details(c, "a2")
        aborts = logged_soon(c, "safety_abort", lambda d: d.get("strategy") == "a1")
        result.check(bool(aborts) and "TOKEN_INVALID" in aborts[0]["details"]["reason"],
                     "SAFETY_ABORT logged with TOKEN_INVALID")
        reasons = c.status()["gate"]["reasons"]
        result.notes["gate_reasons"] = reasons
        result.check(any(r.startswith("account:alice") for r in reasons), f"gate closed for account alice ({reasons})")
        c.cue("a2")
        c.cue("b1")
        wait_for(lambda: has(c, "b1", position="bought"), 15, "b1 (account bob) bought: other account unaffected")
        quiet_for(1.5, lambda: placed(c, prefix="a2:"), "a2 sends nothing while its account is paused")
        result.check(len(placed(c, prefix="a1:")) == 1, "no retry after TOKEN_INVALID (one request from a1)")
        result.check(placed(c, prefix="a2:") == [], "a2 (same account) sent nothing while paused")

        # Operator: re-auth (the venue accepts the key again), then enable the paused strategies.
        c.exchange.clear_faults()
        t0 = time.monotonic()
        c.command("strategy-enable", id="a1")
        c.command("strategy-enable", id="a2")
        wait_for(lambda: has(c, "a1", position="bought", status="active") and has(c, "a2", position="bought"), 15,
                 "a1 and a2 trade again after strategy-enable")
        result.recover_ms = ms_since(t0)
        reasons = c.status()["gate"]["reasons"]
        result.check(not any(r.startswith("account:alice") for r in reasons), f"account alice open again ({reasons})")
        result.check(c.executed("a1:e1") == [] and len(c.executed("a1:e2")) == 1,
                     "a1 bought exactly once, with a new client id (a1:e1 was refused, a1:e2 filled)")
        result.check(details(c, "a1").get("status") == "active" and details(c, "a2").get("status") == "active",
                     "a1 and a2 shown active again")
        finish(result, c)


# --- F4 ---------------------------------------------------------------------------------------


@scenario("broker-network", "F4")
def broker_network(result: Result) -> None:
    """n1's BUY is delayed 1.6 s inside the venue (beyond the 1 s order_timeout) and executes after the
    client gave up; n2's BUY is answered 500 -1001 twice. Both are retried as F1: lookup first,
    same client id, one order each.
    """
    with Cluster("broker-network", [StrategySpec("n1", buy_at="+2s"), cued("n2")]) as c:
        c.start_sampling()
        c.exchange.set_fault("rest_latency", count=1, ms=1600, scope="place")
        c.start_trading()
        wait_for(lambda: has(c, "n1", position="bought"), 25, "n1 bought despite the timeout")
        sent_ms = intent_ms(c, "n1:e1")
        timeouts = logged(c, "venue_request", lambda d: "n1:e1" in d.get("outcome", "")
                          and "no reply within timeout" in d.get("outcome", ""))
        if result.check(bool(timeouts), "the slow BUY was detected as a timeout (UNKNOWN)"):
            result.detect_ms = round(log_ms(timeouts[0]) - sent_ms, 1)
        filled = logged_soon(c, "order_filled", lambda d: d.get("client_order_id") == "n1:e1")
        if result.check(bool(filled), "n1:e1 logged filled"):
            result.recover_ms = round(log_ms(filled[0]) - sent_ms, 1)
        n1 = placed(c, prefix="n1:")
        result.notes["n1_requests"] = [(e["client_order_id"], e["outcome"], e.get("code")) for e in n1]
        result.check(all(e["client_order_id"] == "n1:e1" for e in n1), "every n1 request reused client id n1:e1")
        result.check(len(c.executed("n1:e1")) == 1, "exactly one BUY executed for n1:e1 (a resend is DUPLICATE)")

        c.exchange.set_fault("internal_error", count=2)
        c.cue("n2")
        wait_for(lambda: has(c, "n2", position="bought"), 15, "n2 bought after two 500 -1001 replies")
        n2 = placed(c, prefix="n2:")
        result.notes["n2_requests"] = [(e["client_order_id"], e["outcome"], e.get("code"), e["time_ms"]) for e in n2]
        result.check([e["client_order_id"] for e in n2] == ["n2:e1"] * 3, "two resends, all with client id n2:e1")
        result.check(len(c.executed("n2:e1")) == 1, "exactly one BUY executed for n2:e1")
        finish(result, c)


# --- F5 ---------------------------------------------------------------------------------------


@scenario("rate-limit", "F5")
def rate_limit(result: Result) -> None:
    """A flood of 429s (Retry-After 1 s) while q2's entry is due and q1's stop-loss is crossed.

    The engine backs off as told (nothing is sent before Retry-After), the stop-loss exit is not
    given up and is on the wire no later than the entry, and the entry is placed exactly once
    when the flood ends.
    """
    flood = 6
    # The stop-loss takes the flood's Retry-After waits first, then the budget paces what follows:
    # q2's entry can be due longer than the default 10 s entry bound, which would drop it (never
    # sent late, issue 10 case 7) and the strategy would buy again as q2:e2. This row is about the
    # backoff, so the bound is wider here, as in F1.
    with Cluster("rate-limit", [StrategySpec("q1", buy_at="+2s", stop_loss=99_000.0), cued("q2")],
                 settings={"venue": f"entry_bound_s = {F1_ENTRY_BOUND_S}"}) as c:
        c.start_sampling()
        c.start_trading()
        wait_for(lambda: has(c, "q1", position="bought"), 15, "q1 bought (its stop armed at 99000)")
        c.exchange.set_fault("http_429", count=flood, retry_after_s=1, scope="place")
        c.cue("q2")
        wait_for(lambda: placed(c, "q2:e1"), 15, "q2's BUY met the flood")
        c.exchange.set_price("BTCUSDT", 98_000.0)  # through q1's stop, during the flood
        wait_for(lambda: has(c, "q1", position="exited_by_sl") and has(c, "q2", position="bought"), 25,
                 "q1's stop-loss exit and q2's entry both placed after the flood")
        limited = [e for e in placed(c) if e.get("fault") == "http_429"]
        result.notes["requests"] = [(e["client_order_id"], e["outcome"], e["time_ms"]) for e in placed(c)]
        result.check(len(limited) == flood, f"the whole flood was met ({len(limited)}/{flood} answered 429)")
        gaps = [round((b["time_ms"] - a["time_ms"]) / 1000.0, 2) for a, b in zip(limited, limited[1:])]
        result.notes["gaps_between_429s_s"] = gaps
        result.check(all(g >= 0.95 for g in gaps), f"nothing sent to the venue before Retry-After passed (gaps {gaps})")
        exit_ok, entry_ok = c.executed("q1:x1"), c.executed("q2:e1")
        result.check(len(exit_ok) == 1 and len(entry_ok) == 1, "the exit and the entry each placed exactly once")
        if exit_ok and entry_ok and limited:
            result.check(exit_ok[0]["seq"] < entry_ok[0]["seq"], "the stop-loss exit went first")
            result.recover_ms = round(entry_ok[0]["time_ms"] - limited[0]["time_ms"], 1)  # the entry's delay
            triggered = logged(c, "stops_triggered", lambda d: "q1" in d.get("strategies", []))
            if triggered:
                result.notes["stop_trigger_to_exit_ms"] = round(exit_ok[0]["time_ms"] - log_ms(triggered[0]), 1)
            result.notes["exit_to_entry_ms"] = entry_ok[0]["time_ms"] - exit_ok[0]["time_ms"]
        backoffs = logged(c, "order_retry", lambda d: d.get("client_order_id") == "q2:e1")
        if limited and result.check(bool(backoffs), "the 429 on q2:e1 was backed off (order_retry)"):
            result.detect_ms = round(log_ms(backoffs[0]) - limited[0]["time_ms"], 1)
            result.notes["first_backoff_s"] = backoffs[0]["details"]["delay_s"]
        paced = logged(c, "venue_request", lambda d: "paced at" in d.get("outcome", ""))
        result.notes["paced_refusals"] = len(paced)  # the budget halved its rate after each 429
        aborts = logged(c, "safety_abort")
        result.check(aborts == [], f"no SAFETY_ABORT for a rate limit ({[a['details'] for a in aborts]})")
        finish(result, c)


# --- F6 ---------------------------------------------------------------------------------------


@scenario("lock-stuck", "F6")
def lock_stuck(result: Result) -> None:
    """Just before l1's BUY, `lock_state:{l1}` is held by a foreign owner (a crashed process) for 4 s.

    The engine waits, refuses (never steals or deletes a lock it does not own), and the BUY goes
    through once the TTL has expired — no manual step, one order.
    """
    ttl_ms = 4000
    with Cluster("lock-stuck", [cued("l1")]) as c:
        c.start_sampling()
        c.start_trading()
        key = f"{NAMESPACE}:lock_state:{{l1}}"
        c.store.client.set(key, "crashed-owner", px=ttl_ms)
        t0 = time.monotonic()
        c.cue("l1")
        wait_for(lambda: logged(c, "order_refused", lambda d: d.get("strategy") == "l1"
                                and "lock_state" in d.get("reason", "")), 10, "l1's order refused: lock held")
        result.detect_ms = ms_since(t0)
        holder = c.store.client.get(key)
        result.check(holder == b"crashed-owner" or ms_since(t0) >= ttl_ms,
                     f"the foreign lock was neither stolen nor deleted ({holder!r})")
        result.check(placed(c, prefix="l1:") == [], "nothing sent while the lock is held")
        wait_for(lambda: has(c, "l1", position="bought"), 15, "l1 bought after the lock's TTL expired")
        result.recover_ms = ms_since(t0)
        result.check(result.recover_ms >= ttl_ms - 200, f"not before the TTL ({result.recover_ms} ms)")
        result.check(result.recover_ms <= ttl_ms + 4000, f"self-healed within TTL + a few s ({result.recover_ms} ms)")
        result.check(len(placed(c, prefix="l1:")) == 1, "one BUY request from l1")
        # The engine writes the runtime (what `has` reads), journals the outcome, then releases the
        # lock: the release comes a moment after "bought" is visible, so wait for it (bounded).
        wait_for(lambda: c.store.client.get(key) is None, 5, "the engine released its own lock after the order")
        finish(result, c)


# --- F14 --------------------------------------------------------------------------------------


@scenario("state-corruption", "F14")
def state_corruption(result: Result) -> None:
    """`runtime:{c1}` is overwritten with a bad position while the daemon runs, before c1's BUY.

    The schema check on load SAFETY_ABORTs c1 only (failed + reason in /status, nothing sent);
    c2 trades. The operator repairs the record and enables c1, which then trades.
    """
    with Cluster("state-corruption", [cued("c1"), cued("c2")]) as c:
        c.start_sampling()
        c.start_trading()
        key = f"{NAMESPACE}:runtime:{{c1}}"
        good = Runtime().to_redis()
        c.store.client.hset(key, mapping={**good, "position": "sideways"})
        t0 = time.monotonic()
        c.cue("c1")
        wait_for(lambda: details(c, "c1").get("status") == "failed", 10, "c1 shown failed in /status")
        result.detect_ms = ms_since(t0)
        shown = details(c, "c1")
        result.notes["c1_status"] = shown
        result.check("corrupt state" in str(shown.get("reason", "")) and "position" in str(shown.get("reason", "")),
                     f"the reason names the record and the field ({shown.get('reason')})")
        aborts = logged_soon(c, "safety_abort", lambda d: d.get("strategy") == "c1")
        result.check(bool(aborts) and "SAFETY_ABORT" in aborts[0]["details"]["reason"], "SAFETY_ABORT logged for c1")
        c.cue("c2")
        wait_for(lambda: has(c, "c2", position="bought"), 15, "c2 bought: the other strategy trades")
        quiet_for(1.5, lambda: len(logged(c, "safety_abort", lambda d: d.get("strategy") == "c1")),
                  "c1 stopped asking once aborted")
        result.check(placed(c, prefix="c1:") == [], "nothing sent for c1 on a corrupt record")
        result.check(c.tree_state("strategy:c2") == "running", "c2 untouched")

        # Operator: repair the record, then enable c1.
        c.store.client.delete(key)
        c.store.client.hset(key, mapping=good)
        t1 = time.monotonic()
        c.command("strategy-enable", id="c1")
        wait_for(lambda: has(c, "c1", position="bought", status="active"), 15, "c1 trades after repair + enable")
        result.recover_ms = ms_since(t1)
        finish(result, c)


# --- F25 --------------------------------------------------------------------------------------


@scenario("stop-during-order", "F25")
def stop_during_order(result: Result) -> None:
    """f1's BUY is stuck retrying (500 -1001 every time) when the operator stops f1.

    Nothing more is sent after the stop, the retry and the strategy's timers are cancelled, the
    journal is settled, the node shows `stopped`; f2 trades once the venue is healthy again.
    """
    with Cluster("stop-during-order", [StrategySpec("f1", buy_at="+2s"), cued("f2")]) as c:
        c.start_sampling()
        c.exchange.set_fault("internal_error", count=100)
        c.start_trading()
        wait_for(lambda: len(placed(c, "f1:e1")) >= 2, 15, "f1's BUY is being retried")
        t0, command_ms = time.monotonic(), wall_ms()
        c.command("strategy-stop", id="f1")
        stopped_sends = len(placed(c, prefix="f1:"))
        wait_for(lambda: c.tree_state("strategy:f1") == "stopped", 10, "f1 shown stopped")
        cancelled = wait_for(lambda: logged(c, "order_not_resent", lambda d: d.get("client_order_id") == "f1:e1"
                                            and "cancelled by an operator stop" in str(d.get("reason"))), 15,
                             "the retry of f1:e1 cancelled (order_not_resent: cancelled by an operator stop)")
        result.detect_ms = round(log_ms(cancelled[0]) - command_ms, 1)
        wait_for(lambda: c.store.unsettled() == [] and has(c, "f1", position="none"), 10,
                 "f1:e1 settled by lookup (journal final), f1 flat with nothing pending")
        result.recover_ms = ms_since(t0)

        def activity() -> tuple[int, int]:
            asked = logged(c, "order_refused", lambda d: d.get("strategy") == "f1") + \
                logged(c, "order_retry", lambda d: str(d.get("client_order_id")).startswith("f1:"))
            return len(placed(c, prefix="f1:")), len(asked)

        # An intent queued just before the stop is refused within the engine's 2 s lock wait: wait
        # (bounded) until that is over and f1 has nothing in flight, then nothing more may happen.
        wait_for(lambda: "f1" not in ((c.node("execution-engine") or {}).get("details") or {}).get("in_flight", ["f1"]),
                 15, "no order of f1 in flight after the stop")
        steady_for(2.5, activity, "f1's last queued intent refused", timeout=20)
        quiet_for(5.0, activity, "nothing sent or asked for f1 after the stop (retries and timers cancelled)")
        result.notes["f1_requests_before_stop"] = stopped_sends
        result.check(len(placed(c, prefix="f1:")) <= stopped_sends + 1 and
                     all(e["client_order_id"] == "f1:e1" for e in placed(c, prefix="f1:")),
                     "at most the attempt already on the wire went out after the stop, and no new order id")
        engine = (c.node("execution-engine") or {}).get("details") or {}
        result.check("f1" not in engine.get("in_flight", []), f"no order of f1 in flight ({engine})")
        c.exchange.clear_faults()
        c.cue("f2")
        wait_for(lambda: has(c, "f2", position="bought"), 15, "f2 trades after f1's stop")
        finish(result, c)
