"""Alerts: JSON posted to an operator webhook for the events that need a person.

`WebhookAlerter` is a loguru sink, so every component that already logs the event alerts
without knowing about webhooks. What alerts (ALERT_EVENTS): breaker trips, degradation
mode changes, SAFETY_ABORT, unprotected positions, reconciliation drift, an exit
the venue refused -2022 (the position is gone at the venue), a graceful stop that ran
out of its deadline and a late fill's excess, corrected or not.

The sink runs on the logging thread (often an actor's): it only appends to a bounded
queue and returns; when the queue is full the oldest alert is dropped and counted, so
trading never waits for the webhook. One worker thread posts each alert, retrying with
exponential backoff (`backoff_s`, doubling, up to `max_attempts`), then gives up on it
and logs that it did (a log line the sink itself ignores, so no loop).

Payload: {"node", "event", "component", "level", "at" (epoch s), "details", "action_taken",
"summary"}, already redacted like the log line it comes from.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from typing import Any, Callable, Mapping

import requests
from loguru import logger

from runtime.logging import log_event, redact

__all__ = ["ALERT_EVENTS", "WebhookAlerter", "alert_for"]

COMPONENT = "alerts"
# Log events that become alerts; `transition` only when it is a mode change.
ALERT_EVENTS = frozenset({"breaker_tripped", "transition", "safety_abort", "unprotected_position",
                          "reconcile_drift", "root_escalated", "exit_nothing_to_reduce", "stop_deadline_passed",
                          "excess_corrected", "excess_not_corrected"})


def alert_for(extra: Mapping[str, Any], level: str, node: str, at: float) -> dict[str, Any] | None:
    """The webhook payload for one log record's bound fields, or None when it is not an alert."""
    event = extra.get("event")
    if event not in ALERT_EVENTS or extra.get("component") == COMPONENT:
        return None
    details = dict(extra.get("details") or {})
    if event == "transition" and details.get("kind") != "mode":
        return None
    summaries = {
        "breaker_tripped": lambda d: f"breaker {d.get('name')} tripped: {d.get('reason')}",
        "transition": lambda d: f"mode {d.get('from')} -> {d.get('to')}: {d.get('cause')}",
        "safety_abort": lambda d: f"SAFETY_ABORT {d.get('strategy', '')}: {d.get('reason')}",
        "unprotected_position": lambda d: f"unprotected position {d.get('strategy', '')} {d.get('symbol', '')}",
        "reconcile_drift": lambda d: f"positions disagree with the venue on {d.get('symbol')}",
        "root_escalated": lambda d: f"root supervisor escalated: {d.get('reason')}",
        "stop_deadline_passed": lambda d: (f"graceful stop deadline ({d.get('deadline_s')} s) passed; unprotected: "
                                           f"{', '.join(d.get('unprotected') or []) or 'none'}; in doubt: "
                                           f"{', '.join(d.get('in_doubt') or []) or 'none'}"),
        "exit_nothing_to_reduce": lambda d: (f"exit {d.get('client_order_id')} refused -2022: the position of "
                                             f"{d.get('strategy')} is gone at the venue on {d.get('symbol')}"),
        "excess_corrected": lambda d: (f"excess {d.get('excess')} on {d.get('symbol')} corrected by "
                                       f"{d.get('side')} {d.get('client_order_id')}: {d.get('cause')}"),
        "excess_not_corrected": lambda d: (f"excess on {d.get('symbol')} NOT corrected ({d.get('why')}): "
                                           f"late fill of {d.get('client_order_id')}"),
    }
    return redact({
        "node": node, "event": event, "component": extra.get("component"), "level": level, "at": at,
        "summary": summaries[event](details), "details": details, "action_taken": extra.get("action_taken"),
    })


class WebhookAlerter:
    def __init__(self, url: str, node: str, *, max_queue: int = 1000, max_attempts: int = 5,
                 backoff_s: float = 0.5, timeout_s: float = 5.0,
                 post: Callable[..., Any] | None = None) -> None:
        self.url = url
        self.node = node
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._queue: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_queue)
        self._wake = threading.Condition()
        self._stop = threading.Event()
        session = requests.Session()
        session.trust_env = False
        self._post = post or session.post
        self._thread = threading.Thread(target=self._run, name="alerts-webhook", daemon=True)
        self._sink_id: int | None = None

    # --- the loguru sink (any thread; never blocks) ---------------------------------------

    def __call__(self, message: Any) -> None:
        record = message.record
        payload = alert_for(record["extra"], record["level"].name, self.node, record["time"].timestamp())
        if payload is None:
            return
        with self._wake:
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1  # the deque drops the oldest
            self._queue.append(payload)
            self._wake.notify()

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "WebhookAlerter":
        """Start the worker and listen to the logs."""
        self._thread.start()
        self._sink_id = logger.add(self, level="INFO", format="{message}", catch=True)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening and stop the worker; alerts still queued get until `timeout` to go out."""
        if self._sink_id is not None:
            logger.remove(self._sink_id)
            self._sink_id = None
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.05)
        self._stop.set()
        with self._wake:
            self._wake.notify()
        self._thread.join(max(0.0, deadline - time.monotonic()) + 0.1)

    # --- worker --------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._wake:
                while not self._queue and not self._stop.is_set():
                    self._wake.wait(1.0)
                if self._stop.is_set():
                    return
                payload = self._queue[0]
            self._deliver(payload)
            with self._wake:
                if self._queue and self._queue[0] is payload:
                    self._queue.popleft()

    def _deliver(self, payload: dict[str, Any]) -> None:
        delay, error = self.backoff_s, ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                reply = self._post(self.url, data=json.dumps(payload, default=str),
                                   headers={"Content-Type": "application/json"}, timeout=self.timeout_s)
                if 200 <= reply.status_code < 300:
                    self.sent += 1
                    return
                error = f"HTTP {reply.status_code}"
            except requests.RequestException as exc:
                error = f"{type(exc).__name__}: {exc}"
            if attempt < self.max_attempts and self._stop.wait(delay):
                break
            delay *= 2
        self.failed += 1
        log_event(COMPONENT, "alert_not_delivered", level="WARNING",
                  details={"event": payload["event"], "summary": payload["summary"], "error": error,
                           "attempts": self.max_attempts},
                  action_taken="alert dropped after retries; the log line remains")
