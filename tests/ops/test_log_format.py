"""Issue 15, readable logs: short human lines on the terminal, repeats folded, headlines as sentences."""
from __future__ import annotations

import io
import json

from runtime.log_format import HumanSink, human_line


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def line(event: str = "order_refused", reason: str = "gate closed", **kw) -> dict:
    return {"timestamp": 1_700_000_000_000_000_000, "level": kw.pop("level", "INFO"),
            "component": kw.pop("component", "execution-engine"), "event": event,
            "details": {"strategy": "s1", "reason": reason, **kw.pop("details", {})},
            "action_taken": kw.pop("action_taken", "not sent")}


def test_issue15_human_line_is_one_short_line_with_details_and_action():
    text = human_line(line())
    assert text.endswith("INFO  execution-engine  order_refused  strategy=s1 reason=gate closed → not sent")
    assert "\n" not in text and "{" not in text


def test_issue15_headlines_are_sentences():
    ready = line("ready", component="node", action_taken="ready, trading 4 strategies on 2 symbols")
    assert human_line(ready).split(" ", 1)[1] == "ready, trading 4 strategies on 2 symbols"


def test_issue15_errors_show_the_exception_type_and_are_coloured_on_a_tty():
    err = line("actor_failed", level="ERROR",
               details={"exception": {"type": "ZeroDivisionError", "message": "division by zero", "traceback": "…"}})
    assert "[ZeroDivisionError: division by zero]" in human_line(err)
    assert human_line(err, color=True).startswith("\033[31m")


def test_issue15_repeated_identical_events_are_folded_into_one_line():
    out, clock = io.StringIO(), Clock()
    sink = HumanSink(out, window_s=10.0, clock=clock)
    for i in range(15):
        clock.now = i * 0.5
        sink.handle(line())
    sink.handle(line(reason="store down"))  # a different reason is a different event
    assert len(out.getvalue().splitlines()) == 2, "the first of a run prints at once, the repeats wait"
    clock.now = 10.5
    sink.flush()
    lines = out.getvalue().splitlines()
    assert lines[2].endswith("order_refused ×15 in 10 s: gate closed"), lines
    assert len(lines) == 3, "a single event is not summarized"
    sink.handle(line())  # a new window starts with a line of its own
    assert out.getvalue().splitlines()[-1].endswith("reason=gate closed → not sent")


def test_issue15_close_summarizes_the_open_runs():
    out, clock = io.StringIO(), Clock()
    sink = HumanSink(out, clock=clock)
    for _ in range(3):
        sink.handle(line())
    sink.close()
    assert out.getvalue().splitlines()[-1].endswith("order_refused ×3 in 0 s: gate closed")


def test_issue15_the_log_file_stays_json_with_a_human_terminal(tmp_path, restore_logging, capfd):
    from runtime.logging import log_event, setup_logging

    path = setup_logging(tmp_path, console="human")
    log_event("execution-engine", "order_refused", details={"reason": "gate closed"}, action_taken="not sent")
    record = json.loads(path.read_text().splitlines()[-1])
    assert record["event"] == "order_refused" and record["details"] == {"reason": "gate closed"}
    assert "order_refused  reason=gate closed → not sent" in capfd.readouterr().err
