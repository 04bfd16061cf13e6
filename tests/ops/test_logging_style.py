"""Issue 15: one logging call style across the code, and converted events still reach the JSON log.

The project's style is `runtime.logging.log_event(component, event, details=..., action_taken=...,
level=..., exc=...)`: a node id, a snake_case event name and fields. The source scan below refuses
the other styles that were in use (a bound loguru logger with `.bind(event=...).error(...)`,
`log.warning("text", event=...)` keyword fields, plain `log.exception("text")` messages, stdlib
`logging.getLogger(...).info(...)`), so they cannot creep back.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
import requests

from runtime.logging import setup_logging
from runtime.simexchange import SimExchange
from runtime.simexchange.deferred import Deferred
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("actors", "runtime", "supervision", "bench", "chaos")
# runtime/logging.py defines log_event and the sinks; log_format.py renders lines for a terminal.
ALLOWED = {Path("runtime/logging.py"), Path("runtime/log_format.py")}
LEVEL_METHODS = {"trace", "debug", "info", "success", "warning", "error", "critical", "exception", "log"}
LOGGER_NAMES = {"logger", "log", "_log", "LOG", "LOGGER"}


def _project_sources() -> list[Path]:
    files = [ROOT / "run.py"]
    for package in PACKAGES:
        files.extend(sorted((ROOT / package).rglob("*.py")))
    return [f for f in files if f.relative_to(ROOT) not in ALLOWED]


def _root_name(node: ast.expr) -> str | None:
    """The name a call chain hangs from: `log` in `log.bind(...).error`, `_log` in `self._log.info`."""
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                return node.attr
            node = node.value
        elif isinstance(node, ast.Name):
            return node.id
        else:
            return None


def _is_get_logger(node: ast.expr) -> bool:
    while isinstance(node, (ast.Attribute, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
        if isinstance(node, ast.Attribute) and node.attr == "getLogger":
            return True
    return False


def other_style_calls(source: str) -> list[tuple[int, str]]:
    """(line, code) of every logging call that is not `log_event(...)`, one per line."""
    found: dict[int, str] = {}
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        attr, receiver = node.func.attr, node.func.value
        bound = attr in {"bind", "opt", "patch", "contextualize"} and _root_name(receiver) in LOGGER_NAMES
        emits = attr in LEVEL_METHODS and (_root_name(receiver) in LOGGER_NAMES or _is_get_logger(receiver))
        if bound or emits:
            found.setdefault(node.lineno, ast.get_source_segment(source, node).split("\n")[0])
    return sorted(found.items())


def test_issue15_the_scan_recognises_each_retired_style() -> None:
    retired = [
        'log.bind(event="lock_lost", details={}).error("lock_lost")',
        'self._log.bind(event="x").warning("x")',
        'log.warning("venue request not ok", event="venue_request", details=d)',
        'log.exception("simexchange handler failed")',
        'logger.opt(exception=exc).error("cleanup failed")',
        'log = logger.bind(component="store")',
        'logging.getLogger(__name__).info("x")',
    ]
    for code in retired:
        assert other_style_calls(code), f"the scan misses {code!r}"
    kept = ['log_event("store", "lock_lost", details={"key": k}, level="WARNING")', "logger.remove()",
            'logging.getLogger("pykka").setLevel(logging.CRITICAL)', "self._log(method, path, outcome)"]
    for code in kept:
        assert not other_style_calls(code), f"the scan flags the project's own style: {code!r}"


def test_issue15_one_logging_call_style_across_the_code() -> None:
    offenders = [f"{path.relative_to(ROOT)}:{line}: {code}"
                 for path in _project_sources() for line, code in other_style_calls(path.read_text())]
    assert not offenders, ("every log line is written with runtime.logging.log_event(component, event, "
                           "details=..., ...); other styles found:\n" + "\n".join(offenders))


def _log_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def log_file(tmp_path: Path, restore_logging: None) -> Path:
    return setup_logging(tmp_path, "DEBUG", stderr=False)


def test_issue15_a_converted_event_reaches_the_json_log_with_its_fields(log_file: Path) -> None:
    """The simulator's Deferred logged a bare message ("simexchange deferred job failed: ...")."""
    deferred = Deferred()

    def broken() -> None:
        raise RuntimeError("late execution blew up")

    try:
        deferred.call_later(0.0, broken, "execute s1:e1")
        eventually(lambda: any(line["event"] == "deferred_job_failed" for line in _log_lines(log_file)),
                   timeout=10, what="the failed job's log line")
    finally:
        deferred.stop()
    (line,) = [line for line in _log_lines(log_file) if line["event"] == "deferred_job_failed"]
    assert (line["component"], line["level"]) == ("simexchange", "ERROR"), \
        f"a converted event keeps the spec's fields in the JSON log: {line}"
    assert line["details"]["job"] == "execute s1:e1"
    assert line["details"]["exception"]["type"] == "RuntimeError"


def test_issue15_simulator_handler_failure_is_one_named_json_line(log_file: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A simulator bug answers 500 over real HTTP and logs `handler_failed` with the request named."""
    exchange = SimExchange(["BTCUSDT"], {"BTCUSDT": 100_000.0}, seed=1, volatility=0.0).start()
    try:
        def broken() -> dict[str, Any]:
            raise KeyError("filters")

        monkeypatch.setattr(exchange.engine, "exchange_info", broken)
        reply = requests.get(f"{exchange.rest_url}/fapi/v1/exchangeInfo", timeout=10)
        assert reply.status_code == 500
    finally:
        exchange.stop()
    failed = [line for line in _log_lines(log_file) if line["event"] == "handler_failed"]
    assert failed, "a simulator handler failure is logged as one named JSON event"
    assert failed[0]["component"] == "simexchange"
    assert failed[0]["details"]["method"] == "GET" and failed[0]["details"]["path"] == "/fapi/v1/exchangeInfo"
    assert failed[0]["details"]["exception"]["type"] == "KeyError"
