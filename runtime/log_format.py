"""Logs for a person at a terminal: one short line per event, repeats folded.

The log file stays JSON (runtime/logging.py); this is only the terminal's view of the
same, already redacted, lines. `human_line(line)` renders one JSON log object:

    20:33:14 WARN  execution-engine  order_refused  strategy=s1 reason=gate closed → entry not queued

Headline events (the node is ready, trading has begun, stopping, stopped) print as a
plain sentence. `HumanSink` is the loguru sink: the first of a run of identical events
(same level, component, event and reason) prints at once; further ones within `window_s`
are counted and summed up in one line when the window ends:

    20:33:24 INFO  execution-engine  order_refused ×15 in 10 s: gate closed
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from typing import Any, Callable, Mapping, TextIO

from runtime.logging import render_record

__all__ = ["HEADLINES", "HumanSink", "human_line"]

# (component, event) whose action_taken is a sentence for the operator.
HEADLINES = frozenset({("node", "ready"), ("node", "trading_started"), ("node", "stopping"),
                       ("node", "stopped"), ("node", "stop_step")})
_LEVEL = {"TRACE": "TRACE", "DEBUG": "DEBUG", "INFO": "INFO ", "SUCCESS": "OK   ", "WARNING": "WARN ",
          "ERROR": "ERROR", "CRITICAL": "CRIT "}
_COLOR = {"WARNING": "\033[33m", "ERROR": "\033[31m", "CRITICAL": "\033[1;31m", "DEBUG": "\033[2m"}
_BOLD, _RESET = "\033[1m", "\033[0m"
MAX_VALUE_CHARS = 80
MAX_DETAILS = 6


def _clock(ns: Any) -> str:
    try:
        return datetime.fromtimestamp(int(ns) / 1e9).strftime("%H:%M:%S")
    except (TypeError, ValueError, OverflowError):
        return "--:--:--"


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, separators=(",", ":"))
    text = " ".join(text.split())
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _details(details: Mapping[str, Any]) -> str:
    items = [(k, v) for k, v in details.items() if k != "exception" and v not in (None, "", [], {})]
    shown = " ".join(f"{k}={_value(v)}" for k, v in items[:MAX_DETAILS])
    return shown + (f" (+{len(items) - MAX_DETAILS} more)" if len(items) > MAX_DETAILS else "")


def reason_of(line: Mapping[str, Any]) -> str:
    """What makes two events 'the same': the reason they give, else what was done."""
    details = line.get("details") or {}
    return str(details.get("reason") or details.get("cause") or line.get("action_taken") or "")


def human_line(line: Mapping[str, Any], color: bool = False) -> str:
    """One JSON log object -> one terminal line (no newline)."""
    level = str(line.get("level", "INFO"))
    component, event = str(line.get("component", "")), str(line.get("event", ""))
    when = _clock(line.get("timestamp"))
    if (component, event) in HEADLINES and line.get("action_taken"):
        text = f"{when} {line['action_taken']}"
        return f"{_BOLD}{text}{_RESET}" if color else text
    text = f"{when} {_LEVEL.get(level, level[:5]):5} {component:<17} {event}"
    details = _details(line.get("details") or {})
    if details:
        text += f"  {details}"
    if line.get("action_taken"):
        text += f" → {_value(line['action_taken'])}"
    exception = (line.get("details") or {}).get("exception")
    if isinstance(exception, Mapping):
        text += f"  [{exception.get('type')}: {_value(exception.get('message', ''))}]"
    return f"{_COLOR[level]}{text}{_RESET}" if color and level in _COLOR else text


class _Run:
    __slots__ = ("first", "count", "started")

    def __init__(self, first: Mapping[str, Any], started: float) -> None:
        self.first, self.count, self.started = first, 1, started


class HumanSink:
    """A loguru sink writing `human_line`s to `stream`, folding repeats (see the module doc)."""

    def __init__(self, stream: TextIO, color: bool = False, window_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.color = color
        self.window_s = window_s
        self.clock = clock
        self._runs: dict[tuple[str, str, str, str], _Run] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __call__(self, message: Any) -> None:
        self.handle(json.loads(render_record(message.record)))

    def handle(self, line: Mapping[str, Any]) -> None:
        """One JSON log object (the loguru call goes through __call__; no `write`, which would make
        loguru treat this as a stream)."""
        key = (str(line.get("level")), str(line.get("component")), str(line.get("event")), reason_of(line))
        now = self.clock()
        with self._lock:
            self._flush_expired(now)
            run = self._runs.get(key)
            if run is not None:
                run.count += 1
                return
            self._runs[key] = _Run(line, now)
            self._emit(human_line(line, self.color))

    def flush(self) -> None:
        """Summarize the runs whose window has ended (the ticker calls this every second)."""
        with self._lock:
            self._flush_expired(self.clock())

    def close(self) -> None:
        """Summarize every open run now (at exit)."""
        self._stop.set()
        with self._lock:
            self._flush_expired(self.clock(), everything=True)

    def start_ticker(self, interval_s: float = 1.0) -> "HumanSink":
        def tick() -> None:
            while not self._stop.wait(interval_s):
                self.flush()

        self._ticker = threading.Thread(target=tick, name="log-folding", daemon=True)
        self._ticker.start()
        return self

    def _flush_expired(self, now: float, everything: bool = False) -> None:
        for key, run in list(self._runs.items()):
            if now - run.started < self.window_s and not everything:
                continue
            del self._runs[key]
            if run.count > 1:
                self._emit(self._summary(run, min(now - run.started, self.window_s)))

    def _summary(self, run: _Run, seconds: float) -> str:
        line = run.first
        reason = reason_of(line)
        summary = {**line, "timestamp": time.time_ns(), "details": {}, "action_taken": None,
                   "event": f"{line.get('event')} ×{run.count} in {seconds:.0f} s" + (f": {_value(reason)}" if reason else "")}
        return human_line(summary, self.color)

    def _emit(self, text: str) -> None:
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (BrokenPipeError, ValueError):  # the terminal went away: the log file still has everything
            pass
