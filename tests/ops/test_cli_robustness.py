"""Issue 13: the operator CLI never prints a traceback, never passes the server's control
characters to the terminal, and exits 0/1/2 as DESIGN §7 says, whatever answers it."""
from __future__ import annotations

import json
import threading
import unicodedata
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from runtime.cli import EXIT_UNREACHABLE, main

from .samples import healthy_status

EVIL = "\x1b[31mred\x1b[0m\x1b]0;pwned-title\x07\r\x08\x00\u202e"


class Canned:
    """A server that is not Warden: answers every request with one canned reply."""

    def __init__(self) -> None:
        self.code = 200
        self.body = b""
        self.content_type = "application/json"
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.send_response(canned.code)
                self.send_header("Content-Type", canned.content_type)
                self.send_header("Content-Length", str(len(canned.body)))
                self.end_headers()
                self.wfile.write(canned.body)

            do_GET = do_POST = _reply

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def reply(self, body: bytes | str, code: int = 200, content_type: str = "application/json") -> None:
        self.body = body.encode() if isinstance(body, str) else body
        self.code, self.content_type = code, content_type


@pytest.fixture
def canned() -> Iterator[Canned]:
    server = Canned()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def _no_traceback_and_clean(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    text = out + err
    assert "Traceback" not in text, "the CLI never prints a traceback"
    bad = [c for c in text if c not in "\n" and unicodedata.category(c) in ("Cc", "Cf")]
    assert not bad, f"control characters reached the terminal: {bad!r}"
    return text


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "abc", "1e400"])
def test_issue13_bad_timeout_is_a_usage_error_not_a_traceback(value, capsys):
    assert main(["status", "--timeout", value, "--url", "http://127.0.0.1:9"]) == 2
    assert "--timeout" in _no_traceback_and_clean(capsys)


def _deep_tree(depth: int) -> str:
    """The JSON text of a tree `depth` levels deep (too deep for json.dumps to write)."""
    return '{"id": "n", "state": "running", "children": [' * depth + '{"id": "leaf"}' + "]}" * depth


ODD_DOCUMENTS = {
    "odd-types": {"mode": 5, "trading": ["x"], "gate": "open", "breakers": {"a": 1}, "uptime_s": "long",
                  "tree": {"id": {"x": 1}, "state": None, "restarts": [], "children": "none",
                           "details": {"position": {"q": 1}}, "last_error": 7}},
    "breakers-not-objects": {**healthy_status(), "breakers": [1, "x", None], "gate": {"open": 1, "reasons": 3}},
    "children-not-objects": {**healthy_status(), "tree": {"id": "root", "state": "running", "children": [1, "a"]}},
    "started-at-out-of-range": {**healthy_status(), "tree": {"id": "root", "state": "running",
                                                             "started_at": "0001-01-01T00:30:00+01:00"}},
    "deep-tree-2000": 2000,
    "deep-tree-900": 900,
}


@pytest.mark.parametrize("name", list(ODD_DOCUMENTS))
@pytest.mark.parametrize("as_json", [False, True])
def test_issue13_status_with_odd_documents_never_tracebacks(canned, capsys, name, as_json):
    doc = ODD_DOCUMENTS[name]
    if isinstance(doc, int):
        canned.reply(json.dumps(healthy_status())[:-1] + ', "tree": ' + _deep_tree(doc) + "}")
    else:
        canned.reply(json.dumps(doc))
    code = main(["status", "--url", canned.url, *(["--json"] if as_json else [])])
    assert code in (0, 1, 2)
    if name == "odd-types":
        assert code == 1, "a document with odd types is degraded, never healthy"
    _no_traceback_and_clean(capsys)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_issue13_status_with_nan_and_infinite_numbers(canned, capsys, number):
    doc = json.dumps(healthy_status()).replace('"uptime_s": ', f'"uptime_s": {number}, "_was": ')
    canned.reply(doc)
    assert main(["status", "--url", canned.url]) in (0, 1)
    assert "up ?" in _no_traceback_and_clean(capsys)


def test_issue13_status_against_a_server_that_is_not_warden(canned, capsys):
    canned.reply("<html><body>It works!</body></html>", content_type="text/html")
    assert main(["status", "--url", canned.url]) == EXIT_UNREACHABLE
    text = _no_traceback_and_clean(capsys)
    assert "is this a Warden status server?" in text and "Expecting value" not in text
    canned.reply(json.dumps({"hello": "world"}))
    assert main(["status", "--url", canned.url]) == EXIT_UNREACHABLE
    assert "not a Warden status document" in _no_traceback_and_clean(capsys)


def test_issue13_ansi_and_control_characters_from_the_server_are_stripped(canned, capsys):
    doc = healthy_status()
    doc["tree"]["children"][0]["id"] = f"feed:{EVIL}"
    doc["tree"]["children"][0]["last_error"] = {"type": EVIL, "message": EVIL}
    doc["gate"] = {"open": False, "reasons": [EVIL]}
    doc["breakers"] = [{"name": EVIL, "state": "tripped", "reason": EVIL}]
    canned.reply(json.dumps(doc))
    assert main(["status", "--url", canned.url]) == 1
    text = _no_traceback_and_clean(capsys)
    assert "red" in text and "pwned-title" not in text


@pytest.mark.parametrize(("code", "body"), [
    (200, json.dumps({"ok": True, "result": {"state": EVIL}})),
    (404, json.dumps({"ok": False, "error": f"no breaker {EVIL}"})),
    (500, EVIL),
    (200, "<html>not warden</html>"),
    (200, json.dumps([1, 2, 3])),
    (200, "[" * 5000 + "]" * 5000),
])
def test_issue13_command_answers_are_cleaned_and_exit_codes_hold(canned, capsys, code, body):
    canned.reply(body, code=code)
    result = main(["halt", "--reason", "drill", "--url", canned.url])
    text = _no_traceback_and_clean(capsys)
    if code == 200 and "result" in body:
        assert result == 0 and "halt: state=red" in text
    else:
        assert result == 1, "a refused or unintelligible answer is exit 1"
