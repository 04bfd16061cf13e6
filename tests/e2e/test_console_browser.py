"""Issue 15: the web console at `/`, in a real headless chromium against the real daemon.

Load the page; a chaos-injected crash of a strategy shows in its tree row (restarts, last
error); a halt issued from the page (with a reason) closes the gate on the page; a halt
without a reason is refused by the page itself. A screenshot is saved under var/.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos.harness import Cluster, cued, wait_for

from .browser import INSTALL_HINT, Browser, find_chromium

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = find_chromium()
STRATEGY = "console-s1"


def row_cells(browser: Browser, node_id: str) -> list[str] | None:
    return browser.eval(
        f"(() => {{ const r = document.querySelector('#tree tr[data-node={json.dumps(node_id)}]');"
        " return r ? [...r.cells].map(c => c.textContent.trim()) : null; })()")


def text(browser: Browser, selector: str) -> str:
    return browser.eval(f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent || ''")


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.skipif(CHROMIUM is None, reason=f"no chromium found: {INSTALL_HINT}")
def test_issue15_console_shows_a_crash_and_halts_with_a_reason(tmp_path: Path) -> None:
    with Cluster("console", [cued(STRATEGY, stop_loss=90_000.0)]) as cluster:
        cluster.start_trading()
        cluster.cue(STRATEGY)
        wait_for(lambda: any(p["strategy"] == STRATEGY and p["quantity"] > 0 for p in cluster.status()["positions"]),
                 30, "the strategy bought")
        url = f"http://127.0.0.1:{cluster.status_port}/"
        with Browser(str(CHROMIUM), tmp_path / "chromium") as browser:
            browser.navigate(url)
            node = f"strategy:{STRATEGY}"
            first = wait_for(lambda: row_cells(browser, node), 30, "the page shows the strategy's tree row")
            assert first[1] == "running" and first[2] == "0", \
                f"the console shows the live tree (state, restarts) before anything fails: {first}"
            wait_for(lambda: STRATEGY in text(browser, "#positions") and "+" in text(browser, "#session"), 30,
                     "positions and session P&L on the page")
            position = browser.eval(f"[...document.querySelector('#positions tr[data-strategy=\"{STRATEGY}\"]')"
                                    ".cells].map(c => c.textContent)")
            assert position[2] == "bought" and position[3] == "0.01" and position[8].endswith("(local)")

            cluster.inject(STRATEGY, "crash")  # chaos-inject takes the strategy id
            crashed = wait_for(lambda: (c := row_cells(browser, node)) and c[2] != "0" and c[5] and c, 30,
                               "the crash shows in the strategy's row")
            assert int(crashed[2]) >= 1 and "injected" in crashed[5].lower(), crashed
            assert int(crashed[3]) > int(first[3]), "a restarted strategy has a new generation"
            for crashes in (2, 3, 4):  # the 4th crash in the period disables it (F15): a state that stays
                wait_for(lambda: (c := row_cells(browser, node)) and c[1] == "running", 30, "restarted")
                cluster.inject(STRATEGY, "crash")
                wait_for(lambda n=crashes: (c := row_cells(browser, node)) and (c[1] == "disabled" or int(c[2]) >= n),
                         30, f"crash {crashes} on the page")
            disabled = wait_for(lambda: (c := row_cells(browser, node)) and c[1] == "disabled" and c, 30,
                                "the page shows the strategy disabled")
            assert "injected" in disabled[5].lower()
            wait_for(lambda: "TRIPPED" in text(browser, "#breakers"), 15, "the escalation breaker tripped on the page")
            browser.eval(f"document.querySelector('#tree tr[data-node=\"{node}\"]').cells[0].click()")
            details = wait_for(lambda: text(browser, "#node-details"), 10, "the node's drill-down panel")
            assert f'"id": "{node}"' in details and '"state": "disabled"' in details and "InjectedCrash" in details

            browser.eval("document.getElementById('halt').click()")
            assert wait_for(lambda: "reason is required" in text(browser, "#result"), 10, "no-reason refusal")
            assert cluster.status()["trading"] == "ACTIVE", "a command without a reason is never sent"

            browser.eval("document.getElementById('reason').value = 'console test: halt from the page'")
            browser.eval("document.getElementById('halt').click()")
            wait_for(lambda: text(browser, "#result").startswith("halt: accepted"), 15, "the halt is accepted")
            wait_for(lambda: text(browser, "#gate") == "CLOSED", 15, "the page shows the gate closed")
            assert cluster.status()["gate"]["open"] is False, "the halt from the page closed the daemon's gate"
            closed = text(browser, "#gates")
            assert "closed" in closed and "halt" in closed, closed
            wait_for(lambda: "FILLED" in text(browser, "#orders"), 15, "recent orders on the page")
            shot = browser.screenshot(ROOT / "var" / "console.png")
            assert shot.stat().st_size > 10_000
