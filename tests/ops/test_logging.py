"""runtime.logging: one JSON object per line with the spec's fields; secrets never appear."""
from __future__ import annotations

import json
import logging as std_logging
import time

from loguru import logger

from runtime.logging import log_event, redact, register_secret, setup_logging

FIELDS = ["timestamp", "level", "component", "event", "details", "action_taken"]


def parse(lines: list[str]) -> list[dict]:
    out = []
    for line in lines:
        assert line.endswith("\n") and line.count("\n") == 1, f"one object per line: {line!r}"
        out.append(json.loads(line))
    return out


def test_log_event_writes_one_json_object_with_exactly_the_spec_fields(captured_logs):
    before = time.time_ns()
    log_event("execution-engine", "order_timeout", details={"client_order_id": "s1:buy:1", "attempt": 2},
              action_taken="query_by_client_id", level="WARNING")
    after = time.time_ns()
    (entry,) = parse(captured_logs)
    assert list(entry) == FIELDS
    assert isinstance(entry["timestamp"], int) and before - 1_000 <= entry["timestamp"] <= after
    assert entry["level"] == "WARNING"
    assert entry["component"] == "execution-engine"
    assert entry["event"] == "order_timeout"
    assert entry["details"] == {"client_order_id": "s1:buy:1", "attempt": 2}
    assert entry["action_taken"] == "query_by_client_id"


def test_defaults_and_exceptions(captured_logs):
    log_event("feed:BTCUSDT", "connected")
    try:
        raise ValueError("bad frame")
    except ValueError as exc:
        log_event("feed:BTCUSDT", "corrupt_message", level="ERROR", exc=exc, action_taken="dropped")
    first, second = parse(captured_logs)
    assert (first["level"], first["details"], first["action_taken"]) == ("INFO", {}, None)
    assert second["details"]["exception"]["type"] == "ValueError"
    assert second["details"]["exception"]["message"] == "bad frame"
    assert "raise ValueError" in second["details"]["exception"]["traceback"]


def test_plain_loguru_calls_keep_the_same_shape(captured_logs):
    logger.bind(symbol="BTCUSDT").warning("feed stale for {age}s", age=3)
    (entry,) = parse(captured_logs)
    assert list(entry) == FIELDS
    assert entry["event"] == "feed stale for 3s"
    assert entry["details"] == {"symbol": "BTCUSDT", "age": 3}
    assert entry["component"] == __name__


def test_secrets_are_redacted_by_key_by_value_and_in_text(captured_logs):
    register_secret("k3y-V4lue-0f-the-venue")
    log_event("venue", "request", details={
        "api_key": "plain-key", "apiSecret": "plain-secret", "X-MBX-APIKEY": "hdr",
        "headers": {"Authorization": "Bearer tok-123"},
        "password": "pw", "listenKey": "lk", "signature": "abcdef",
        "token_env": "WARDEN_TOKEN",  # a variable *name*: kept
        "tokens": 17,  # rate budget, not a credential: kept
        "note": "sent with k3y-V4lue-0f-the-venue in the body",
        "url": "https://fapi/fapi/v1/order?symbol=BTCUSDT&timestamp=1&signature=9f86d08",
        "dsn": "redis://:hunter2hunter2@db:6379/0",
        "list": [{"secret": "s"}, "Bearer abc.def"],
    }, action_taken="used k3y-V4lue-0f-the-venue")
    raw = "".join(captured_logs)
    for leaked in ("plain-key", "plain-secret", "hdr", "tok-123", '"pw"', '"lk"', "abcdef",
                   "k3y-V4lue-0f-the-venue", "9f86d08", "hunter2hunter2", "abc.def"):
        assert leaked not in raw, f"{leaked!r} leaked into {raw}"
    (entry,) = parse(captured_logs)
    d = entry["details"]
    assert d["api_key"] == d["apiSecret"] == d["X-MBX-APIKEY"] == d["password"] == "***"
    assert d["headers"] == {"Authorization": "***"}
    assert d["token_env"] == "WARDEN_TOKEN" and d["tokens"] == 17
    assert d["note"] == "sent with *** in the body"
    assert d["url"].endswith("symbol=BTCUSDT&timestamp=1&signature=***")
    assert d["dsn"] == "redis://:***@db:6379/0"
    assert entry["action_taken"] == "used ***"


def test_redact_leaves_ordinary_values_alone():
    value = {"symbol": "BTCUSDT", "qty": 0.01, "ok": True, "none": None, "ids": ["s1", "s2"]}
    assert redact(value) == value


def test_setup_logging_writes_json_lines_to_data_dir_and_intercepts_stdlib(tmp_path, restore_logging):
    path = setup_logging(tmp_path, level="INFO", stderr=False)
    assert path == tmp_path / "logs" / "warden.log"
    register_secret("s3cret-token-for-urllib3")
    log_event("root", "started", details={"strategies": 4})
    std_logging.getLogger("pykka").warning("actor %s crashed", "strategy:s1")
    std_logging.getLogger("urllib3.connectionpool").info("GET /x?token=s3cret-token-for-urllib3 200")
    log_event("root", "too_chatty", level="DEBUG")  # below the configured level
    logger.complete()
    entries = parse(path.read_text().splitlines(keepends=True))
    assert [e["event"] for e in entries] == [
        "started", "actor strategy:s1 crashed", "GET /x?token=*** 200"]
    assert entries[1]["component"] == "pykka" and entries[1]["level"] == "WARNING"
    assert entries[2]["component"] == "urllib3.connectionpool"
    assert all(list(e) == FIELDS for e in entries)


def test_f20_rotate_now_starts_a_new_file_at_the_next_line(tmp_path):
    from runtime.logging import log_event, rotate_now, setup_logging

    path = setup_logging(tmp_path, stderr=False)
    log_event("test", "before_rotation")
    rotate_now()
    log_event("test", "after_rotation")
    logger.complete()
    rotated = [p for p in path.parent.iterdir() if p.name != path.name]
    assert len(rotated) == 1, f"one rotated file expected, found {sorted(p.name for p in path.parent.iterdir())}"
    assert "before_rotation" in rotated[0].read_text() and "after_rotation" in path.read_text()
    logger.remove()
