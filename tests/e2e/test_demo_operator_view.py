"""Issue 15, done-when: the demo says in words that it is ready and that trading has begun,
`status` shows positions with P&L once it has bought, and Ctrl-C says what it is doing.

The demo's own config (runtime/demo.toml) with only the status port and data_dir changed,
so parallel test runs do not collide on 127.0.0.1:8765.
"""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from chaos.harness import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]


def demo_config(tmp_path: Path, port: int) -> Path:
    text = (ROOT / "runtime" / "demo.toml").read_text(encoding="utf-8")
    text = text.replace('bind = "127.0.0.1:8765"', f'bind = "127.0.0.1:{port}"')
    text = re.sub(r'^data_dir = .*$', f'data_dir = "{tmp_path / "var"}"', text, flags=re.M)
    path = tmp_path / "demo.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_issue15_demo_says_trading_has_begun_and_status_shows_positions_with_pnl(tmp_path: Path) -> None:
    port = free_port()
    daemon = subprocess.Popen([sys.executable, "run.py", "--config", str(demo_config(tmp_path, port)),
                               "--log-format", "human"], cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              text=True)
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    threading.Thread(target=lambda: [lines.put(x) for x in daemon.stderr], daemon=True).start()  # type: ignore[union-attr]

    def saw(text: str) -> bool:
        while not lines.empty():
            seen.append(lines.get())
        return any(text in line for line in seen)

    try:
        wait_for(lambda: saw("trading has begun: entries open on"), 60, "the 'trading has begun' line")
        assert saw("ready, trading 4 strategies on 2 symbols (BTCUSDT, ETHUSDT)")
        assert not any(line.lstrip().startswith("{") for line in seen), "the terminal shows human lines, not JSON"

        def status_text() -> str:
            return subprocess.run([sys.executable, "run.py", "status", "--url", f"http://127.0.0.1:{port}"], cwd=ROOT,
                                  capture_output=True, text=True, timeout=30).stdout

        text = wait_for(lambda: (t := status_text()) and re.search(r"^demo-\S+\s+\w+USDT\s+bought\s+0\.\d+", t, re.M)
                        and t, 60, "status shows a bought position")
        row = next(line for line in text.splitlines() if re.match(r"demo-\S+\s+\w+USDT\s+bought", line))
        assert re.search(r"[+-]\d+\.\d\d", row), f"the position row shows its P&L: {row}"
        assert "session P&L" in text

        daemon.send_signal(signal.SIGINT)
        assert daemon.wait(90) == 0
        assert saw("stopping gracefully") and saw("Ctrl-C again to exit at once")
        assert saw("stopped, exit code 0")
        log = (tmp_path / "var" / "logs" / "warden.log").read_text(encoding="utf-8").splitlines()
        assert all(line.startswith("{") for line in log), "the log file stays JSON"
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
