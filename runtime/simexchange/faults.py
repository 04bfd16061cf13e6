"""Fault controls of the simulated exchange: one registry, one thread-safe board.

The registry (``FAULTS``) is the single description of every fault: its
parameters, defaults, which requests it applies to and what one ``count`` is.
The admin endpoint validates against it, ``--help`` prints it, and the REST and
WebSocket servers consult the board with ``take`` (apply once, decrement the
count) or ``peek`` (is it on?).

A fault is switched on with optional ``count`` (it turns itself off after acting
that many times: "the next order times out") and/or ``duration_s``. Two faults
are actions rather than switches: ``price_spike`` moves the price once, and
``ws_drop`` closes every socket when switched on (its count then refuses that
many reconnects). Listeners are told about every switch so those actions happen
at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


# How late an order answered "unknown" (-1007/503) may still execute, after it arrived: the
# horizon this simulator models. Binance documents no bound: its API answers -1007 after
# waiting 10 s for the matching engine, "execution status unknown", and the order may still
# execute afterwards. So the horizon is this simulator's documented choice, and everything
# relates to it: `unknown_503` refuses an `execute_after_s` beyond it, the soak's nemesis draws
# up to it, and the engine's default `[venue] settle_window_s` (12 s) exceeds it with a margin
# for the venue-clock estimate, stream delivery and a loaded host. An operator trading a real
# venue chooses the settle window for it; a late fill beyond it is corrected as an excess.
MAX_LATE_EXECUTION_S = 8.0


class FaultError(ValueError):
    """A fault request that names an unknown fault, parameter or value."""


@dataclass(frozen=True)
class Param:
    """One fault parameter: name, type, default, and what it means."""

    name: str
    kind: type
    default: Any
    doc: str
    choices: tuple[Any, ...] | None = None
    required: bool = False


@dataclass(frozen=True)
class FaultDef:
    """A fault's contract; ``scope`` is the default request scope for REST faults (None: not REST)."""

    name: str
    doc: str
    params: tuple[Param, ...] = ()
    scope: str | None = None
    counts: str | None = "request"  # what one count is; None: count not allowed
    action: bool = False  # one-shot: applied when switched on, never stored as active


SCOPES_DOC = (
    "scope (REST faults): 'place' = POST /fapi/v1/order and /fapi/v1/algoOrder; 'orders' = those plus "
    "DELETE (cancels); 'signed' = every signed endpoint; 'all' = every /fapi endpoint; or a path prefix "
    "such as '/fapi/v1/depth' or 'GET /fapi/v1/order'"
)

FAULTS: dict[str, FaultDef] = {f.name: f for f in (
    FaultDef("ws_drop", "close every open WebSocket now; while on, refuse new handshakes with HTTP 503 "
             "(count = handshakes refused; count 0 = drop once, reconnects allowed)",
             (Param("abrupt", bool, False, "abort the TCP connection instead of a close handshake"),),
             counts="refused handshake"),
    FaultDef("ws_stall", "stop sending frames and stop reading (no pong) while sockets stay open",
             counts="withheld frame"),
    FaultDef("ws_gap", "withhold depth events from every socket while the book still changes, so the "
             "next event's pu != previous u (sequence gap)",
             (Param("symbol", str, None, "only this symbol (default: all)"),), counts="skipped depth event"),
    FaultDef("ws_corrupt", "corrupt outgoing frames",
             (Param("mode", str, "json", "'json': invalid JSON; 'schema': valid JSON missing a required field",
                    choices=("json", "schema")),
              Param("stream", str, None, "only streams whose name contains this text")),
             counts="corrupted frame"),
    FaultDef("rest_latency", "delay REST requests before they are processed",
             (Param("ms", int, 200, "added latency in milliseconds"),), scope="all"),
    FaultDef("network_delay", "delay requests in the network before the venue sees them; recvWindow is checked "
             "on ARRIVAL against the venue clock (too old: -1021, never executed), else the request executes "
             "even though the client may have given up long ago",
             (Param("ms", int, 3000, "milliseconds in flight before the venue sees the request"),),
             scope="orders"),
    FaultDef("hold_reply", "execute the request, then hold the reply past the client's timeout",
             (Param("hold_s", float, 3.0, "seconds to hold the reply after executing"),), scope="orders"),
    FaultDef("http_429", "answer 429 -1003 with Retry-After; nothing executes",
             (Param("retry_after_s", int, 1, "Retry-After header, seconds"),), scope="all"),
    FaultDef("http_418", "answer 418 (IP banned) -1003 with Retry-After; nothing executes",
             (Param("retry_after_s", int, 5, "Retry-After header, seconds"),), scope="all"),
    FaultDef("unknown_503", "answer 503 'execution status unknown' (-1007/-1006), optionally after executing; "
             "with execute_after_s the reply comes at once and the order executes that many seconds after it "
             "arrived (it then shows up on the user-data stream and in lookups)",
             (Param("code", int, -1007, "error code", choices=(-1007, -1006)),
              Param("execute", bool, True, "execute the request anyway, as a real 'unknown' may"),
              Param("execute_after_s", float, 0.0, "seconds after arrival the request executes (0: before the "
                    f"reply), at most the simulator's late-execution horizon {MAX_LATE_EXECUTION_S:g} s")),
             scope="orders"),
    FaultDef("partial_fill", "the next marketable orders fill only part now (PARTIALLY_FILLED); the rest fills "
             "rest_after_s later unless canceled first",
             (Param("ratio", float, 0.5, "fraction executed at once, in (0, 1); at least one step"),
              Param("rest_after_s", float, 1.0, "seconds until the rest fills")),
             scope="place", counts="order partially filled"),
    FaultDef("market_expire", "MARKET orders EXPIRE with part or none of the quantity executed (price band, "
             "no liquidity); executedQty says how much",
             (Param("ratio", float, 0.0, "fraction executed before the expiry, in [0, 1)"),
              Param("status", str, "EXPIRED", "final status", choices=("EXPIRED", "EXPIRED_IN_MATCH"))),
             scope="place", counts="expired order"),
    FaultDef("thin_book", "thin liquidity: a MARKET order walks the opposite side of the book level by level "
             "(at most 'levels', at their prices, consuming them) and the rest EXPIRES",
             (Param("levels", int, 3, "book levels a MARKET order may take"),),
             scope="place", counts="order that walked the book"),
    FaultDef("internal_error", "answer 500 -1001 'Internal error; unable to process'; nothing executes",
             scope="orders"),
    FaultDef("order_reject", "reject with a venue error code (HTTP 400); nothing executes",
             (Param("code", int, -2019, "error code (-2019 margin, -1121 symbol, -2010 rejected, ...)"),
              Param("msg", str, None, "error message (default: the code's documented text)")),
             scope="place"),
    FaultDef("token_invalid", "answer 401 'Invalid API-key, IP, or permissions' to signed requests",
             (Param("code", int, -2015, "error code", choices=(-2015, -2014)),), scope="signed"),
    FaultDef("rest_corrupt", "reply 200 with a malformed body",
             (Param("mode", str, "html", "'html': not JSON; 'truncated': cut-off JSON; 'missing_field': "
                    "valid JSON without 'status'/'algoStatus'", choices=("html", "truncated", "missing_field")),
              Param("execute", bool, True, "execute the request before sending the garbage")),
             scope="orders"),
    FaultDef("clock_skew", "shift the exchange's clock (serverTime, event times, recvWindow checks)",
             (Param("ms", int, 0, "milliseconds added to the exchange clock (negative: behind)", required=True),),
             counts=None),
    FaultDef("price_spike", "move the price by pct percent at once (the walk continues from there)",
             (Param("pct", float, 0.0, "percent move, e.g. 25 or -30", required=True),
              Param("symbol", str, None, "only this symbol (default: all)")),
             counts=None, action=True),
)}

REST_FAULTS = tuple(name for name, spec in FAULTS.items() if spec.scope is not None)
GENERIC_FIELDS = ("name", "on", "count", "duration_s", "scope")


@dataclass
class ActiveFault:
    """A switched-on fault; ``remaining`` None = until switched off or ``until`` passes."""

    name: str
    params: dict[str, Any]
    scope: str | None
    remaining: int | None
    until: float | None
    hits: int = 0

    def to_json(self, now: float) -> dict[str, Any]:
        return {"name": self.name, **self.params, "scope": self.scope, "remaining": self.remaining,
                "expires_in_s": None if self.until is None else round(max(0.0, self.until - now), 3),
                "hits": self.hits}


@dataclass(frozen=True)
class RequestInfo:
    """What a REST fault's scope is matched against."""

    method: str
    path: str
    signed: bool
    order_write: bool  # POST/DELETE of /fapi/v1/order or /fapi/v1/algoOrder

    @property
    def is_place(self) -> bool:
        return self.order_write and self.method == "POST"


Listener = Callable[[str, dict[str, Any], bool], None]  # (name, params, on)


class FaultBoard:
    """Thread-safe set of active faults. ``clock`` is monotonic seconds (injectable for tests)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._active: dict[str, ActiveFault] = {}
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def add_listener(self, listener: Listener) -> None:
        """Called (name, params, on) after every switch, outside the board's lock."""
        self._listeners.append(listener)

    def set(self, name: str, *, on: bool = True, count: int | None = None, duration_s: float | None = None,
            scope: str | None = None, **params: Any) -> dict[str, Any] | None:
        """Switch one fault on (validated) or off; returns its state, or None when off."""
        spec = _spec(name)
        if not on:
            with self._lock:
                self._active.pop(name, None)
            self._notify(name, {}, False)
            return None
        values = _validate_params(spec, params)
        count = _validate_count(spec, count)
        if duration_s is not None and (not isinstance(duration_s, (int, float)) or duration_s <= 0):
            raise FaultError(f"{name}: duration_s must be a positive number, got {duration_s!r}")
        if scope is not None:
            if spec.scope is None:
                raise FaultError(f"{name}: 'scope' applies only to REST faults ({', '.join(REST_FAULTS)})")
            _validate_scope(name, scope)
        now = self.clock()
        fault = ActiveFault(name, values, scope or spec.scope, count,
                            None if duration_s is None else now + float(duration_s))
        stored = not spec.action and count != 0
        with self._lock:
            if stored:
                self._active[name] = fault
            else:
                self._active.pop(name, None)
        self._notify(name, values, True)
        return fault.to_json(now) if stored else {"name": name, **values, "applied": True}

    def apply_json(self, payload: Any) -> list[dict[str, Any] | None]:
        """Admin entry point: one object, a list of objects, or ``{"clear": true}``."""
        if isinstance(payload, list):
            return [item for entry in payload for item in self.apply_json(entry)]
        if not isinstance(payload, dict):
            raise FaultError(f"expected a JSON object or list of objects, got {type(payload).__name__}")
        if payload.get("clear") is True and "name" not in payload:
            self.clear()
            return []
        if "name" not in payload:
            raise FaultError(f"missing field 'name' (one of: {', '.join(FAULTS)}) or 'clear': true")
        entry = dict(payload)
        name = entry.pop("name")
        on = entry.pop("on", True)
        if not isinstance(on, bool):
            raise FaultError(f"{name}: 'on' must be true or false, got {on!r}")
        return [self.set(name, on=on, count=entry.pop("count", None), duration_s=entry.pop("duration_s", None),
                         scope=entry.pop("scope", None), **entry)]

    def clear(self, name: str | None = None) -> None:
        """Switch one fault (or every fault) off."""
        if name is not None:
            self.set(name, on=False)
            return
        with self._lock:
            names = list(self._active)
            self._active.clear()
        for cleared in names:
            self._notify(cleared, {}, False)

    def peek(self, name: str) -> ActiveFault | None:
        """The active fault, without consuming a count."""
        with self._lock:
            return self._live(name)

    def take(self, name: str, request: RequestInfo | None = None, *, symbol: str | None = None,
             stream: str | None = None) -> dict[str, Any] | None:
        """If ``name`` is on and applies here, consume one count and return its params."""
        with self._lock:
            fault = self._live(name)
            if fault is None:
                return None
            if request is not None and not _in_scope(fault.scope, request):
                return None
            wanted = fault.params.get("symbol")
            if wanted and symbol and wanted.upper() != symbol.upper():
                return None
            wanted_stream = fault.params.get("stream")
            if wanted_stream and stream and wanted_stream not in stream:
                return None
            fault.hits += 1
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self._active[name]
            return dict(fault.params)

    def snapshot(self) -> dict[str, Any]:
        """Active faults as JSON (for /admin/state and /admin/faults)."""
        now = self.clock()
        with self._lock:
            return {name: fault.to_json(now) for name in list(self._active)
                    if (fault := self._live(name)) is not None}

    def _live(self, name: str) -> ActiveFault | None:
        fault = self._active.get(name)
        if fault is not None and fault.until is not None and self.clock() >= fault.until:
            del self._active[name]
            return None
        return fault

    def _notify(self, name: str, params: dict[str, Any], on: bool) -> None:
        for listener in list(self._listeners):
            listener(name, params, on)


def help_text(width: int = 100) -> str:
    """Every fault, its parameters and defaults: the body of ``--help`` and ``GET /admin/help``."""
    import textwrap

    lines = ["fault controls (POST /admin/faults with JSON, or SimExchange.set_fault(name, **fields)):",
             '  {"name": NAME, "on": true|false, "count": N, "duration_s": S, "scope": ..., PARAM: VALUE...}',
             '  a list of such objects, or {"clear": true} to switch every fault off.',
             "  count: the fault turns itself off after acting N times; duration_s: after S seconds.",
             *textwrap.wrap(SCOPES_DOC, width, initial_indent="  ", subsequent_indent="    "), ""]
    for spec in FAULTS.values():
        lines += textwrap.wrap(f"{spec.name}: {spec.doc}", width, initial_indent="  ", subsequent_indent="      ")
        extras = []
        if spec.scope:
            extras.append(f"default scope {spec.scope!r}")
        extras.append(f"one count = one {spec.counts}" if spec.counts else "no count")
        if spec.action:
            extras.append("one-shot action")
        lines.append(f"      ({'; '.join(extras)})")
        for param in spec.params:
            choice = f"; one of {list(param.choices)}" if param.choices else ""
            need = " required" if param.required else f" default {param.default!r}"
            lines += textwrap.wrap(f"{param.name} ({param.kind.__name__},{need}{choice}): {param.doc}", width,
                                   initial_indent="      - ", subsequent_indent="        ")
    return "\n".join(lines)


def fault_catalog() -> dict[str, Any]:
    """The registry as JSON (``GET /admin/help``)."""
    return {spec.name: {"doc": spec.doc, "scope": spec.scope, "counts": spec.counts, "action": spec.action,
                        "params": {p.name: {"type": p.kind.__name__, "default": p.default, "doc": p.doc,
                                            "choices": list(p.choices) if p.choices else None,
                                            "required": p.required} for p in spec.params}}
            for spec in FAULTS.values()}


# -- validation -------------------------------------------------------------------


def _spec(name: Any) -> FaultDef:
    spec = FAULTS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise FaultError(f"unknown fault {name!r}; known faults: {', '.join(FAULTS)}")
    return spec


def _validate_params(spec: FaultDef, params: Mapping[str, Any]) -> dict[str, Any]:
    known = {p.name: p for p in spec.params}
    unknown = [key for key in params if key not in known]
    if unknown:
        allowed = ", ".join([*known, *GENERIC_FIELDS[1:]]) or "none"
        raise FaultError(f"{spec.name}: unknown field {unknown[0]!r}; allowed: {allowed}")
    values: dict[str, Any] = {}
    for param in spec.params:
        if param.name not in params:
            if param.required:
                raise FaultError(f"{spec.name}: missing required field {param.name!r} ({param.doc})")
            values[param.name] = param.default
            continue
        values[param.name] = _coerce(spec.name, param, params[param.name])
    return values


BOUNDS: dict[tuple[str, str], tuple[Callable[[Any], bool], str]] = {
    ("partial_fill", "ratio"): (lambda v: 0 < v < 1, "in (0, 1)"),
    ("partial_fill", "rest_after_s"): (lambda v: v > 0, "> 0"),
    ("market_expire", "ratio"): (lambda v: 0 <= v < 1, "in [0, 1)"),
    ("thin_book", "levels"): (lambda v: v > 0, "> 0"),
    ("network_delay", "ms"): (lambda v: v >= 0, ">= 0"),
    ("unknown_503", "execute_after_s"): (lambda v: 0 <= v <= MAX_LATE_EXECUTION_S,
                                         f"in [0, {MAX_LATE_EXECUTION_S:g}] (the simulator's late-execution horizon)"),
}


def _check_bounds(fault: str, name: str, value: Any) -> None:
    bound = BOUNDS.get((fault, name))
    if bound is not None and not bound[0](value):
        raise FaultError(f"{fault}: field {name!r} must be {bound[1]}, got {value!r}")


def _coerce(fault: str, param: Param, value: Any) -> Any:
    if value is None and not param.required:
        return None
    if param.kind is bool:
        ok = isinstance(value, bool)
    elif param.kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif param.kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, param.kind)
    if not ok:
        raise FaultError(f"{fault}: field {param.name!r} must be {param.kind.__name__}, got {value!r}")
    value = param.kind(value)
    if param.choices and value not in param.choices:
        raise FaultError(f"{fault}: field {param.name!r} must be one of {list(param.choices)}, got {value!r}")
    _check_bounds(fault, param.name, value)
    return value


def _validate_count(spec: FaultDef, count: Any) -> int | None:
    if count is None:
        return None
    if spec.counts is None:
        raise FaultError(f"{spec.name}: 'count' does not apply to this fault (use duration_s or switch it off)")
    minimum = 0 if spec.name == "ws_drop" else 1
    if not isinstance(count, int) or isinstance(count, bool) or count < minimum:
        raise FaultError(f"{spec.name}: count must be an integer >= {minimum}, got {count!r}")
    return count


def _validate_scope(name: str, scope: Any) -> None:
    if not isinstance(scope, str) or not (scope in ("place", "orders", "signed", "all") or "/" in scope):
        raise FaultError(f"{name}: bad scope {scope!r}; {SCOPES_DOC}")


def _in_scope(scope: str | None, request: RequestInfo) -> bool:
    if scope in (None, "all"):
        return True
    if scope == "place":
        return request.is_place
    if scope == "orders":
        return request.order_write
    if scope == "signed":
        return request.signed
    method, _, prefix = scope.rpartition(" ")
    return request.path.startswith(prefix) and (not method or method.upper() == request.method)

