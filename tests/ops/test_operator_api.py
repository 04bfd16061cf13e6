"""Issue 13: the operator API holds against careless or hostile clients (real HTTP on 127.0.0.1)."""
from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from runtime.metrics import Metrics
from runtime.status_server import StatusServer, _Handler
from tests.waiting import eventually


def _handler(name: str, args: dict) -> dict:
    return {"applied": True}


@pytest.fixture
def server(status):
    srv = StatusServer(lambda: status, _handler, Metrics().registry, bind="127.0.0.1:0")
    srv.read_deadline_s = 0.5
    srv.start()
    yield srv
    srv.stop()


def _events(lines: list[str], event: str) -> list[dict]:
    return [rec for rec in map(json.loads, lines) if rec["event"] == event]


def test_issue13_trickling_client_is_cut_off_by_the_read_deadline(server, captured_logs):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /status HTTP/1.1\r\n")
        cut_off = False
        for _ in range(60):  # up to ~12 s of trickling, far past the 0.5 s deadline
            try:
                sock.sendall(b"X")
                time.sleep(0.2)
                sock.setblocking(False)
                try:
                    cut_off = sock.recv(1) == b""
                except BlockingIOError:
                    pass
                finally:
                    sock.setblocking(True)
            except OSError:
                cut_off = True
            if cut_off:
                break
    assert cut_off, "a client trickling its headers must lose its connection at the read deadline"
    eventually(lambda: _events(captured_logs, "request_deadline"), 10, what="request_deadline logged")


def test_issue13_deeply_nested_json_command_is_a_400(server):
    body = "[" * 30_000 + "]" * 30_000
    response = requests.post(server.url + "/commands/halt", data=body, timeout=10,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["error"]


def test_issue13_client_hanging_up_is_quiet(server, captured_logs, capfd):
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert requests.get(server.url + "/status", timeout=10).status_code == 200
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert not _events(captured_logs, "request_failed")


def test_issue13_server_side_error_is_one_json_log_line_not_a_traceback(server, captured_logs, capfd, monkeypatch):
    def broken(self):  # noqa: ANN001
        raise RuntimeError("provider exploded")

    monkeypatch.setattr(_Handler, "_status", broken)
    with pytest.raises(requests.RequestException):
        requests.get(server.url + "/status", timeout=10)
    eventually(lambda: _events(captured_logs, "request_failed"), 10, what="request_failed logged")
    (record,) = _events(captured_logs, "request_failed")
    assert record["level"] == "ERROR" and "provider exploded" in record["details"]["error"]
    _, err = capfd.readouterr()
    assert "Traceback" not in err


def test_issue13_startup_log_says_plainly_whether_commands_need_a_token(status, captured_logs):
    for token, expected in ((None, False), ("op-token-51c0ffee", True)):
        srv = StatusServer(lambda: status, _handler, Metrics().registry, bind="127.0.0.1:0", token=token).start()
        srv.stop()
        record = _events(captured_logs, "listening")[-1]
        assert record["details"]["token_required"] is expected, "the key name must not hide its value"
        assert ("require the operator token" in record["action_taken"]) is expected


def test_issue13_bind_takes_the_port_before_serving_and_a_busy_port_fails(status):
    first = StatusServer(lambda: status, _handler, Metrics().registry, bind="127.0.0.1:0").bind()
    try:
        with pytest.raises(OSError):
            StatusServer(lambda: status, _handler, Metrics().registry, bind=f"127.0.0.1:{first.port}").bind()
    finally:
        first.stop()
