"""runtime.status_server over real HTTP on 127.0.0.1, port 0."""
from __future__ import annotations

import json

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from runtime.config import ConfigError, StatusConfig
from runtime.metrics import Metrics
from runtime.status_server import CommandError, StatusServer

from .samples import find

TOKEN = "op-token-7f3a9c2e"


class Handler:
    """Records the commands that reach the node; may be told to refuse."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.refuse: CommandError | None = None

    def __call__(self, name: str, args: dict) -> dict:
        if self.refuse is not None:
            raise self.refuse
        self.calls.append((name, args))
        return {"applied": name}


@pytest.fixture
def http():
    session = requests.Session()
    session.trust_env = False
    yield session
    session.close()


def serve(status, handler, token=None, metrics=None):
    metrics = metrics or Metrics()
    return StatusServer(lambda: status, handler, metrics.registry, bind="127.0.0.1:0", token=token,
                        on_scrape=lambda: metrics.update_from_status(status)).start()


@pytest.fixture
def handler():
    return Handler()


@pytest.fixture
def server(status, handler):
    srv = serve(status, handler)
    yield srv
    srv.stop()


@pytest.fixture
def token_server(status, handler):
    srv = serve(status, handler, token=TOKEN)
    yield srv
    srv.stop()


def test_port_zero_binds_a_free_port_and_status_returns_the_provider_document(server, http, status):
    assert server.port != 0 and server.url == f"http://127.0.0.1:{server.port}"
    response = http.get(server.url + "/status", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == json.loads(json.dumps(status))
    status["mode"] = "REDUCED"  # live: every request asks the provider again
    assert http.get(server.url + "/status", timeout=5).json()["mode"] == "REDUCED"


def test_health_is_200_while_the_root_runs_and_503_otherwise(server, http, status):
    assert http.get(server.url + "/health", timeout=5).status_code == 200
    find(status["tree"], "strategy:s1")["state"] = "failed"  # a child's trouble is not liveness
    assert http.get(server.url + "/health", timeout=5).status_code == 200
    status["tree"]["state"] = "escalated"
    response = http.get(server.url + "/health", timeout=5)
    assert response.status_code == 503
    assert response.json() == {"ok": False, "reasons": ["root is escalated"]}
    status["tree"]["state"] = "running"
    status["mode"] = "HARD_SHUTDOWN"
    assert http.get(server.url + "/health", timeout=5).json()["reasons"] == ["mode HARD_SHUTDOWN"]


def test_ready_only_when_gate_open_and_trading_active(server, http, status):
    assert http.get(server.url + "/ready", timeout=5).status_code == 200
    status["gate"] = {"open": False, "reasons": ["feed:BTCUSDT stale", "store down"]}
    response = http.get(server.url + "/ready", timeout=5)
    assert response.status_code == 503
    assert response.json()["reasons"] == ["gate closed: feed:BTCUSDT stale; store down"]
    status["gate"] = {"open": True, "reasons": []}
    status["trading"] = "HALTED"
    response = http.get(server.url + "/ready", timeout=5)
    assert (response.status_code, response.json()["reasons"]) == (503, ["trading HALTED"])


def test_provider_failure_is_503_not_a_crash(handler, http):
    def broken():
        raise RuntimeError("tree lock timeout")

    srv = StatusServer(broken, handler, Metrics().registry, bind="127.0.0.1:0").start()
    try:
        for path in ("/status", "/health", "/ready"):
            response = http.get(srv.url + path, timeout=5)
            assert response.status_code == 503
            assert "RuntimeError: tree lock timeout" in response.json()["reasons"][0]
        assert http.get(srv.url + "/status", timeout=5).status_code == 503  # still serving
    finally:
        srv.stop()


def test_metrics_is_prometheus_text_that_parses(server, http):
    response = http.get(server.url + "/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert families["warden_gate_open"].samples[0].value == 1.0
    states = {(s.labels["node"], s.labels["state"]): s.value for s in families["warden_actor_state"].samples}
    assert states[("strategy:s1", "running")] == 1.0 and states[("strategy:s1", "failed")] == 0.0
    assert "warden_restarts" in families


def test_commands_without_a_token_configured_reach_the_handler(server, http, handler):
    response = http.post(server.url + "/commands/strategy-stop", json={"reason": "maintenance", "id": "s1"}, timeout=5)
    assert response.status_code == 200
    assert response.json() == {"ok": True, "command": "strategy-stop", "result": {"applied": "strategy-stop"}}
    assert handler.calls == [("strategy-stop", {"reason": "maintenance", "id": "s1"})]


def test_commands_need_the_bearer_token_when_one_is_configured(token_server, http, handler):
    url = token_server.url + "/commands/halt"
    body = {"reason": "drill"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}):
        response = http.post(url, json=body, headers=headers, timeout=5)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert handler.calls == [], "an unauthenticated command must not reach the node"
    response = http.post(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert response.status_code == 200
    assert handler.calls == [("halt", {"reason": "drill"})]
    # reads stay open for probes and scrapers
    assert http.get(token_server.url + "/status", timeout=5).status_code == 200


@pytest.mark.parametrize(("path", "body", "error"), [
    ("/commands/launch-missiles", {"reason": "x"}, "unknown command 'launch-missiles'"),
    ("/commands/halt", {}, "halt needs a non-empty 'reason'"),
    ("/commands/halt", {"reason": "   "}, "halt needs a non-empty 'reason'"),
    ("/commands/halt", {"reason": 5}, "halt needs a non-empty 'reason'"),
    ("/commands/strategy-stop", {"reason": "x"}, "strategy-stop needs 'id'"),
    ("/commands/strategy-enable", {"reason": "x", "id": "bad id!"}, "'id' must match"),
    ("/commands/breaker-reset", {"reason": "x"}, "breaker-reset needs 'name'"),
    ("/commands/resume", {"reason": "x", "id": "s1"}, "unexpected field(s) id for resume"),
    ("/commands/halt", ["reason"], "body must be a JSON object"),
    ("/commands/halt", "not json{", "body must be a JSON object"),
])
def test_bad_commands_are_400_and_change_nothing(server, http, handler, path, body, error, captured_logs):
    if isinstance(body, str):
        response = http.post(server.url + path, data=body, timeout=5)
    else:
        response = http.post(server.url + path, json=body, timeout=5)
    assert response.status_code == 400
    assert error in response.json()["error"]
    assert handler.calls == []
    rejected = [json.loads(line) for line in captured_logs if '"operator_command_rejected"' in line]
    assert len(rejected) == 1 and error in rejected[0]["details"]["error"]


def test_handler_refusal_and_failure_are_reported(server, http, handler):
    handler.refuse = CommandError("no strategy 's9'", 404)
    response = http.post(server.url + "/commands/strategy-start", json={"reason": "x", "id": "s9"}, timeout=5)
    assert (response.status_code, response.json()["error"]) == (404, "no strategy 's9'")
    handler.refuse = KeyError("boom")  # type: ignore[assignment]
    response = http.post(server.url + "/commands/halt", json={"reason": "x"}, timeout=5)
    assert response.status_code == 500 and "KeyError" in response.json()["error"]


def test_every_command_is_logged_with_its_reason_and_never_the_token(token_server, http, captured_logs):
    http.post(token_server.url + "/commands/breaker-reset", json={"reason": "loss reviewed by ops", "name": "loss"},
              headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    http.post(token_server.url + "/commands/halt", json={"reason": "x"},
              headers={"Authorization": "Bearer guess"}, timeout=5)
    entries = [json.loads(line) for line in captured_logs]
    events = [e["event"] for e in entries if e["component"] == "status-server"]
    assert events == ["operator_command", "operator_command_done", "operator_command_unauthorized"]
    done = next(e for e in entries if e["event"] == "operator_command_done")
    assert done["details"]["reason"] == "loss reviewed by ops" and done["details"]["name"] == "loss"
    assert TOKEN not in "".join(captured_logs)


def test_unknown_paths_and_methods(server, http):
    assert http.get(server.url + "/nope", timeout=5).status_code == 404
    assert http.get(server.url + "/commands/halt", timeout=5).status_code == 405
    assert http.post(server.url + "/status", json={}, timeout=5).status_code == 404


def test_from_config_reads_the_token_from_the_named_variable_and_fails_closed(status, handler, http):
    config = StatusConfig(bind="127.0.0.1:0", token_env="WARDEN_TEST_TOKEN")
    with pytest.raises(ConfigError) as info:
        StatusServer.from_config(config, lambda: status, handler, Metrics().registry, environ={})
    assert info.value.problems[0].field == "status.token_env"
    srv = StatusServer.from_config(config, lambda: status, handler, Metrics().registry,
                                   environ={"WARDEN_TEST_TOKEN": TOKEN}).start()
    try:
        assert http.post(srv.url + "/commands/halt", json={"reason": "x"}, timeout=5).status_code == 401
    finally:
        srv.stop()
