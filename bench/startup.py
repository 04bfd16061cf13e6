"""Start → /ready of the real daemon (`python run.py --config …`) with 1,000 and 10,000
strategies, and its RSS once ready (DESIGN §6: ≤ 10 s with 10,000; ≤ 1 GB at 10,000).

Each size runs the daemon as its own process with a generated config: the simulated
exchange in-process, embedded Redis under a temporary data_dir, N scheduled strategies
that trade a day later (so nothing trades while it is measured). The clock starts just
before the process is spawned and stops at the first `GET /ready` answered 200; the
daemon is then stopped with SIGTERM and must exit 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import requests

from chaos.harness import free_port

ROOT = Path(__file__).resolve().parent.parent
SYMBOL = "BTCUSDT"


def config_text(n: int, data_dir: Path, port: int) -> str:
    head = [
        "[node]", 'name = "bench-startup"', f'data_dir = "{data_dir}"',
        "[status]", f'bind = "127.0.0.1:{port}"',
        "[venue]", 'kind = "sim"',
        "[feeds]", f'symbols = ["{SYMBOL}"]',
    ]
    body = [
        f'[[strategies]]\nid = "b{i}"\nkind = "scheduled"\nsymbol = "{SYMBOL}"\nquantity = 0.001\n'
        'buy_at = "+1d"\nsell_at = "+2d"'
        for i in range(n)
    ]
    return "\n".join(head + body) + "\n"


def start_to_ready(n: int, timeout_s: float = 300.0) -> dict[str, Any]:
    """One daemon with `n` strategies: seconds from spawn to /ready, RSS when ready, clean SIGTERM exit."""
    with tempfile.TemporaryDirectory(prefix=f"bench-startup-{n}-") as tmp:
        port = free_port()
        path = Path(tmp) / "warden.toml"
        path.write_text(config_text(n, Path(tmp) / "data", port), encoding="utf-8")
        log = open(Path(tmp) / "daemon.log", "wb")  # noqa: SIM115 - owned by the process
        session = requests.Session()
        session.trust_env = False
        started = time.perf_counter()
        daemon = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--config", str(path)], cwd=ROOT,
                                  stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            ready_s = None
            while time.perf_counter() - started < timeout_s and daemon.poll() is None:
                try:
                    if session.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                        ready_s = time.perf_counter() - started
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.05)
            rss_mb = round(psutil.Process(daemon.pid).memory_info().rss / 2**20, 1) if daemon.poll() is None else None
            daemon.send_signal(signal.SIGTERM)
            stop_started = time.perf_counter()
            exit_code = daemon.wait(timeout=300)
            result: dict[str, Any] = {"start_to_ready_s": None if ready_s is None else round(ready_s, 2),
                                      "rss_mb": rss_mb, "sigterm_to_exit_s": round(time.perf_counter() - stop_started, 2),
                                      "exit_code": exit_code}
            if ready_s is None or exit_code != 0:
                result["log_tail"] = (Path(tmp) / "daemon.log").read_text(errors="replace")[-1500:]
            return result
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait(30)
            log.close()


def run(sizes: tuple[int, ...] = (1000, 10000)) -> dict[str, Any]:
    return {str(n): start_to_ready(n) for n in sizes}


if __name__ == "__main__":
    import json

    print(json.dumps(run(tuple(int(a) for a in sys.argv[1:]) or (1000, 10000)), indent=2))
