"""Issue 13: `Node.stop()` is safe after a partial start (the status port bound, or Redis and the
venue started, but no tree), and releases what was started."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
import requests

from actors.node import Node, StartAborted
from runtime.config import ConfigError, parse_config

pytestmark = pytest.mark.slow


def config_for(tmp_path: Path, bind: str = "127.0.0.1:0"):
    text = (f'[node]\nname = "partial"\ndata_dir = "{tmp_path / "data"}"\n[status]\nbind = "{bind}"\n'
            '[venue]\nkind = "sim"\n[feeds]\nsymbols = ["BTCUSDT"]\n'
            '[[strategies]]\nid = "s1"\nkind = "scheduled"\nsymbol = "BTCUSDT"\nquantity = 0.001\n'
            'buy_at = "+1d"\nsell_at = "+2d"\n')
    return parse_config(text, "partial.toml")


def test_issue13_stop_after_only_the_status_port_was_bound(tmp_path):
    node = Node(config_for(tmp_path))
    server = node.bind_status()
    port = server.port
    assert node.stop() == 0, "stop after a bind-only start is clean"
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # the port was released


def test_issue13_stop_after_a_start_aborted_by_sigterm_releases_redis_and_the_venue(tmp_path):
    node = Node(config_for(tmp_path))
    node.bind_status()
    node.request_stop("SIGTERM")  # as if the signal came in while starting
    with pytest.raises(StartAborted):
        node.start()
    assert node.root is None and node.store is not None, "aborted after Redis started, before the tree"
    url = node.status_server.url
    session = requests.Session()
    session.trust_env = False
    status = session.get(url + "/status", timeout=10).json()
    assert status["tree"]["state"] == "starting" and status["gate"]["reasons"] == ["starting"]
    assert session.post(url + "/commands/halt", json={"reason": "x"}, timeout=10).status_code == 503
    assert node.stop() == 0
    embedded = node.endpoint.embedded
    assert embedded is None or not embedded.running, "the embedded Redis it started is stopped"


def test_issue13_busy_port_is_a_config_error_naming_status_bind(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        node = Node(config_for(tmp_path, bind=f"127.0.0.1:{busy.getsockname()[1]}"))
        with pytest.raises(ConfigError) as info:
            node.bind_status()
    (problem,) = info.value.problems
    assert problem.field == "status.bind" and problem.line == 5
    assert node.stop() == 0
    assert not (tmp_path / "data").exists()


def test_issue13_strategies_started_one_by_one_survive_a_restart_of_their_supervisor(tmp_path):
    node = Node(config_for(tmp_path))
    try:
        node.start()
        strategies = node._strategies_supervisor()
        assert [c["id"] for c in strategies.which_children().get(timeout=10)] == ["strategy:s1"]
        root = node.root.proxy()
        root.terminate_child("strategies").get(timeout=30)
        root.restart_child("strategies").get(timeout=30)
        restarted = node._strategies_supervisor()
        children = restarted.which_children().get(timeout=10)
        assert [(c["id"], c["state"]) for c in children] == [("strategy:s1", "running")], \
            "a restarted strategies supervisor restarts every strategy the node had started"
    finally:
        node.request_stop("test over")
        assert node.stop() == 0


def test_issue9_symbol_filters_are_loaded_at_start_before_any_order(tmp_path):
    node = Node(config_for(tmp_path))
    try:
        node.start()
        filters = node.venue.symbol_filters("BTCUSDT")
        assert filters is not None, "exchangeInfo is loaded at start: the first order pays no extra round trip"
        assert filters.step_size > 0 and filters.tick_size > 0
    finally:
        node.request_stop("test over")
        assert node.stop() == 0
