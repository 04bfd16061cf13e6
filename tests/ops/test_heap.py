"""Issue 10 (tick → wire p99): the daemon's long-lived objects leave the garbage collector's
generations once it has started, and small collections no longer run every 700 allocations.
Measured before (3,000 strategies, 60 s): full collections of ~100 ms, 11 a minute, each one
stopping every thread, a stop-loss worker included (runtime/heap.py has the numbers)."""
from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors import node_ids
from actors.node import Node
from runtime.heap import GEN0_THRESHOLD
from tests.ops.test_status_scale import _config


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def _collected(obj: object) -> bool:
    """Is `obj` in one of the collected generations (a frozen object is in none)?"""
    return any(candidate is obj for candidate in gc.get_objects())


def test_issue10_node_start_freezes_the_started_tree_out_of_garbage_collections(tmp_path: Path,
                                                                                restored_gc: None) -> None:
    gc.unfreeze()
    node = Node(_config(tmp_path, 20))
    try:
        node.start()
        actor = node._find(node_ids.strategy("s7"))
        assert actor is not None
        assert not _collected(actor), \
            "a strategy actor started with the node is never walked by a later collection (frozen)"
        assert not _collected(node.services.stops), "nor is the stop index"
        assert gc.get_threshold()[0] == GEN0_THRESHOLD
        garbage = [[]]
        garbage[0].append(garbage)  # a cycle made after start is still collected
        del garbage
        assert gc.collect() > 0
    finally:
        node.request_stop("test over")
        assert node.stop() == 0
