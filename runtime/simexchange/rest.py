"""REST side of the simulated exchange: ``/fapi`` protocol endpoints and ``/admin`` controls.

A stdlib ``ThreadingHTTPServer`` (HTTP/1.1 keep-alive, one thread per
connection) so a held reply or injected latency delays only its own request.
``FapiRouter`` does what the venue does, in the venue's order: weight
accounting, rate limits, authentication (API key, HMAC signature,
timestamp/recvWindow), then the request, with the fault board consulted at each
step. Every order request (place/cancel, plain or algo) lands in the ledger,
whatever its outcome, including requests refused by a fault or by auth.

Admin routes never see faults or weight: chaos tests must always be able to
switch a fault off.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from decimal import Decimal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from runtime.logging import log_event
from runtime.simexchange.faults import FaultBoard, FaultError, RequestInfo, fault_catalog
from runtime.simexchange.matching import ERROR_TEXT, Defer, FillPlan, MatchingEngine, VenueError
from runtime.venue.budget import request_weight, retry_after_ceil
from runtime.venue.signing import verify

if TYPE_CHECKING:
    from runtime.simexchange.exchange import SimExchange


MAX_RECV_WINDOW_MS = 60_000


@dataclass
class Reply:
    """One HTTP reply; ``hold_s`` delays sending it (after the work is done)."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    hold_s: float = 0.0

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
        return cls(status, json.dumps(payload, separators=(",", ":")).encode(),
                   {"Content-Type": "application/json;charset=UTF-8", **(headers or {})})

    @classmethod
    def error(cls, err: VenueError, headers: Mapping[str, str] | None = None) -> Reply:
        return cls.json(err.status, err.body(), headers)


@dataclass(frozen=True)
class Route:
    handler: Callable[[MatchingEngine, Mapping[str, str]], Any]
    signed: bool
    action: str | None = None  # ledger action for order requests
    key_only: bool = False  # USER_STREAM security: the API key, no signature (listenKey routes)


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/fapi/v1/ping"): Route(lambda e, p: {}, signed=False),
    ("GET", "/fapi/v1/time"): Route(lambda e, p: {"serverTime": e.now_ms()}, signed=False),
    ("GET", "/fapi/v1/depth"): Route(MatchingEngine.depth, signed=False),
    ("GET", "/fapi/v1/exchangeInfo"): Route(lambda e, p: e.exchange_info(), signed=False),
    ("POST", "/fapi/v1/order"): Route(MatchingEngine.place_order, signed=True, action="place"),
    ("GET", "/fapi/v1/order"): Route(MatchingEngine.query_order, signed=True),
    ("DELETE", "/fapi/v1/order"): Route(MatchingEngine.cancel_order, signed=True, action="cancel"),
    ("GET", "/fapi/v1/openOrders"): Route(MatchingEngine.open_orders, signed=True),
    ("GET", "/fapi/v2/positionRisk"): Route(MatchingEngine.position_risk, signed=True),
    ("GET", "/fapi/v3/positionRisk"): Route(MatchingEngine.position_risk_v3, signed=True),
    ("GET", "/fapi/v2/account"): Route(MatchingEngine.account_info, signed=True),
    ("GET", "/fapi/v3/account"): Route(MatchingEngine.account_info, signed=True),
    ("GET", "/fapi/v2/balance"): Route(MatchingEngine.balances, signed=True),
    ("GET", "/fapi/v3/balance"): Route(MatchingEngine.balances, signed=True),
    ("GET", "/fapi/v1/leverageBracket"): Route(MatchingEngine.leverage_bracket, signed=True),
    ("POST", "/fapi/v1/algoOrder"): Route(MatchingEngine.place_algo, signed=True, action="place_algo"),
    ("GET", "/fapi/v1/algoOrder"): Route(MatchingEngine.query_algo, signed=True),
    ("DELETE", "/fapi/v1/algoOrder"): Route(MatchingEngine.cancel_algo, signed=True, action="cancel_algo"),
    ("GET", "/fapi/v1/openAlgoOrders"): Route(MatchingEngine.open_algos, signed=True),
}


class WeightWindow:
    """Sliding one-minute IP weight, as reported in ``X-MBX-USED-WEIGHT-1M``."""

    def __init__(self, limit: int, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._spent: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def add(self, weight: int) -> tuple[int, float]:
        """Count one request; returns (used weight now, seconds until back under the limit)."""
        with self._lock:
            now = self._clock()
            while self._spent and self._spent[0][0] <= now - self.window_s:
                self._spent.popleft()
            self._spent.append((now, weight))
            used = sum(w for _, w in self._spent)
            wait, freed = 0.0, 0
            for t, w in self._spent:
                if used - freed <= self.limit:
                    break
                freed += w
                wait = t + self.window_s - now
            return used, wait

    def reset(self) -> None:
        with self._lock:
            self._spent.clear()


class FapiRouter:
    """The protocol endpoints; one call per request, from the request's thread."""

    def __init__(self, engine: MatchingEngine, faults: FaultBoard, weights: WeightWindow,
                 keys: Mapping[str, str], defer: Defer,
                 extra_routes: Mapping[tuple[str, str], Route] | None = None) -> None:
        self.routes = {**ROUTES, **(extra_routes or {})}
        self.engine = engine
        self.faults = faults
        self.weights = weights
        self.keys = dict(keys)
        self.defer = defer

    def handle(self, method: str, path: str, raw_query: str, raw_body: str,
               headers: Mapping[str, str]) -> Reply:
        route = self.routes.get((method, path))
        if route is None:
            allowed = [m for (m, p) in self.routes if p == path]
            if allowed:
                return Reply.json(405, {"code": -1000, "msg": f"Method {method} not allowed; use {allowed}"})
            return Reply(404, b"<html><body><h1>404 Not Found</h1></body></html>", {"Content-Type": "text/html"})
        try:
            params = _params(raw_query, raw_body)
        except VenueError as err:
            return Reply.error(err)
        request = RequestInfo(method, path, route.signed, route.action is not None)
        if (delay := self.faults.take("network_delay", request)) is not None:
            time.sleep(delay["ms"] / 1000.0)  # still in the network: the venue has not seen it yet
        used, wait = self.weights.add(request_weight(method, path, params))
        weight_header = {"X-MBX-USED-WEIGHT-1M": str(used)}

        reply = self._gate(route, request, params, raw_query, raw_body, headers, used, wait, weight_header)
        if reply is None:
            reply = self._execute(route, request, params, weight_header)
        return reply

    # -- stages ---------------------------------------------------------------------------

    def _gate(self, route: Route, request: RequestInfo, params: dict[str, str], raw_query: str, raw_body: str,
              headers: Mapping[str, str], used: int, wait: float, weight_header: dict[str, str]) -> Reply | None:
        """Everything that refuses a request before it runs: rate limits, latency, auth, injected rejects."""
        refusal: tuple[VenueError, dict[str, str], str | None] | None = None
        if used > self.weights.limit:
            msg = f"Too many requests; current limit is {self.weights.limit} request weight per 1 MINUTE."
            refusal = (VenueError(-1003, msg, 429), {"Retry-After": str(retry_after_ceil(wait))}, None)
        for name, status in (("http_418", 418), ("http_429", 429)):
            if refusal is None and (fault := self.faults.take(name, request)) is not None:
                msg = ("Way too many requests; IP banned." if status == 418
                       else "Too many requests; please use the websocket for live updates.")
                refusal = (VenueError(-1003, msg, status), {"Retry-After": str(fault["retry_after_s"])}, name)
        if refusal is None and (fault := self.faults.take("rest_latency", request)) is not None:
            time.sleep(fault["ms"] / 1000.0)
        if refusal is None and (route.signed or route.key_only):
            refusal = self._authenticate(request, params, raw_query, raw_body, headers, route.key_only)
        if refusal is None and route.action is not None:
            if (fault := self.faults.take("order_reject", request)) is not None:
                refusal = (VenueError(fault["code"], fault["msg"] or ERROR_TEXT.get(fault["code"])), {},
                           "order_reject")
            elif self.faults.take("internal_error", request) is not None:
                refusal = (VenueError(-1001, status=500), {}, "internal_error")
        if refusal is None:
            return None
        err, extra_headers, fault_name = refusal
        self._ledger(route, request, params, err.status, err.code, "REJECTED", None, fault_name, err.msg)
        return Reply.error(err, {**weight_header, **extra_headers})

    def _authenticate(self, request: RequestInfo, params: dict[str, str], raw_query: str, raw_body: str,
                      headers: Mapping[str, str],
                      key_only: bool = False) -> tuple[VenueError, dict[str, str], str | None] | None:
        fault = self.faults.take("token_invalid", request)
        if fault is not None:
            return VenueError(fault["code"], status=401), {}, "token_invalid"
        key = headers.get("X-MBX-APIKEY")
        if not key:
            return VenueError(-2014, status=401), {}, None
        secret = self.keys.get(key)
        if secret is None:
            return VenueError(-2015, status=401), {}, None
        if key_only:
            return None
        signature = params.get("signature")
        if not signature:
            return VenueError(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."), \
                {}, None
        if not verify(secret, _strip_signature(raw_query) + _strip_signature(raw_body), signature):
            return VenueError(-1022), {}, None
        try:
            timestamp = int(params.get("timestamp", ""))
            recv_window = int(params.get("recvWindow", "5000"))
        except ValueError:
            return VenueError(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."), \
                {}, None
        if not 0 < recv_window <= MAX_RECV_WINDOW_MS:
            return VenueError(-1130, f"recvWindow must be in (0, {MAX_RECV_WINDOW_MS}]."), {}, None
        now = self.engine.now_ms()
        if timestamp >= now + 1000:
            return VenueError(-1021, "Timestamp for this request was 1000ms ahead of the server's time."), {}, None
        if now - timestamp > recv_window:
            return VenueError(-1021), {}, None
        return None

    def _execute(self, route: Route, request: RequestInfo, params: dict[str, str],
                 weight_header: dict[str, str]) -> Reply:
        """Run the request, then apply reply faults (unknown 503, corrupt body, held reply).

        Reply faults are taken before running, so "count" means "the next N order
        requests", whatever their result, and the ledger names the fault.
        """
        unknown = corrupt = hold = None
        if route.action:
            unknown = self.faults.take("unknown_503", request)
            corrupt = self.faults.take("rest_corrupt", request)
            hold = self.faults.take("hold_reply", request)
        fault = "unknown_503" if unknown else "rest_corrupt" if corrupt else "hold_reply" if hold else None
        execute = not ((unknown and not unknown["execute"]) or (corrupt and not corrupt["execute"]))
        plan = self._fill_plan(route, request, params) if execute else None
        late_s = unknown["execute_after_s"] if unknown and unknown["execute"] else 0.0
        result: Any = None
        if not execute or late_s > 0:
            message = f"replied unknown; executes {late_s:g} s after arrival" if execute else ""
            self._ledger(route, request, params, 503 if unknown else 200, None,
                         "PENDING" if execute else "NOT_EXECUTED", None, fault, message)
            if execute:
                self.defer(late_s, lambda: self._run_and_record(route, request, params, plan, 503, "unknown_503",
                                                                "executed late, after an unknown reply"),
                           f"late {request.method} {request.path} {params.get('newClientOrderId', '')}")
            reply = Reply.json(200, {})
        else:
            code = unknown["code"] if unknown else None
            result, err = self._run_and_record(route, request, params, plan, 503 if unknown else 200, fault, "",
                                               code)
            reply = Reply.error(err, weight_header) if err else Reply.json(200, result, weight_header)
        if unknown is not None:
            reply = Reply.error(VenueError(unknown["code"], status=503), weight_header)
        elif corrupt is not None:
            reply = _corrupt_reply(reply, result, corrupt["mode"])
        if hold is not None:
            reply.hold_s = hold["hold_s"]
        return reply

    def _run_and_record(self, route: Route, request: RequestInfo, params: dict[str, str], plan: FillPlan | None,
                        status: int, fault: str | None, message: str,
                        code: int | None = None) -> tuple[Any, VenueError | None]:
        """Run the request in the engine and ledger what happened; (result, error)."""
        try:
            result = (self.engine.place_order(params, plan) if route.action == "place"
                      else route.handler(self.engine, params))
        except VenueError as err:
            self._ledger(route, request, params, err.status, err.code, "REJECTED", None, fault, err.msg)
            return None, err
        self._ledger(route, request, params, status, code, _outcome_of(result), result, fault, message)
        return result, None

    def _fill_plan(self, route: Route, request: RequestInfo, params: Mapping[str, str]) -> FillPlan | None:
        """How a new plain order executes, if a fill fault applies to it (faults are taken only if they do)."""
        if route.action != "place":
            return None
        order_type = params.get("type")
        if order_type == "MARKET":
            if (fault := self.faults.take("thin_book", request)) is not None:
                return FillPlan("thin", levels=fault["levels"])
            if (fault := self.faults.take("market_expire", request)) is not None:
                return FillPlan("expire", ratio=Decimal(str(fault["ratio"])), expire_status=fault["status"])
        if order_type in ("MARKET", "LIMIT") and (fault := self.faults.take("partial_fill", request)) is not None:
            return FillPlan("partial", ratio=Decimal(str(fault["ratio"])), rest_after_s=fault["rest_after_s"])
        return None

    def _ledger(self, route: Route, request: RequestInfo, params: Mapping[str, str], status: int,
                code: int | None, outcome: str, result: Any, fault: str | None, message: str) -> None:
        if route.action is None:
            return
        result = result if isinstance(result, dict) else {}
        algo = route.action.endswith("_algo")
        client_id = params.get("clientAlgoId") if algo else (
            params.get("newClientOrderId") or params.get("origClientOrderId"))
        self.engine.record({
            "action": route.action, "method": request.method, "path": request.path,
            "symbol": params.get("symbol") or result.get("symbol"), "side": params.get("side"),
            "type": params.get("type"), "quantity": params.get("quantity"), "price": params.get("price"),
            "stop_price": params.get("triggerPrice"), "reduce_only": params.get("reduceOnly") == "true",
            "close_position": params.get("closePosition") == "true",
            "client_order_id": client_id or result.get("clientOrderId") or result.get("clientAlgoId"),
            "order_id": result.get("algoId") if algo else result.get("orderId"),
            "http_status": status, "code": code, "outcome": outcome,
            "executed": outcome not in ("REJECTED", "NOT_EXECUTED", "PENDING"),
            "executed_qty": result.get("executedQty"), "fault": fault, "message": message,
        })


class AdminRouter:
    """``/admin/*``: state, ledger, faults, prices, market controls, reset. Never faulted."""

    def __init__(self, exchange: SimExchange) -> None:
        self.exchange = exchange

    def handle(self, method: str, path: str, raw_query: str, raw_body: str) -> Reply:
        query = dict(parse_qsl(raw_query))
        try:
            body = json.loads(raw_body) if raw_body.strip() else {}
        except json.JSONDecodeError as exc:
            return Reply.json(400, {"error": f"invalid JSON body: {exc.msg} at char {exc.pos}"})
        ex = self.exchange
        try:
            if (method, path) == ("GET", "/admin/state"):
                return Reply.json(200, ex.state())
            if (method, path) == ("GET", "/admin/ledger"):
                return Reply.json(200, {"entries": ex.ledger(query.get("client_order_id"))})
            if (method, path) == ("GET", "/admin/faults"):
                return Reply.json(200, {"active": ex.faults.snapshot()})
            if (method, path) == ("POST", "/admin/faults"):
                applied = ex.faults.apply_json(body)
                return Reply.json(200, {"applied": applied, "active": ex.faults.snapshot()})
            if (method, path) == ("DELETE", "/admin/faults"):
                ex.faults.clear()
                return Reply.json(200, {"active": {}})
            if (method, path) == ("GET", "/admin/help"):
                return Reply.json(200, {"faults": fault_catalog()})
            if (method, path) == ("GET", "/admin/book"):
                symbol = _field(query, "symbol", str)
                return Reply.json(200, ex.book_snapshot(symbol))
            if (method, path) == ("POST", "/admin/price"):
                return Reply.json(200, self._price(_object(body)))
            if (method, path) == ("POST", "/admin/market"):
                return Reply.json(200, ex.configure_market(**_object(body)))
            if (method, path) == ("POST", "/admin/liquidation"):
                b = _object(body)
                event = ex.emit_liquidation(_field(b, "symbol", str), _field(b, "side", str),
                                            _field(b, "quantity", (int, float)), b.get("price"))
                return Reply.json(200, event)
            if (method, path) == ("POST", "/admin/listenKey/expire"):
                return Reply.json(200, {"expired": ex.expire_listen_key()})
            if (method, path) == ("POST", "/admin/reset"):
                ex.reset()
                return Reply.json(200, ex.state())
        except (FaultError, ValueError, TypeError) as exc:
            return Reply.json(400, {"error": str(exc)})
        except VenueError as err:
            return Reply.json(400, {"error": err.msg, "code": err.code})
        return Reply.json(404, {"error": f"no admin route {method} {path}; see GET /admin/help and --help"})

    def _price(self, body: dict[str, Any]) -> dict[str, Any]:
        symbol = _field(body, "symbol", str)
        given = [k for k in ("price", "pct", "path") if k in body]
        if len(given) != 1:
            raise ValueError("POST /admin/price needs exactly one of 'price', 'pct' or 'path' (with 'symbol')")
        if "price" in body:
            return {"symbol": symbol, "price": str(self.exchange.set_price(symbol, _field(body, "price",
                                                                                           (int, float))))}
        if "pct" in body:
            return {"moved": self.exchange.spike_price(symbol, _field(body, "pct", (int, float)))}
        path = body["path"]
        if not isinstance(path, list) or not path or not all(isinstance(x, (int, float)) for x in path):
            raise ValueError("'path' must be a non-empty list of prices")
        self.exchange.script_prices(symbol, path)
        return {"symbol": symbol, "scripted_steps": len(path)}


class SimHTTPServer(ThreadingHTTPServer):
    """Threading server that never joins handler threads on close (a held reply must not block stop())."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], fapi: FapiRouter, admin: AdminRouter) -> None:
        super().__init__(address, SimRequestHandler)
        self.fapi = fapi
        self.admin = admin


class SimRequestHandler(BaseHTTPRequestHandler):
    """Glue between http.server and the routers."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: without this, +40 ms per reply
    server: SimHTTPServer
    server_version = "warden-simexchange"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """Silence http.server's stderr access log; the ledger is the record that matters."""

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        try:
            if url.path.startswith("/admin"):
                reply = self.server.admin.handle(method, url.path, url.query, raw_body)
            else:
                reply = self.server.fapi.handle(method, url.path, url.query, raw_body, self.headers)
        except Exception as exc:  # a simulator bug must show up as a 500 naming it, not a hung client
            log_event("simexchange", "handler_failed", details={"method": method, "path": url.path},
                      level="ERROR", exc=exc)
            reply = Reply.json(500, {"code": -1000, "msg": f"simulator error: {type(exc).__name__}: {exc}"})
        if reply.hold_s > 0:
            time.sleep(reply.hold_s)
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:  # the client gave up (held reply past its timeout): expected
            self.close_connection = True


# -- helpers -------------------------------------------------------------------------------


def _params(raw_query: str, raw_body: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for part in (raw_query, raw_body):
        for key, value in parse_qsl(part, keep_blank_values=True):
            if key in params:
                raise VenueError(-1101, f"Duplicate values for parameter '{key}'.")
            params[key] = value
    return params


def _strip_signature(raw: str) -> str:
    return "&".join(part for part in raw.split("&") if part and not part.startswith("signature="))


def _outcome_of(result: Any) -> str:
    if isinstance(result, dict):
        return str(result.get("status") or result.get("algoStatus") or ("CANCELED" if result.get("code") == "200"
                                                                          else "OK"))
    return "OK"


def _corrupt_reply(reply: Reply, result: Any, mode: str) -> Reply:
    if mode == "html":
        body = b"<html><body>502 Bad Gateway</body></html>"
    elif mode == "truncated":
        body = reply.body[: max(1, len(reply.body) // 2)]
    else:
        stripped = {k: v for k, v in result.items() if k not in ("status", "algoStatus")} \
            if isinstance(result, dict) else result
        body = json.dumps(stripped).encode()
    return Reply(200, body, {**reply.headers, "Content-Type": "application/json;charset=UTF-8"})


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object, got {type(body).__name__}")
    return body


def _field(body: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in body:
        raise ValueError(f"missing field {name!r}")
    value = body[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"field {name!r} has the wrong type: {value!r}")
    return value
