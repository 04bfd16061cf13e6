"""runtime.cli: the operator's view of the tree and its commands, against a real status server."""
from __future__ import annotations

import json
import re

import pytest

from chaos.harness import free_port

from runtime.cli import EXIT_DEGRADED, EXIT_OK, EXIT_UNREACHABLE, assess, main, render_tree
from runtime.metrics import Metrics
from runtime.status_server import StatusServer

from .samples import find

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TOKEN = "cli-token-5b1d0e77"


class Handler:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, name: str, args: dict) -> dict:
        self.calls.append((name, args))
        return {"state": "halted"} if name == "halt" else {}


@pytest.fixture
def handler():
    return Handler()


@pytest.fixture
def server(status, handler):
    srv = StatusServer(lambda: status, handler, Metrics().registry, bind="127.0.0.1:0").start()
    yield srv
    srv.stop()


@pytest.fixture
def token_server(status, handler):
    srv = StatusServer(lambda: status, handler, Metrics().registry, bind="127.0.0.1:0", token=TOKEN).start()
    yield srv
    srv.stop()



# ----------------------------------------------------------------------------- render_tree


def test_render_tree_shows_every_node_with_state_restarts_and_generation(status):
    s1 = find(status["tree"], "strategy:s1")
    s1.update(state="restarting", restarts=2, generation=3,
              last_error={"type": "ZeroDivisionError", "message": "division by zero " + "x" * 200})
    text = render_tree(status, color=False)
    assert not ANSI.search(text)
    lines = text.splitlines()
    assert lines[0].startswith("warden node-a  pid 4242  up 1h00m")
    assert "mode NORMAL  trading ACTIVE  gate open" in lines[1]
    assert "loss closed" in lines[2]
    for node_id in ("root", "safety", "degradation", "circuit-breaker", "monitor:store", "monitor:heartbeat",
                    "feed:BTCUSDT", "state-builder", "execution-engine", "position-manager", "strategy:s2"):
        assert any(re.search(rf"(^|── ){re.escape(node_id)}\s+running\s+0\s+1\b", line) for line in lines), node_id
    (s1_line,) = [line for line in lines if "strategy:s1" in line]
    assert re.search(r"└── strategy:s1|├── strategy:s1", s1_line)
    assert re.search(r"strategy:s1\s+restarting\s+2\s+3\s", s1_line)
    assert "ZeroDivisionError: division by zero" in s1_line and s1_line.endswith("…")
    assert len(s1_line) < 160, "errors are truncated to keep one node per line"
    # box drawing: children of the last top-level subtree hang under blank space, others under │
    assert any(line.startswith("│   ├── degradation") for line in lines)
    assert any(line.startswith("    └── strategy:s2") for line in lines)
    assert any(line.startswith("└── strategies") for line in lines)


def test_render_tree_header_shows_closed_gate_reasons_and_tripped_breakers(status):
    status.update(mode="EMERGENCY", trading="HALTED", gate={"open": False, "reasons": ["store down"]})
    status["breakers"][1].update(state="tripped", reason="BTCUSDT -21% in 40s")
    plain = render_tree(status, color=False)
    assert "mode EMERGENCY  trading HALTED  gate CLOSED: store down" in plain
    assert "price tripped (BTCUSDT -21% in 40s)" in plain
    colored = render_tree(status, color=True)
    assert "\x1b[31mEMERGENCY\x1b[0m" in colored and "\x1b[31mtripped\x1b[0m" in colored
    assert ANSI.sub("", colored) == plain


def test_render_tree_without_a_tree_says_so(status):
    del status["tree"]
    assert "(no supervision tree)" in render_tree(status, color=False)


# ----------------------------------------------------------------------------- assess


def test_assess_healthy_and_degraded_cases(status):
    assert assess(status) == (EXIT_OK, [])
    s2 = find(status["tree"], "strategy:s2")
    s2.update(state="disabled", last_error=None)  # disabled by an operator: fine
    assert assess(status) == (EXIT_OK, [])
    s2.update(state="disabled", last_error="RuntimeError: boom")  # intensity tripped
    assert assess(status) == (EXIT_DEGRADED, ["strategy:s2 disabled"])
    s2.update(disabled_by="operator")  # the tree says who disabled it: trusted
    assert assess(status) == (EXIT_OK, [])
    s2.update(state="stopped")
    assert assess(status)[0] == EXIT_OK
    find(status["tree"], "feed:ETHUSDT")["state"] = "stopped"  # infrastructure must run
    status["mode"] = "REDUCED"
    status["breakers"][0]["state"] = "tripped"
    code, reasons = assess(status)
    assert code == EXIT_DEGRADED
    assert reasons == ["mode REDUCED", "breaker loss tripped", "feed:ETHUSDT stopped"]


# ----------------------------------------------------------------------------- status command


def test_status_exit_0_when_healthy(server, capsys):
    assert main(["status", "--url", server.url]) == EXIT_OK
    out = capsys.readouterr().out
    assert "strategy:s1" in out and "HEALTHY" in out
    assert not ANSI.search(out), "no color when stdout is not a tty"


def test_status_exit_1_when_degraded_with_the_reasons(server, status, capsys):
    find(status["tree"], "state-builder")["state"] = "restarting"
    status["gate"] = {"open": False, "reasons": ["state-builder INVALID"]}
    assert main(["status", "--url", server.url]) == EXIT_DEGRADED
    out = capsys.readouterr().out
    assert "DEGRADED: gate closed (state-builder INVALID); state-builder restarting" in out


def test_status_exit_2_when_nothing_listens(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["status", "--url", url, "--timeout", "2"]) == EXIT_UNREACHABLE
    assert f"warden unreachable at {url}/status" in capsys.readouterr().err


def test_status_json_prints_the_document(server, status, capsys):
    assert main(["status", "--json", "--url", server.url]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(status))


def test_status_url_from_the_environment(server, monkeypatch, capsys):
    monkeypatch.setenv("WARDEN_URL", server.url)
    assert main(["status"]) == EXIT_OK


# ----------------------------------------------------------------------------- operator commands


@pytest.mark.parametrize(("argv", "command", "args"), [
    (["halt"], "halt", {}),
    (["resume"], "resume", {}),
    (["breaker", "reset", "loss"], "breaker-reset", {"name": "loss"}),
    (["strategy", "stop", "s1"], "strategy-stop", {"id": "s1"}),
    (["strategy", "start", "s1"], "strategy-start", {"id": "s1"}),
    (["strategy", "enable", "s2"], "strategy-enable", {"id": "s2"}),
    (["strategy", "disable", "s2"], "strategy-disable", {"id": "s2"}),
])
def test_commands_post_to_the_server_with_their_reason(server, handler, capsys, argv, command, args):
    assert main([*argv, "--reason", "ops drill", "--url", server.url]) == EXIT_OK
    assert handler.calls == [(command, {"reason": "ops drill", **args})]
    out = capsys.readouterr().out
    assert out.startswith(f"{command}: "), "the CLI prints the server's answer, not a bare 'ok'"
    assert ("state=halted" in out) is (command == "halt")


@pytest.mark.parametrize("argv", [["halt"], ["resume"], ["breaker", "reset", "loss"], ["strategy", "stop", "s1"]])
def test_commands_without_reason_are_usage_errors_and_send_nothing(server, handler, capsys, argv):
    assert main([*argv, "--url", server.url]) == 2
    assert "--reason" in capsys.readouterr().err
    assert handler.calls == []


def test_server_errors_are_shown_and_exit_nonzero(server, handler, capsys):
    assert main(["strategy", "stop", "not/valid", "--reason", "x", "--url", server.url]) == 1
    err = capsys.readouterr().err
    assert "strategy-stop refused (HTTP 400)" in err and "'id' must match" in err
    assert handler.calls == []


def test_token_comes_from_the_named_environment_variable(token_server, handler, monkeypatch, capsys):
    monkeypatch.delenv("WARDEN_TOKEN", raising=False)
    assert main(["halt", "--reason", "x", "--url", token_server.url]) == 1
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "$WARDEN_TOKEN" in err
    monkeypatch.setenv("WARDEN_TOKEN", TOKEN)
    assert main(["halt", "--reason", "x", "--url", token_server.url]) == EXIT_OK
    monkeypatch.delenv("WARDEN_TOKEN")
    monkeypatch.setenv("OPS_TOKEN", TOKEN)
    assert main(["resume", "--reason", "y", "--url", token_server.url, "--token-env", "OPS_TOKEN"]) == EXIT_OK
    assert [c[0] for c in handler.calls] == ["halt", "resume"]


def test_command_to_an_unreachable_node_fails(capsys):
    assert main(["halt", "--reason", "x", "--url", f"http://127.0.0.1:{free_port()}"]) == EXIT_UNREACHABLE
    assert "unreachable" in capsys.readouterr().err


def test_url_and_token_env_from_the_daemon_config(token_server, handler, tmp_path, monkeypatch):
    config = tmp_path / "warden.toml"
    config.write_text(f'[status]\nbind = "127.0.0.1:{token_server.port}"\ntoken_env = "NODE_A_TOKEN"\n'
                      '[feeds]\nsymbols = ["BTCUSDT"]\n')
    monkeypatch.setenv("NODE_A_TOKEN", TOKEN)
    assert main(["halt", "--reason", "x", "--config", str(config)]) == EXIT_OK
    assert handler.calls == [("halt", {"reason": "x"})]


# ----------------------------------------------------------------------------- check-config


def test_check_config(tmp_path, capsys):
    good = tmp_path / "good.toml"
    good.write_text('[feeds]\nsymbols = ["BTCUSDT"]\n')
    assert main(["check-config", str(good)]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('[feeds]\nsymbols = ["BTCUSDT"]\n[[strategies]]\nid = "s1"\nkind = "scheduled"\n'
                   'symbol = "BTCUSDT"\nquantity = -1\nbuy_at = "+1s"\nsell_at = "+2s"\n')
    capsys.readouterr()
    assert main(["check-config", str(bad)]) == 2
    assert f"{bad}:7: strategies[0].quantity: must be > 0, got -1" in capsys.readouterr().err


def test_render_tree_shows_strategy_position_and_feed_status():
    status = {
        "node": "n", "pid": 1, "started_at": 0, "uptime_s": 1, "mode": "NORMAL", "trading": "ACTIVE",
        "gate": {"open": True, "reasons": []}, "breakers": [],
        "tree": {"id": "root", "kind": "supervisor", "state": "running", "restarts": 0, "generation": 0, "children": [
            {"id": "feed:BTCUSDT", "kind": "worker", "state": "running", "restarts": 0, "generation": 2,
             "children": [], "details": {"status": "STALE"}},
            {"id": "strategy:s1", "kind": "worker", "state": "running", "restarts": 0, "generation": 3,
             "children": [], "details": {"position": "bought", "status": "active"}},
            {"id": "strategy:s2", "kind": "worker", "state": "running", "restarts": 0, "generation": 4,
             "children": [], "details": {"position": "none", "status": "failed"}},
        ]},
    }
    text = render_tree(status, color=False)
    lines = {line.split()[1]: line for line in text.splitlines() if "── " in line}
    assert "STALE" in lines["feed:BTCUSDT"]
    assert "bought" in lines["strategy:s1"] and "(active)" not in lines["strategy:s1"]
    assert "none (failed)" in lines["strategy:s2"]
