"""DESIGN §6 (start → /ready with 10,000 strategies ≤ 10 s): what starting N strategies costs
must not grow as one Redis round trip, one set copy or one log line per strategy.

Before: each StrategyActor.on_start read its own runtime (10,000 strategies, 10,000 round trips
awaited one after another by the strategies supervisor); each tick subscription copied the
symbol's whole frozenset; a mass stop that overran logged one `child_killed` line per child.
"""
from __future__ import annotations

from pathlib import Path

from actors import node_ids
from actors.node import START_BATCH, Node
from runtime.store.store import Store
from tests.ops.test_status_scale import _config
from tests.waiting import eventually


def test_startup_reads_runtimes_in_one_bulk_read_per_batch_and_a_restart_reads_its_own(tmp_path: Path,
                                                                                        monkeypatch) -> None:  # noqa: ANN001
    n = 2 * START_BATCH + 50
    singles: list[str] = []
    bulks: list[list[str]] = []
    real_single, real_bulk = Store.load_runtime, Store.load_runtimes
    monkeypatch.setattr(Store, "load_runtime", lambda self, sid: singles.append(sid) or real_single(self, sid))
    monkeypatch.setattr(Store, "load_runtimes", lambda self, ids: bulks.append(list(ids)) or real_bulk(self, ids))
    node = Node(_config(tmp_path, n))
    try:
        node.start()
        assert singles == [], f"starting {n} strategies reads no runtime one by one (read {len(singles)} singly)"
        started_batches = [ids for ids in bulks if len(ids) <= START_BATCH and ids[0].startswith("s")]
        assert sum(len(ids) for ids in started_batches) == n and len(started_batches) == 3, \
            "one pipelined read per batch of strategies started"

        actor = node._find(node_ids.strategy("s7"))
        assert actor is not None
        actor.actor_ref.stop()  # its supervisor restarts it: the new incarnation reads its own record
        eventually(lambda: singles == ["s7"], timeout=30, what="the restarted strategy read its own runtime")
    finally:
        node.request_stop("test over")
        assert node.stop() == 0


def test_startup_ticks_subscribe_of_n_is_linear_one_snapshot_per_read_after_a_change(monkeypatch) -> None:  # noqa: ANN001
    import actors.ticks

    built: list[int] = []

    def counting_frozenset(items=()) -> frozenset:  # noqa: ANN001
        snapshot = frozenset(items)
        built.append(len(snapshot))
        return snapshot

    monkeypatch.setattr(actors.ticks, "frozenset", counting_frozenset, raising=False)
    ticks = actors.ticks.TickSubscriptions()
    n = 10_000
    for i in range(n):
        ticks.subscribe("BTCUSDT", f"strategy:s{i}")
    snapshot = ticks.of("BTCUSDT")
    assert len(snapshot) == n and len(built) <= 2, \
        f"{n} subscribes copy the subscriber set at most once, at the next read (copied {len(built)} times)"
    assert ticks.of("BTCUSDT") is snapshot, "reads without a change share one snapshot"

    ticks.subscribe("BTCUSDT", "strategy:late")
    ticks.unsubscribe("BTCUSDT", "strategy:s0")
    assert "strategy:late" not in snapshot and "strategy:s0" in snapshot, "a snapshot being iterated never changes"
    assert "strategy:late" in ticks.of("BTCUSDT") and "strategy:s0" not in ticks.of("BTCUSDT")
    assert ticks.of("ETHUSDT") == frozenset()
