"""Issue 13: bad config input is one ConfigError naming the field and the line, never an
uncaught OverflowError/RecursionError, and preflight checks what the daemon needs."""
from __future__ import annotations

import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest

from runtime.config import ConfigError, load_config, parse_config
from runtime.preflight import is_loopback, preflight

START = datetime(2025, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
FEEDS = '[feeds]\nsymbols = ["BTCUSDT"]\n'


def strategy(**fields: str) -> str:
    """A scheduled strategy table; `fields` are raw TOML values replacing the defaults."""
    values = {"id": '"s1"', "kind": '"scheduled"', "symbol": '"BTCUSDT"', "quantity": "0.01",
              "buy_at": '"+5s"', "sell_at": '"+10m"', **fields}
    return "[[strategies]]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())


def problem_of(text: str) -> tuple[str, int | None, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "t.toml", START)
    first = info.value.problems[0]
    return first.field, first.line, first.message


# ----------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("key", ["quantity", "stop_loss"])
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400", "1" + "0" * 400])
def test_issue13_strategy_numbers_must_be_finite(key, value):
    field, line, message = problem_of(FEEDS + strategy(**{key: value}))
    assert field == f"strategies[0].{key}" and line is not None
    assert "finite" in message


@pytest.mark.parametrize(("table", "key"), [
    ("venue", "order_timeout_s"), ("feeds", "heartbeat_timeout_s"), ("risk", "capital"),
    ("supervision", "period_s"), ("feeds", "stale_after_ms"),
])
@pytest.mark.parametrize("value", ["inf", "1e400", "1" + "0" * 400])
def test_issue13_table_numbers_must_be_finite_and_in_range(table, key, value):
    body = FEEDS + f"[{table}]\n{key} = {value}\n" if table != "feeds" else \
        f'[feeds]\nsymbols = ["BTCUSDT"]\n{key} = {value}\n'
    field, line, message = problem_of(body)
    assert field == f"{table}.{key}" and line == body.splitlines().index(f"{key} = {value}") + 1
    assert "finite" in message or "must be <=" in message or "must be an integer" in message


@pytest.mark.parametrize(("params", "where"), [
    ("{ a = nan }", "params.a"),
    ("{ a = inf }", "params.a"),
    ("{ a = [1, 2, 1e400] }", "params.a[2]"),
    ("{ at = 2025-01-01T00:00:00Z }", "params.at"),
    ("{ a = " + "{ b = " * 20 + "1" + " }" * 20 + " }", "params.a"),
])
def test_issue13_params_are_checked(params, where):
    field, line, _ = problem_of(FEEDS + strategy(params=params))
    assert field.startswith(f"strategies[0].{where}") and line == 10


def test_issue13_plain_params_pass():
    config = parse_config(FEEDS + strategy(params='{ a = 1, b = "x", c = [1.5, true], d = { e = "f" } }'),
                          "t.toml", START)
    assert config.strategies[0].params["d"] == {"e": "f"}


# ----------------------------------------------------------------------------- times


@pytest.mark.parametrize("value", [
    '"+99999999999d"', '"+' + "9" * 400 + 's"', '"0001-01-01T00:30:00+01:00"', '"9999-12-31T23:30:00-01:00"',
    '"+367d"', "0001-01-01T00:30:00+01:00",
])
def test_issue13_times_that_do_not_fit_are_config_errors(value):
    field, line, message = problem_of(FEEDS + strategy(buy_at=value))
    assert field == "strategies[0].buy_at" and line == 8, message


# ----------------------------------------------------------------------------- TOML positions


def test_issue13_toml_nested_5000_deep_names_the_line():
    text = FEEDS + "x = " + "[" * 5000 + "]" * 5000 + "\n"
    field, line, message = problem_of(text)
    assert line == 3 and "nested too deeply" in message


def test_issue13_integer_of_5000_digits_names_the_line():
    field, line, message = problem_of(FEEDS + "[risk]\ncapital = " + "9" * 5000 + "\n")
    assert line == 4 and "invalid TOML" in message


@pytest.mark.parametrize(("text", "line"), [
    ('[node]\nname = "a"\n\nname = "b"\n', 4),
    ('[node]\nname = "a"\n[node]\n', 3),
    ('[feeds]\nsymbols = ["BTCUSDT"\n', 2),
    ('[node]\nname = "unterminated\n', 2),
    ('[node]\nname = "a"\n[store]\nurl = ', 4),
])
def test_issue13_syntax_errors_duplicates_and_truncation_name_a_line(text, line):
    _, found, message = problem_of(text)
    assert found == line, message
    assert "at end of document" not in message and "line" not in message.split(":", 1)[0]


def test_issue13_bad_bytes_name_the_line_not_a_byte_offset(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_bytes(b'[node]\nname = "a"\n# caf\xe9\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.line == 3 and "0xe9" in problem.message and "position" not in problem.message


def test_issue13_feed_symbols_duplicate_check_is_linear():
    symbols = ", ".join(f'"S{i:05d}"' for i in range(20_000))
    field, line, message = problem_of(f"[feeds]\nsymbols = [{symbols}, \"S00007\"]\n")
    assert (field, line, message) == ("feeds.symbols", 2, "duplicate entries: S00007")


# ----------------------------------------------------------------------------- preflight


def config_text(extra: str = "", strategies: str = "", data_dir: str = "data") -> str:
    return f'[node]\ndata_dir = "{data_dir}"\n{extra}\n{FEEDS}{strategies}'


def preflight_problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    with pytest.raises(ConfigError) as info:
        preflight(config, environ or {})
    return info.value.problems


def test_issue13_unset_env_vars_are_named_with_their_line(tmp_path):
    text = config_text('[status]\ntoken_env = "OP_TOKEN"\n[venue]\nkind = "binance_futures"\n'
                       'rest_url = "https://x"\nws_url = "wss://x"\napi_key_env = "K"\napi_secret_env = "S"\n',
                       data_dir=str(tmp_path / "d"))
    problems = preflight_problems(tmp_path, text, {"S": "secret-value"})
    assert [(p.field, p.line) for p in problems] == [("status.token_env", 4), ("venue.api_key_env", 9)]
    assert "OP_TOKEN is not set" in problems[0].message


def test_issue13_non_loopback_bind_without_token_is_refused(tmp_path):
    text = config_text('[status]\nbind = "0.0.0.0:8765"\n', data_dir=str(tmp_path / "d"))
    (problem,) = preflight_problems(tmp_path, text)
    assert (problem.field, problem.line) == ("status.bind", 4)
    assert "not loopback" in problem.message and "token_env" in problem.message


def test_issue13_non_loopback_bind_with_a_token_passes(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(config_text('[status]\nbind = "0.0.0.0:8765"\ntoken_env = "OP_TOKEN"\n',
                                data_dir=str(tmp_path / "d")), encoding="utf-8")
    checked = preflight(load_config(path), {"OP_TOKEN": "long-enough-token"})
    assert checked.secret("status.token_env") == "long-enough-token"


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True),
                                                ("localhost", True), ("0.0.0.0", False), ("::", False),
                                                ("10.0.0.5", False), ("example.org", False)])
def test_issue13_loopback_rule(host, loopback):
    assert is_loopback(host) is loopback


def test_issue13_unwritable_data_dir_is_named(tmp_path):
    (tmp_path / "file").write_text("x")
    text = config_text(data_dir=str(tmp_path / "file" / "sub"))
    (problem,) = preflight_problems(tmp_path, text)
    assert (problem.field, problem.line) == ("node.data_dir", 2)
    assert not (tmp_path / "file" / "sub").exists()


def test_issue13_user_module_calling_sys_exit_is_a_config_error(tmp_path, monkeypatch):
    (tmp_path / "exiting_strategy.py").write_text("import sys\nsys.exit(0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    text = config_text(strategies='[[strategies]]\nid = "u1"\nsymbol = "BTCUSDT"\nclass = "exiting_strategy:S"\n',
                       data_dir=str(tmp_path / "d"))
    (problem,) = preflight_problems(tmp_path, text)
    assert (problem.field, problem.line) == ("strategies[0].class", 9)
    assert "SystemExit" in problem.message
    sys.modules.pop("exiting_strategy", None)


def test_issue13_check_config_runs_preflight(tmp_path, capsys):
    from runtime.cli import main

    path = tmp_path / "c.toml"
    path.write_text(textwrap.dedent(config_text('[status]\ntoken_env = "WARDEN_TEST_UNSET_TOKEN"\n',
                                                data_dir=str(tmp_path / "d"))), encoding="utf-8")
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4: status.token_env: environment variable WARDEN_TEST_UNSET_TOKEN is not set" in err


def test_issue13_alert_webhook_env_is_checked_like_every_env_var(tmp_path):
    text = config_text('[alerts]\nwebhook_url_env = "WARDEN_HOOK"\n', data_dir=str(tmp_path / "d"))
    (unset,) = preflight_problems(tmp_path, text)
    assert (unset.field, unset.line) == ("alerts.webhook_url_env", 4) and "WARDEN_HOOK is not set" in unset.message
    (not_url,) = preflight_problems(tmp_path, text, {"WARDEN_HOOK": "ftp://x"})
    assert not_url.field == "alerts.webhook_url_env" and "http(s) URL" in not_url.message


def test_issue13_short_operator_token_is_refused(tmp_path):
    text = config_text('[status]\ntoken_env = "OP_TOKEN"\n', data_dir=str(tmp_path / "d"))
    (problem,) = preflight_problems(tmp_path, text, {"OP_TOKEN": "abc"})
    assert (problem.field, problem.line) == ("status.token_env", 4) and "at least 8" in problem.message
