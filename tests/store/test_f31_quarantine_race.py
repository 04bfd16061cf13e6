"""F14/F31 race, against a real redis-server: two writers meet a journal stream of the wrong type
at once. Whatever the interleaving of the second writer with the first's quarantine, no journal
record is moved aside or lost, the garbage stays readable under its own quarantine key, and both
intents are journaled.

The second writer (writer A) is run deterministically at a seam of writer B: right after B's
WRONGTYPE reply (`after=0`), or right after the next Redis command B sends (`after=1`; before the
fix that was B's TYPE check, so A's fresh stream was then renamed aside by B)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from runtime.store import Store

JOURNAL = "test:journal:{orders}"


@pytest.fixture
def writer_a(redis_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store(redis_url, namespace="test", buffer_path=tmp_path / "writer-a-buffer.jsonl")
    yield s
    s.close()


def run_at_seam(monkeypatch: pytest.MonkeyPatch, client: redis.Redis, after: int, writer: Any) -> list[bool]:
    """Run `writer()` once, `after` commands past the first WRONGTYPE reply `client` gets."""
    real = client.execute_command
    state = {"countdown": None}
    ran: list[bool] = []

    def maybe_run() -> None:
        if state["countdown"] == 0 and not ran:
            ran.append(True)
            writer()

    def spy(*args: Any, **options: Any) -> Any:
        try:
            reply = real(*args, **options)
        except redis.ResponseError as exc:
            if "WRONGTYPE" in str(exc) and state["countdown"] is None:
                state["countdown"] = after
                maybe_run()
            raise
        if state["countdown"]:
            state["countdown"] -= 1
            maybe_run()
        return reply

    monkeypatch.setattr(client, "execute_command", spy)
    return ran


@pytest.mark.parametrize("after", [0, 1])
def test_f31_race_second_writer_at_the_quarantine_seam_loses_no_journal_record(
        store, writer_a, redis_client, monkeypatch, after):
    redis_client.set(JOURNAL, "garbage")
    ran = run_at_seam(monkeypatch, store.client, after,
                      lambda: writer_a.journal_intent("a:x1", {"strategy_id": "a"}))
    store.journal_intent("b:x1", {"strategy_id": "b"})
    assert ran, "the second writer ran at the seam"
    journaled = {e.client_order_id for e in store.entries()}
    assert journaled == {"a:x1", "b:x1"}, "no journal record is lost or moved aside by a racing quarantine"
    aside = [k for k in redis_client.keys(f"{JOURNAL}:quarantine*")]
    assert [redis_client.type(k) for k in aside] == [b"string"], "only the garbage was quarantined"
    assert redis_client.get(aside[0]) == b"garbage", "the garbage stays readable under its quarantine key"
