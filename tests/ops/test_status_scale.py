"""Issue 13 / DESIGN §6 (start → /ready with 10,000 strategies): what a status read costs must not
grow with the number of strategies times the number of polls.

Before: every GET /ready built the whole status document, positions included (one Redis round
trip per strategy not yet running) and a walk of every strategy's status_details, 20 times a
second under a tight probe, while those strategies were being started; monitor:heartbeat walked
the same details twice a second. Start → /ready went 1,000: 6.7 s, 3,000: 32 s, 10,000: no answer.
"""
from __future__ import annotations

import threading
from pathlib import Path

import requests

from actors.node import Node
from runtime.config import parse_config
from runtime.metrics import Metrics
from runtime.status_server import Coalesced, StatusServer
from supervision import ChildSpec, Supervisor, tree_status
from tests.supervision.workers import Worker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_issue13_coalesced_builds_once_per_max_age_however_many_polls() -> None:
    clock, builds = Clock(), []
    provider = Coalesced(lambda: builds.append(clock.now) or {"n": len(builds)}, 0.5, clock=clock)
    assert [provider()["n"] for _ in range(20)] == [1] * 20, "20 polls within max_age: one build"
    clock.now += 0.5
    assert provider()["n"] == 2 and builds == [100.0, 100.5]


def test_issue13_coalesced_concurrent_polls_wait_for_one_build_and_errors_are_not_kept() -> None:
    release, calls = threading.Event(), []

    def slow() -> dict:
        calls.append(1)
        release.wait(10)
        return {"built": len(calls)}

    provider = Coalesced(slow, 60.0)
    answers: list[dict] = []
    threads = [threading.Thread(target=lambda: answers.append(dict(provider()))) for _ in range(8)]
    for t in threads:
        t.start()
    release.set()
    for t in threads:
        t.join(10)
    assert answers == [{"built": 1}] * 8 and len(calls) == 1, "polls arriving mid-build wait for that build"

    failing = Coalesced(lambda: 1 / 0, 60.0)
    for _ in range(2):
        try:
            failing()
        except ZeroDivisionError:
            pass
        else:
            raise AssertionError("an exception is raised to every caller, never cached as a document")


def test_issue13_ready_and_health_read_the_health_provider_status_reads_the_full_one(status) -> None:  # noqa: ANN001
    def full() -> dict:
        raise RuntimeError("the full document is not needed for /ready")

    srv = StatusServer(full, lambda name, args: {}, Metrics().registry, bind="127.0.0.1:0",
                       health_provider=lambda: status).start()
    try:
        assert requests.get(srv.url + "/ready", timeout=10).status_code == 200
        assert requests.get(srv.url + "/health", timeout=10).status_code == 200
        assert requests.get(srv.url + "/status", timeout=10).status_code == 503
    finally:
        srv.stop()


def test_issue13_tree_without_details_calls_no_status_details() -> None:
    calls: list[str] = []

    class Counted(Worker):
        def status_details(self) -> dict:
            calls.append(self.actor_urn)
            return {"n": len(calls)}

    sup = Supervisor.start(strategy="one_for_one", children=[ChildSpec(f"w{i}", Counted) for i in range(3)])
    try:
        bare = tree_status(sup, details=False)
        assert calls == [] and [c["state"] for c in bare["children"]] == ["running"] * 3
        assert "details" not in bare["children"][0]
        assert tree_status(sup)["children"][0]["details"] == {"n": 1} and len(calls) == 3
    finally:
        sup.stop()


def _config(tmp_path: Path, strategies: int):
    body = "".join(f'[[strategies]]\nid = "s{i}"\nkind = "scheduled"\nsymbol = "BTCUSDT"\nquantity = 0.001\n'
                   'buy_at = "+1d"\nsell_at = "+2d"\n' for i in range(strategies))
    return parse_config(f'[node]\nname = "scale"\ndata_dir = "{tmp_path / "data"}"\n[status]\nbind = "127.0.0.1:0"\n'
                        f'[venue]\nkind = "sim"\n[feeds]\nsymbols = ["BTCUSDT"]\n{body}', "scale.toml")


def test_issue13_a_status_read_costs_one_pipelined_store_read_not_one_per_strategy(tmp_path, monkeypatch) -> None:
    node = Node(_config(tmp_path, 30))
    try:
        node.start()
        singles, bulks = [], []
        real_bulk = node.store.load_runtimes
        monkeypatch.setattr(node.store, "load_runtime", lambda sid: singles.append(sid))
        monkeypatch.setattr(node.store, "load_runtimes", lambda ids: bulks.append(list(ids)) or real_bulk(ids))
        monkeypatch.setattr(node, "_find", lambda node_id: None)  # as while the strategies are still starting
        document = node.status()
        assert len(document["positions"]) == 30
        assert singles == [] and len(bulks) == 1 and len(bulks[0]) == 30, \
            "the runtimes a status document needs are read in one pipelined round trip"
        bulks.clear()
        health = node.status(positions=False)
        assert "positions" not in health and bulks == [] and singles == [], "/ready and /health read no runtime"
    finally:
        node.request_stop("test over")
        assert node.stop() == 0
