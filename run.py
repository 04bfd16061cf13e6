#!/usr/bin/env python3
"""Warden: `python run.py [--config FILE]` runs the daemon in the foreground.

No config runs the demo: embedded Redis, the simulated exchange, demo strategies.
SIGTERM / SIGINT stop it gracefully (exit 0), within `[node] stop_deadline_s` (default 45 s):
past it, with orders still in flight, it names what is left and exits 4 (those orders stay
journaled; the next start settles them). A second Ctrl-C exits at once (130) without
the graceful stop's exchange-side protective stops (the next start reconciles, as after
kill -9). A bad config exits 2; HARD_SHUTDOWN exits 3. --log-format human|json chooses the
terminal's log lines (default human on a terminal); the log file is always JSON.

Operator subcommands talk to a running daemon's status server:
  python run.py status [--json] [--watch] [--url URL]
  python run.py history [--strategy ID] [--since 10m] [--json]
  python run.py halt|resume --reason TEXT
  python run.py breaker reset NAME --reason TEXT
  python run.py strategy stop|start|enable|disable ID --reason TEXT
  python run.py check-config FILE
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from runtime.exit_codes import EXIT_BAD_CONFIG, EXIT_STOP_DEADLINE

SUBCOMMANDS = {"status", "history", "halt", "resume", "breaker", "strategy", "check-config"}
EXIT_SECOND_CTRL_C = 130
SAME_PRESS_S = 0.2  # SIGINTs closer than this are one key press (e.g. `timeout -s INT` signals pid and group)


def run_daemon(config_path: str | None, data_dir: str | None, log_format: str | None = None) -> int:
    """Validate exactly as check-config does, take the status port, then start. Exit 2 before any
    thread or Redis starts when the config, the environment or the port is not right."""
    # A SIGTERM while the config loads (user modules are imported there) is recorded and honoured
    # once the node exists: Python's default action would kill the process (-15), not stop it (exit 0).
    early: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: early.append(signum))
    from actors.planted import PlantedBugRefused, configured
    from runtime.config import ConfigError, demo_config, load_config
    from runtime.preflight import preflight

    try:
        configured(os.environ)
    except PlantedBugRefused as exc:
        print(f"warden: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    try:
        config = load_config(config_path, now=time.time()) if config_path else demo_config(Path(data_dir or "var"),
                                                                                          now=time.time())
        checked = preflight(config)
    except ConfigError as exc:
        print(f"warden: bad config:\n{exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    from actors.node import Node, StartAborted
    from runtime.logging import log_event, setup_logging

    node = Node(config, checked)

    first_sigint: list[float] = []  # when the first Ctrl-C arrived

    def on_signal(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGINT:
            now = time.monotonic()
            if first_sigint and now - first_sigint[0] < SAME_PRESS_S:
                return  # one key press delivered twice (to the process and to its group)
            if first_sigint:
                # Second Ctrl-C: leave now, like kill -9 (F19): no exchange-side protective stops are
                # placed; positions, journal and stops are in Redis and the next start reconciles them.
                print("\nwarden: second Ctrl-C: exiting now without finishing the graceful stop "
                      "(the next start reconciles with the venue)", file=sys.stderr, flush=True)
                os._exit(EXIT_SECOND_CTRL_C)
            first_sigint.append(now)  # before printing: a signal may interrupt the print
            print("\nwarden: stopping gracefully: strategies first (orders in flight finish), then protective "
                  "stops at the venue for open positions, then the store; Ctrl-C again to exit at once",
                  file=sys.stderr, flush=True)
        node.request_stop(name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for signum in early:
        on_signal(signum, None)
    try:
        node.bind_status()
    except ConfigError as exc:
        print(f"warden: bad config:\n{exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    setup_logging(config.node.data_dir, console=log_format or ("human" if sys.stderr.isatty() else "json"))
    try:
        node.start()
    except ConfigError as exc:  # the venue does not trade a configured symbol: nothing has traded yet
        print(f"warden: bad config:\n{exc}", file=sys.stderr)
        node.request_stop("bad config")
        node.exit_code = EXIT_BAD_CONFIG
        return node.stop()
    except StartAborted:
        log_event("node", "start_aborted", details={"reason": node.stop_reason}, level="WARNING",
                  action_taken="stopping what was started")
        return stopped(node.stop())
    except Exception as exc:
        log_event("node", "start_failed", details={"error": f"{type(exc).__name__}: {exc}"}, level="CRITICAL",
                  action_taken="stopping")
        node.request_stop("start failed")
        node.exit_code = 1
        node.stop()
        return 1
    return stopped(node.wait())


def stopped(code: int) -> int:
    """A stop past its deadline leaves threads waiting on the venue (a stop-loss waiting out
    Retry-After); the interpreter would join them at exit (thread-pool workers) until the service
    manager's SIGKILL. What they were sending is journaled and pending, so leave now."""
    if code == EXIT_STOP_DEADLINE:
        from runtime.logging import close_logging

        close_logging()
        sys.stderr.flush()
        os._exit(code)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        from runtime.cli import main as cli_main

        return cli_main(argv)
    parser = argparse.ArgumentParser(prog="run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="FILE", help="TOML config (default: the built-in demo)")
    parser.add_argument("--data-dir", metavar="DIR", help="demo only: where Redis, logs and buffers live (default var)")
    parser.add_argument("--log-format", choices=("human", "json"),
                        help="terminal log lines (default: human on a terminal, else json); "
                             "the log file under data_dir/logs is always JSON")
    args = parser.parse_args(argv)
    return run_daemon(args.config, args.data_dir, args.log_format)


if __name__ == "__main__":
    sys.exit(main())
