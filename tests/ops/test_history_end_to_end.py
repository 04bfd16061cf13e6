"""Issue 15: `run.py history` (table and --json) says what the journal says, over real HTTP.

A real redis-server holds the journal, written through the Store as the pipeline writes it
(intent fields, final outcomes with qty/avg_price/reason); the status server serves
`GET /history` from it exactly as the node wires it (`console.pages(journal.since)`); the
CLI's `main()` asks that server. The journal folded by `runtime.history.orders` is the truth
the three must agree on, for every order shape the engine journals.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import requests

from runtime.cli import EXIT_OK, main
from runtime.console import pages
from runtime.history import orders, parse_since
from runtime.metrics import Metrics
from runtime.status_server import StatusServer
from runtime.store.store import Store
from tests.redis_fixture import redis_server, redis_url, store  # noqa: F401
from tests.waiting import eventually


def _intent(store: Store, client_id: str, strategy: str, side: str, qty: float, purpose: str, reason: str = "") -> None:
    store.journal_intent(client_id, {"strategy_id": strategy, "account": "alice", "symbol": "BTCUSDT", "side": side,
                                     "quantity": repr(qty), "purpose": purpose, "stop_loss": "", "reason": reason})


def _outcome(store: Store, client_id: str, strategy: str, outcome: str, **fields: str) -> None:
    store.journal_outcome(client_id, outcome, {"strategy_id": strategy, **fields}, final=True)


@pytest.fixture
def journal(store: Store) -> dict[str, float]:  # noqa: F811
    """Orders of every shape, an 'old' group and a 'new' group; returns {"between": epoch s}."""
    _intent(store, "s1:e1", "s1", "BUY", 0.01, "entry")
    _outcome(store, "s1:e1", "s1", "FILLED", qty="0.01", avg_price="99902.7", attempts="1")
    _intent(store, "s2:e1", "s2", "BUY", 0.2, "entry")
    _outcome(store, "s2:e1", "s2", "REFUSED", reason="gate closed: symbol:BTCUSDT stale")
    _intent(store, "s3:e1", "s3", "BUY", 0.5, "entry")  # sent before the boundary, settled after it
    last_old = store.entries()[-1].entry_id
    old_ms = int(last_old.split("-")[0])
    eventually(lambda: time.time() * 1000 > old_ms + 2, timeout=5, what="the clock past the old group")
    between = time.time()
    eventually(lambda: time.time() > between + 0.002, timeout=5, what="the clock past the boundary")
    _intent(store, "s1:x1", "s1", "SELL", 0.01, "exit", reason="stop-loss 95000 crossed")
    _outcome(store, "s1:x1", "s1", "EXPIRED", qty="0.004", avg_price="94990.1", attempts="1")
    _intent(store, "s1:x1.1", "s1", "SELL", 0.006, "exit", reason="rest of s1:x1")
    _outcome(store, "s1:x1.1", "s1", "FILLED", qty="0.006", avg_price="94980.0", attempts="2")
    _intent(store, "s2:e2", "s2", "BUY", 0.2, "entry")  # in doubt: no final outcome yet
    _outcome(store, "s3:e1", "s3", "FILLED", qty="0.5", avg_price="99950.0", attempts="3")
    return {"between": between}


@pytest.fixture
def history_url(store: Store) -> Iterator[str]:  # noqa: F811
    server = StatusServer(lambda: {}, lambda name, args: {}, Metrics().registry, bind="127.0.0.1:0",
                          pages=pages(store.journal.since)).start()
    yield server.url
    server.stop()


def _cli(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> str:
    capsys.readouterr()
    assert main(["history", "--url", url, *args]) == EXIT_OK
    out = capsys.readouterr()
    assert out.err == ""
    return out.out


def _table_rows(text: str) -> list[dict[str, str]]:
    header, *lines = text.rstrip("\n").split("\n")
    names = re.split(r"\s{2,}", header.strip())
    return [dict(zip(names, re.split(r"\s{2,}", line.strip()))) for line in lines]


SELECTIONS: list[tuple[str, ...]] = [(), ("--strategy", "s1"), ("--strategy", "s2"), ("--since", "between"),
                                     ("--strategy", "s1", "--since", "between"), ("--strategy", "s3", "--since", "between"),
                                     ("--limit", "2")]


@pytest.mark.parametrize("selection", SELECTIONS, ids=lambda s: " ".join(s) or "all")
def test_issue15_history_cli_table_and_json_agree_with_the_server_and_the_journal(
        selection: tuple[str, ...], journal: dict[str, float], history_url: str, store: Store,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    iso = datetime.fromtimestamp(journal["between"], tz=timezone.utc).isoformat()
    args = tuple(iso if a == "between" else a for a in selection)
    options = dict(zip(args[::2], args[1::2]))
    since = parse_since(options["--since"]) if "--since" in options else None
    truth = orders(store.entries(), options.get("--strategy"), since, int(options.get("--limit", 0)) or None)
    assert truth, "the selection is not empty: this case would prove nothing"

    served = requests.get(f"{history_url}/history", timeout=10,
                          params={k.lstrip("-"): v for k, v in options.items()}).json()["orders"]
    cli_json = json.loads(_cli(capsys, history_url, *args, "--json"))
    assert cli_json == served == json.loads(json.dumps(truth)), \
        "history --json, GET /history and the journal name the same orders with the same outcomes"

    table = _table_rows(_cli(capsys, history_url, *args))
    assert [r["CLIENT ORDER ID"] for r in table] == [o["client_order_id"] for o in truth], \
        "the table lists the journal's orders, newest first"
    for row, order in zip(table, truth):
        outcome = order["outcome"] or "OPEN"
        assert row["OUTCOME"] == (outcome if order["settled"] or not order["outcome"] else f"{outcome} (open)")
        assert row["STRATEGY"] == order["strategy"] and row["SIDE"] == order["side"]
        assert row["PURPOSE"] == order["purpose"]
        assert row["FILLED"] == (format(order["filled_qty"], "g") if order["filled_qty"] is not None else "-")
        assert row["PRICE"] == (format(order["avg_price"], ",.2f") if order["avg_price"] is not None else "-")
        at = datetime.fromtimestamp(order["at"], tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        assert row["TIME (UTC)"] == at


def test_issue15_history_shows_partial_exit_and_order_in_doubt_as_the_journal_has_them(
        journal: dict[str, float], history_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    rows: list[dict[str, Any]] = json.loads(_cli(capsys, history_url, "--json"))
    by_id = {r["client_order_id"]: r for r in rows}
    assert set(by_id) == {"s1:e1", "s2:e1", "s3:e1", "s1:x1", "s1:x1.1", "s2:e2"}, "every journaled order is listed once"
    assert (by_id["s1:x1"]["outcome"], by_id["s1:x1"]["filled_qty"]) == ("EXPIRED", 0.004)
    assert (by_id["s1:x1.1"]["outcome"], by_id["s1:x1.1"]["filled_qty"]) == ("FILLED", 0.006)
    assert by_id["s2:e2"]["outcome"] is None and not by_id["s2:e2"]["settled"]
    assert by_id["s2:e1"]["detail"] == "gate closed: symbol:BTCUSDT stale"


def test_issue15_history_since_lists_an_order_sent_before_and_filled_after_with_its_intent(
        journal: dict[str, float], history_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    iso = datetime.fromtimestamp(journal["between"], tz=timezone.utc).isoformat()
    rows: list[dict[str, Any]] = json.loads(_cli(capsys, history_url, "--since", iso, "--json"))
    by_id = {r["client_order_id"]: r for r in rows}
    assert set(by_id) == {"s3:e1", "s1:x1", "s1:x1.1", "s2:e2"}, "orders sent or settled since the boundary"
    filled = by_id["s3:e1"]
    assert (filled["side"], filled["symbol"], filled["quantity"], filled["purpose"]) == ("BUY", "BTCUSDT", 0.5, "entry"), \
        f"the fill since the boundary comes with what was asked: {filled}"
    assert (filled["outcome"], filled["filled_qty"], filled["avg_price"]) == ("FILLED", 0.5, 99950.0)
