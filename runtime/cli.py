"""The operator CLI behind `python run.py <subcommand>` (the daemon itself is run.py's).

    status [--json] [--url URL]         the live tree; exit 0 healthy, 1 degraded, 2 unreachable
    status --watch [--interval S]       the same, redrawn live until Ctrl-C
    status --node ID [--json]           one node's fields and details (drill-down)
    history [--strategy ID] [--since 10m] [--json]   orders, fills, outcomes from the journal
    halt --reason R                     stop new entries everywhere
    resume --reason R
    breaker reset NAME --reason R
    strategy stop|start|enable|disable ID --reason R
    check-config FILE                   validate exactly as the daemon does before it starts; exit 0 / 2

Every subcommand takes --url (default $WARDEN_URL or http://127.0.0.1:8765), or
--config FILE to read `[status] bind` / `token_env` from the daemon's config.
Commands send `Authorization: Bearer $<--token-env>` (default WARDEN_TOKEN) when
that variable is set. Proxy variables are ignored: the status server is a local
operator endpoint.

Whatever the server sent is untrusted: control characters and ANSI escapes are
stripped from every string before it reaches the terminal, odd types render as
"?", and no input makes the CLI print a traceback (an unexpected error is one
line on stderr and exit 1, or 2 for `status`).

"Healthy" (exit 0) means: mode NORMAL, trading ACTIVE, gate open, no breaker
tripped (state other than closed/ok/armed), and every node of the tree fine:
`running`; for strategy nodes also `stopped` (operator stop or finished) and
`disabled` by an operator (`disabled_by == "operator"`, or, when the tree does
not say who, no `last_error`). Anything else is degraded (exit 1) and the
reasons are printed. No valid status document at all is exit 2.

`render_tree(status, color)` is a pure function: status JSON in, text out.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
import unicodedata
from datetime import datetime
from typing import Any, Iterator, Mapping, Sequence

import requests

from runtime.config import ConfigError, load_config
from runtime.metrics import BREAKER_OK_STATES
from runtime.preflight import preflight
from runtime.status_server import COMMANDS
from runtime.history import render as render_history
from runtime.status_view import closed_symbols, drift_lines, find_node, gate_lines, node_lines, position_lines

__all__ = ["main", "render_tree", "assess", "EXIT_OK", "EXIT_DEGRADED", "EXIT_UNREACHABLE"]

EXIT_OK, EXIT_DEGRADED, EXIT_UNREACHABLE = 0, 1, 2
EXIT_BAD_CONFIG = 2
DEFAULT_URL = "http://127.0.0.1:8765"
DEFAULT_TOKEN_ENV = "WARDEN_TOKEN"
ERROR_WIDTH = 60
MAX_TREE_DEPTH = 64  # deeper nodes of a (hostile) status document are not rendered
_ESCAPE_RE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|.)?")

_RESET = "\033[0m"
_STYLES = {
    "green": "\033[32m", "yellow": "\033[33m", "red": "\033[31m", "dim": "\033[2m", "bold": "\033[1m",
}
_STATE_STYLE = {
    "running": "green", "starting": "yellow", "restarting": "yellow", "stopped": "dim",
    "disabled": "dim", "killed": "red", "failed": "red", "escalated": "red",
}
_MODE_STYLE = {"NORMAL": "green", "REDUCED": "yellow", "EMERGENCY": "red", "HARD_SHUTDOWN": "red"}
_TRADING_STYLE = {"ACTIVE": "green", "REDUCING": "yellow", "HALTED": "red"}


# --------------------------------------------------------------------------- assessment


def assess(status: Mapping[str, Any]) -> tuple[int, list[str]]:
    """(exit code, reasons): EXIT_OK with no reasons when healthy, else EXIT_DEGRADED."""
    reasons: list[str] = []
    if status.get("mode") != "NORMAL":
        reasons.append(f"mode {status.get('mode')}")
    if status.get("trading") != "ACTIVE":
        reasons.append(f"trading {status.get('trading')}")
    gate = _as_map(status.get("gate"))
    closed = closed_symbols(status)
    if gate.get("open") is not True and not closed:
        why = "; ".join(str(r) for r in _as_list(gate.get("reasons")))
        reasons.append("gate closed" + (f" ({why})" if why else ""))
    for symbol, why_closed in closed.items():
        reasons.append(f"gate closed for {symbol}" + (f" ({'; '.join(why_closed)})" if why_closed else ""))
    for b in map(_as_map, _as_list(status.get("breakers"))):
        if str(b.get("state", "")).lower() not in BREAKER_OK_STATES:
            reasons.append(f"breaker {b.get('name')} {b.get('state')}" + (f" ({b['reason']})" if b.get("reason") else ""))
    tree = status.get("tree")
    if not isinstance(tree, Mapping):
        reasons.append("no supervision tree")
    else:
        for node in _walk(tree):
            if not _node_fine(node):
                reasons.append(f"{node.get('id')} {node.get('state')}")
    return (EXIT_DEGRADED if reasons else EXIT_OK), reasons


def _node_fine(node: Mapping[str, Any]) -> bool:
    state = node.get("state")
    if state == "running":
        return True
    if not str(node.get("id", "")).startswith("strategy:"):
        return False
    if state == "stopped":
        return True
    if state == "disabled":
        if "disabled_by" in node:
            return node.get("disabled_by") == "operator"
        return not node.get("last_error")
    return False


def _walk(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every node down to MAX_TREE_DEPTH, depth first, without recursion."""
    for _, _, child in _descend(node):
        yield child


def _descend(root: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(prefix, connector, node) in display order, down to MAX_TREE_DEPTH (iterative: any depth is safe)."""
    stack: list[tuple[str, str, Mapping[str, Any], int]] = [("", "", root, 0)]
    while stack:
        prefix, connector, node, depth = stack.pop()
        yield prefix, connector, node
        if depth >= MAX_TREE_DEPTH:
            continue
        children = [c for c in _as_list(node.get("children")) if isinstance(c, Mapping)]
        child_prefix = prefix + ("" if not connector else ("    " if connector == "└── " else "│   "))
        for i in reversed(range(len(children))):
            stack.append((child_prefix, "└── " if i == len(children) - 1 else "├── ", children[i], depth + 1))


def _as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def clean(value: Any) -> Any:
    """A copy of a parsed JSON document safe for a terminal: ANSI escapes and control
    characters removed from every string (keys too)."""
    if isinstance(value, str):
        text = _ESCAPE_RE.sub("", value)
        return "".join(c if unicodedata.category(c) not in ("Cc", "Cf") else " " for c in text)
    if isinstance(value, Mapping):
        return {clean(str(k)): clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


# --------------------------------------------------------------------------- rendering


def render_tree(status: Mapping[str, Any], color: bool = False, now: float | None = None) -> str:
    """The status document as a few header lines and a box-drawn tree, one node per line:
    id, state, restarts, generation, uptime (running nodes with `started_at`), last error
    (`type: message`, truncated). ANSI colors only when `color` is true."""
    now = time.time() if now is None else now

    def paint(text: str, style: str | None) -> str:
        return f"{_STYLES[style]}{text}{_RESET}" if color and style else text

    mode, trading = str(status.get("mode", "?")), str(status.get("trading", "?"))
    gate = _as_map(status.get("gate"))
    reasons = _as_list(gate.get("reasons"))
    header = [
        f"{paint('warden', 'bold')} {status.get('node', '?')}  pid {status.get('pid', '?')}  "
        f"up {_duration(status.get('uptime_s'))}",
        f"mode {paint(mode, _MODE_STYLE.get(mode, 'red'))}  trading {paint(trading, _TRADING_STYLE.get(trading, 'red'))}  "
        + (f"gate {paint('open', 'green')}" if gate.get("open") is True else
           f"gate {paint('CLOSED', 'red')}" + (f": {'; '.join(map(str, reasons))}" if reasons else "")),
    ]
    breakers = [b for b in _as_list(status.get("breakers")) if isinstance(b, Mapping)]
    if breakers:
        parts = []
        for b in breakers:
            state = str(b.get("state", "?"))
            ok = state.lower() in BREAKER_OK_STATES
            text = f"{b.get('name')} {paint(state, 'green' if ok else 'red')}"
            if not ok and b.get("reason"):
                text += f" ({_truncate(str(b['reason']), 40)})"
            parts.append(text)
        header.append("breakers " + "  ".join(parts))
    else:
        header.append("breakers none")

    header[2:2] = gate_lines(status, paint)
    money = position_lines(status, paint) + drift_lines(status, paint)
    if money:
        header += ["", *money]
    tree = status.get("tree")
    if not isinstance(tree, Mapping):
        return "\n".join([*header, "", "(no supervision tree)"]) + "\n"

    rows = [(prefix + connector + str(node.get("id", "?")), node) for prefix, connector, node in _descend(tree)]
    uptimes = {
        id(node): _duration(now - started)
        for _, node in rows
        if node.get("state") == "running" and (started := _epoch(node.get("started_at"))) is not None
    }
    table = [("NODE", "STATE", "RESTARTS", "GEN", "UPTIME" if uptimes else "", "INFO", "LAST ERROR", None)]
    for label, node in rows:
        state = str(node.get("state", "?"))
        table.append((
            label, state, str(node.get("restarts", 0)), str(node.get("generation", "-")),
            uptimes.get(id(node), ""), _info(node), _format_error(node.get("last_error")), state,
        ))
    widths = [max(len(row[i]) for row in table) + 2 for i in range(6)]
    lines = []
    for label, state_text, restarts, gen, up, info, error, state in table:
        if state is None:  # column titles
            cells = [label, state_text, restarts, gen, up, info]
            line = "".join(c.ljust(w) for c, w in zip(cells, widths)) + error
            lines.append(paint(line, "dim"))
            continue
        line = (label.ljust(widths[0]) + paint(state_text.ljust(widths[1]), _STATE_STYLE.get(state, "red"))
                + restarts.ljust(widths[2]) + gen.ljust(widths[3]) + up.ljust(widths[4]) + info.ljust(widths[5]))
        if error:
            line += paint(error, "yellow" if state == "running" else "red")
        lines.append(line.rstrip())
    return "\n".join([*header, "", *lines]) + "\n"


def _info(node: Mapping[str, Any]) -> str:
    """The one fact an operator wants per node: a strategy's position, a feed's data status."""
    details = node.get("details")
    if not isinstance(details, Mapping):
        return ""
    if "position" in details:
        status = details.get("status")
        return str(details["position"]) + (f" ({status})" if status and status != "active" else "")
    if str(node.get("id", "")).startswith("feed:") and "status" in details:
        return str(details["status"])
    return ""


def _format_error(error: Any) -> str:
    if not error:
        return ""
    if isinstance(error, Mapping):
        kind = error.get("type") or error.get("kind") or "Error"
        text = f"{kind}: {error.get('message', '')}".rstrip(": ")
    else:
        text = str(error)
    return _truncate(" ".join(text.split()), ERROR_WIDTH)


def _truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _duration(value: Any) -> str:
    """`1h05m` for a number of seconds; "?" for anything that is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "?"
    seconds = max(0, int(value))
    days, rem = divmod(seconds, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _epoch(value: Any) -> float | None:
    """Epoch seconds from a number or an ISO-8601 string (the tree may use either)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except (ValueError, OverflowError, OSError):
        return None


# --------------------------------------------------------------------------- commands


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxies, no .netrc: a local operator endpoint
    return session


def _base_url(args: argparse.Namespace) -> str:
    if args.url:
        return args.url.rstrip("/")
    if args.config:
        config = load_config(args.config)
        host = config.status.host
        host = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{config.status.port}"
    return os.environ.get("WARDEN_URL", DEFAULT_URL).rstrip("/")


def _token_env(args: argparse.Namespace) -> str:
    if args.token_env:
        return str(args.token_env)
    if args.config:
        return load_config(args.config).status.token_env or DEFAULT_TOKEN_ENV
    return DEFAULT_TOKEN_ENV


def _fetch_status(args: argparse.Namespace) -> dict[str, Any]:
    """GET /status, cleaned; ValueError naming what went wrong when there is no valid document."""
    url = _base_url(args) + "/status"
    try:
        response = _session().get(url, timeout=args.timeout)
    except requests.RequestException as exc:
        raise ValueError(f"warden unreachable at {url}: {_short(exc)}") from None
    status = _status_document(response)
    if isinstance(status, str):
        raise ValueError(f"no Warden status at {url}: {status}")
    return status


def _verdict(code: int, reasons: list[str], color: bool) -> str:
    if reasons:
        return (f"{_STYLES['red']}DEGRADED{_RESET}" if color else "DEGRADED") + f": {'; '.join(reasons)}"
    return f"{_STYLES['green']}HEALTHY{_RESET}" if color else "HEALTHY"


def _cmd_status(args: argparse.Namespace) -> int:
    if args.watch:
        return _watch(args)
    try:
        status = _fetch_status(args)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return EXIT_UNREACHABLE
    code, reasons = assess(status)
    if args.node:
        node = find_node(status, args.node)
        if node is None:
            print(f"no node {args.node!r} in the tree", file=sys.stderr)
            return EXIT_DEGRADED
        print(json.dumps(node, indent=2) if args.json else "\n".join(node_lines(node)))
        return code
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=False))  # escapes every control character
        return code
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    sys.stdout.write(render_tree(status, color=color))
    print("\n" + _verdict(code, reasons, color))
    return code


def _status_document(response: requests.Response) -> dict[str, Any] | str:
    """The cleaned status document, or why the answer is not one."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {_error_text(response)}"
    payload = _json_of(response)
    if isinstance(payload, str):
        return f"HTTP 200 but {payload} (is this a Warden status server?)"
    if not isinstance(payload, dict) or not ({"tree", "mode"} & set(payload)):
        return "HTTP 200 but not a Warden status document (is this a Warden status server?)"
    return clean(payload)  # type: ignore[no-any-return]


def _json_of(response: requests.Response) -> Any:
    """The parsed body, or a string saying why there is none (never raises)."""
    try:
        return json.loads(response.content)
    except RecursionError:
        return "the JSON body is nested too deeply"
    except ValueError:
        return "the body is not JSON"


def _watch(args: argparse.Namespace) -> int:
    """A live view: the tree, gates and positions redrawn every `--interval` seconds until
    Ctrl-C (or `--frames` redraws); an unreachable daemon is shown, not fatal."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    console = Console()
    if not console.is_terminal:  # a capture: no wrapping at 80 columns
        console = Console(width=240)
    color = console.is_terminal and not os.environ.get("NO_COLOR")
    code, frames = EXIT_UNREACHABLE, 0

    def frame() -> Text:
        nonlocal code
        try:
            status = _fetch_status(args)
        except ValueError as exc:
            code = EXIT_UNREACHABLE
            return Text(f"{exc}\n(retrying every {args.interval:g} s; Ctrl-C quits)", no_wrap=True)
        code, reasons = assess(status)
        return Text.from_ansi(render_tree(status, color=bool(color)) + "\n" + _verdict(code, reasons, bool(color)),
                              no_wrap=True, overflow="ellipsis")

    try:
        with Live(frame(), console=console, auto_refresh=False, transient=False) as live:
            frames = 1
            while not args.frames or frames < args.frames:
                time.sleep(args.interval)
                live.update(frame(), refresh=True)
                frames += 1
    except KeyboardInterrupt:
        pass
    return code


def _cmd_history(args: argparse.Namespace) -> int:
    params = {k: v for k, v in (("strategy", args.strategy), ("since", args.since), ("limit", args.limit)) if v}
    url = _base_url(args) + "/history"
    try:
        response = _session().get(url, params=params, timeout=args.timeout)
    except requests.RequestException as exc:
        print(f"warden unreachable at {url}: {_short(exc)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if response.status_code != 200:
        print(f"error: history refused (HTTP {response.status_code}): {_error_text(response)}", file=sys.stderr)
        return 1
    payload = _json_of(response)
    if not isinstance(payload, dict):
        print(f"no Warden history at {url}: {payload if isinstance(payload, str) else 'not an object'}",
              file=sys.stderr)
        return EXIT_UNREACHABLE
    rows = [row for row in _as_list(clean(payload.get("orders"))) if isinstance(row, Mapping)]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        sys.stdout.write(render_history(rows))
    return EXIT_OK


def _cmd_post(args: argparse.Namespace, command: str, body: dict[str, Any]) -> int:
    url = f"{_base_url(args)}/commands/{command}"
    env_name = _token_env(args)
    token = os.environ.get(env_name)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = _session().post(url, json={"reason": args.reason, **body}, headers=headers, timeout=args.timeout)
    except requests.RequestException as exc:
        print(f"error: warden unreachable at {url}: {_short(exc)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if response.status_code == 200:
        payload = _json_of(response)
        result = clean(payload.get("result")) if isinstance(payload, dict) else None
        if not isinstance(result, dict):
            print(f"error: {command}: HTTP 200 but no answer from a Warden server "
                  f"({payload if isinstance(payload, str) else 'no result'})", file=sys.stderr)
            return 1
        print(f"{command}: " + ("  ".join(f"{k}={_answer_value(v)}" for k, v in result.items()) or "done"))
        return EXIT_OK
    message = f"error: {command} refused (HTTP {response.status_code}): {_error_text(response)}"
    if response.status_code == 401 and not token:
        message += f"\nhint: set the operator token in ${env_name} (or pass --token-env NAME)"
    print(message, file=sys.stderr)
    return 1


def _answer_value(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _error_text(response: requests.Response) -> str:
    payload = _json_of(response)
    if isinstance(payload, str):
        text = clean(response.text.strip()[:200]) or clean(response.reason or "")
    elif isinstance(payload, dict):
        text = str(clean(payload.get("error") or "; ".join(map(str, _as_list(payload.get("reasons")))) or payload))
    else:
        text = str(clean(payload))
    return " ".join(str(text).split())


def _short(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, requests.ConnectionError):
        text = "connection refused or host unreachable"
    elif isinstance(exc, requests.Timeout):
        text = "timed out"
    return clean(text)  # type: ignore[no-any-return]


def _cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
        preflight(config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) in {exc.source}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    print(f"{config.source}: ok ({len(config.strategies)} strategies, venue {config.venue.kind}, "
          f"symbols {', '.join(config.feeds.symbols)})")
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def _seconds(text: str) -> float:
    """argparse type for --timeout: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= 3600):
        raise argparse.ArgumentTypeError(f"must be > 0 and <= 3600 seconds, got {text!r}")
    return value


def build_parser(prog: str = "run.py") -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"status server URL (default $WARDEN_URL or {DEFAULT_URL})")
    common.add_argument("--config", metavar="FILE", help="read [status] bind/token_env from this config")
    common.add_argument("--token-env", metavar="NAME",
                        help=f"environment variable holding the operator token (default {DEFAULT_TOKEN_ENV})")
    common.add_argument("--timeout", type=_seconds, default=3.0, help="seconds to wait for the server (default 3)")
    reason = argparse.ArgumentParser(add_help=False)
    reason.add_argument("--reason", required=True, help="why (logged with the command)")

    parser = argparse.ArgumentParser(prog=prog, description="Warden operator commands")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("status", parents=[common], help="show the live supervision tree")
    p.add_argument("--json", action="store_true", help="print the raw status JSON")
    p.add_argument("--node", metavar="ID", help="drill down into one node (e.g. feed:BTCUSDT or a strategy id)")
    p.add_argument("--watch", action="store_true", help="live view, redrawn every --interval seconds (Ctrl-C quits)")
    p.add_argument("--interval", type=float, default=1.0, help="--watch: seconds between redraws (default 1)")
    p.add_argument("--frames", type=int, default=0, help="--watch: stop after N redraws (default 0 = until Ctrl-C)")
    p.set_defaults(run=_cmd_status)

    p = sub.add_parser("history", parents=[common], help="orders, fills and outcomes from the journal")
    p.add_argument("--strategy", metavar="ID", help="only this strategy")
    p.add_argument("--since", metavar="WHEN", help="'10m', '2h', '1d' ago or an ISO-8601 time")
    p.add_argument("--limit", type=int, metavar="N", help="at most N orders, newest first (default 1000)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(run=_cmd_history)

    for name, help_text in (("halt", "stop new entries everywhere"), ("resume", "resume trading after a halt")):
        p = sub.add_parser(name, parents=[common, reason], help=help_text)
        p.set_defaults(run=lambda a, n=name: _cmd_post(a, n, {}))

    p = sub.add_parser("breaker", help="circuit-breaker commands")
    bsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = bsub.add_parser("reset", parents=[common, reason], help="reset a tripped breaker")
    p.add_argument("name", help="breaker name")
    p.set_defaults(run=lambda a: _cmd_post(a, "breaker-reset", {"name": a.name}))

    p = sub.add_parser("strategy", help="strategy commands")
    ssub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action in ("stop", "start", "enable", "disable"):
        command = f"strategy-{action}"
        assert command in COMMANDS
        p = ssub.add_parser(action, parents=[common, reason], help=f"{action} one strategy")
        p.add_argument("id", help="strategy id")
        p.set_defaults(run=lambda a, c=command: _cmd_post(a, c, {"id": a.id}))

    p = sub.add_parser("check-config", help="validate a config file")
    p.add_argument("file")
    p.set_defaults(run=_cmd_check_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one operator subcommand; returns the exit code (argparse usage errors: 2)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    try:
        return int(args.run(args))
    except ConfigError as exc:  # --config pointing at a bad file
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_CONFIG
    except BrokenPipeError:  # `status | head`: the reader has gone, which is not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot fail again
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - an operator tool answers in one line, never a traceback
        print(f"error: {clean(f'{type(exc).__name__}: {exc}')}", file=sys.stderr)
        return EXIT_UNREACHABLE if args.command in ("status", "history") else 1


if __name__ == "__main__":
    sys.exit(main())
