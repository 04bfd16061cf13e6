"""Issue 15: Ctrl-C says what it does; a second Ctrl-C (documented) exits at once, 130, without
waiting for the graceful stop. A strategy whose on_stop takes 20 s keeps the graceful stop busy."""

from __future__ import annotations

import signal
import time

import pytest

from chaos.harness import Cluster, StrategySpec, wait_for
from run import SAME_PRESS_S

SLOW_STOP = '''
import time
from actors.strategy import Strategy


class SlowStop(Strategy):
    def on_stop(self, ctx):
        time.sleep(20.0)
'''


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_issue15_first_ctrl_c_stops_gracefully_and_a_second_exits_at_once() -> None:
    with Cluster("ctrl-c", [StrategySpec("slow", cls="slowstop:SlowStop")]) as c:
        (c.workdir / "slowstop.py").write_text(SLOW_STOP, encoding="utf-8")
        c.start_daemon()
        log = c.workdir / "daemon-1.log"
        assert c.daemon is not None
        c.daemon.send_signal(signal.SIGINT)
        wait_for(lambda: "stopping gracefully" in log.read_text(errors="replace"), 20, "the first Ctrl-C message")
        assert c.daemon.poll() is None, "the graceful stop waits for the strategy's on_stop"
        wait_for(lambda: '"event":"stopping"' in log.read_text(errors="replace"), 20, "the stop has begun")
        time.sleep(3 * SAME_PRESS_S)  # a distinct key press: closer SIGINTs count as one press
        c.daemon.send_signal(signal.SIGINT)
        assert c.daemon.wait(15) == 130, "a second Ctrl-C exits at once with 130"
        text = log.read_text(errors="replace")
        assert "second Ctrl-C: exiting now without finishing the graceful stop" in text
        assert '"event":"stopped"' not in text, "the graceful stop was not finished"
