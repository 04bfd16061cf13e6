"""The operator's HTTP endpoint: status, health, readiness, metrics and commands.

A stdlib `ThreadingHTTPServer` on a daemon thread. It owns no trading state:
it renders what `status_provider()` returns (the DESIGN §7 status document),
exposes a Prometheus registry, and hands validated operator commands to
`command_handler(name, args)`. Each request runs on its own short-lived
thread, so a slow provider never blocks the actor threads, and nothing here
ever blocks an actor.

Endpoints
  GET  /status             200 + the status JSON (500 if the provider fails)
  GET  /health             200 {"ok": true} when the tree's root is running and the
                           mode is not HARD_SHUTDOWN, else 503 with reasons
  GET  /ready              200 only when every configured symbol's gate is open and
                           trading is ACTIVE (and healthy), else 503 with reasons;
                           `?symbol=BTCUSDT` asks about one symbol
  GET  /metrics            Prometheus text of the given registry
  GET  <page>              any route given in `pages` (the node adds the web console at
                           `/` and the order history at `/history`, runtime/console)
  POST /commands/<name>    operator command, JSON body {"reason": ..., "id"/"name": ...}

GETs are open (bind to localhost, or put a proxy in front); POSTs require
`Authorization: Bearer <token>` when a token is configured (a non-loopback bind
without one is refused at start, see runtime/preflight.py). A bad command
(unknown name, missing reason/id/name, unexpected field, JSON nested too deep)
is answered 400 and never reaches the handler. Every command, accepted or not,
is logged.

A request has READ_DEADLINE_S to deliver its headers and body, however slowly
it trickles them: past that its socket is shut and the thread is free. Every
server-side error is one JSON log line; a client that hangs up mid-answer is
not an error.

`bind()` takes the port before anything else starts (so a busy port stops the
daemon before its tree starts); `start()` then serves on it.
"""
from __future__ import annotations

import hmac
import json
import os
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from runtime.config import STRATEGY_ID_RE, ConfigError, ConfigProblem, StatusConfig, parse_bind
from runtime.logging import log_event, register_secret

__all__ = [
    "COMMANDS",
    "CommandError",
    "StatusServer",
    "health_reasons",
    "readiness_reasons",
    "validate_command",
]

COMPONENT = "status-server"
# Operator commands -> the body field each one needs besides `reason`.
COMMANDS: dict[str, tuple[str, ...]] = {
    "halt": (),
    "resume": (),
    "breaker-reset": ("name",),
    "strategy-stop": ("id",),
    "strategy-start": ("id",),
    "strategy-enable": ("id",),
    "strategy-disable": ("id",),
    "chaos-inject": ("id", "kind"),  # refused unless the daemon runs with WARDEN_CHAOS_HOOKS=1
}
MAX_BODY_BYTES = 64 * 1024
MAX_REASON_CHARS = 500
READ_DEADLINE_S = 5.0  # headers + body of one request, however slowly they trickle in
# A client that hangs up mid-answer: normal, not a server error.
_CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)

StatusProvider = Callable[[], Mapping[str, Any]]


class Coalesced:
    """A status provider that builds at most one document per `max_age_s`, however many clients
    poll: a request within `max_age_s` of the last build gets that document, and requests that
    arrive while one is being built wait for it instead of building their own. A probe polling
    /ready every 50 ms against 10,000 strategies then costs two tree walks a second, not twenty
    (each walk holds the GIL and competes with the start of the very strategies it reports on).
    An exception is not cached: the next request builds again."""

    def __init__(self, provider: StatusProvider, max_age_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._provider = provider
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._built_at: float | None = None
        self._document: Mapping[str, Any] = {}

    def __call__(self) -> Mapping[str, Any]:
        with self._lock:  # one build at a time; the waiters then find it fresh
            if self._built_at is None or self._clock() - self._built_at >= self.max_age_s:
                self._document = self._provider()
                self._built_at = self._clock()
            return self._document
Page = Callable[[Mapping[str, list[str]]], tuple[int, bytes, str]]  # query -> (status, body, content type)
CommandHandler = Callable[[str, dict[str, Any]], Mapping[str, Any] | None]


class CommandError(Exception):
    """A command refused with an HTTP status. Handlers raise it for e.g. an unknown
    strategy id (404) or a command that does not apply now (409)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


_TOO_DEEP = object()  # a body json could not parse for its nesting


def validate_command(name: str, body: Any) -> dict[str, Any]:
    """The handler's `args` for a well-formed command; CommandError(400) naming what is wrong."""
    if name not in COMMANDS:
        raise CommandError(f"unknown command {name!r}; known: {', '.join(COMMANDS)}", 400)
    if body is _TOO_DEEP:
        raise CommandError("body is nested too deeply; send a flat JSON object like {\"reason\": \"...\"}", 400)
    if not isinstance(body, dict):
        raise CommandError("body must be a JSON object like {\"reason\": \"...\"}", 400)
    needed = COMMANDS[name]
    unexpected = sorted(set(body) - {"reason", *needed})
    if unexpected:
        accepted = ", ".join(("reason", *needed))
        raise CommandError(f"unexpected field(s) {', '.join(unexpected)} for {name} (accepted: {accepted})", 400)
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise CommandError(f"{name} needs a non-empty 'reason' (why the operator does this)", 400)
    if len(reason) > MAX_REASON_CHARS:
        raise CommandError(f"'reason' is longer than {MAX_REASON_CHARS} characters", 400)
    args: dict[str, Any] = {"reason": reason.strip()}
    for key in needed:
        value = body.get(key)
        if not isinstance(value, str) or not value.strip():
            raise CommandError(f"{name} needs {key!r} (the {'strategy id' if key == 'id' else 'breaker name'})", 400)
        if key == "id" and not STRATEGY_ID_RE.fullmatch(value):
            raise CommandError(f"'id' must match {STRATEGY_ID_RE.pattern}, got {value!r}", 400)
        args[key] = value
    return args


def health_reasons(status: Mapping[str, Any]) -> list[str]:
    """Why the node is not healthy (empty = healthy): the root must be running and
    the mode must not be HARD_SHUTDOWN."""
    reasons = []
    tree = status.get("tree")
    if not isinstance(tree, Mapping):
        reasons.append("no supervision tree in status")
    elif tree.get("state") != "running":
        reasons.append(f"{tree.get('id', 'root')} is {tree.get('state')}")
    if status.get("mode") == "HARD_SHUTDOWN":
        reasons.append("mode HARD_SHUTDOWN")
    if isinstance(tree, Mapping):
        reasons.extend(_harm_reasons(tree))
    return reasons


def _harm_reasons(node: Mapping[str, Any]) -> list[str]:
    """F31/F28: a failed strategy, or an open position no stop protects, is never healthy."""
    out = []
    details = node.get("details") if isinstance(node.get("details"), Mapping) else {}
    node_id = str(node.get("id", ""))
    if node_id.startswith("strategy:") and details.get("status") == "failed":
        out.append(f"{node_id} failed: {details.get('reason', '')}")
    if details.get("cold_start_pending"):
        out.append(f"{node_id}: cold start pending, no local stop armed yet ({details['cold_start_pending']})")
    unprotected = details.get("unprotected")
    if isinstance(unprotected, Mapping):
        out.extend(f"position of strategy:{sid} unprotected: {why}" for sid, why in unprotected.items())
    for child in node.get("children") or ():
        if isinstance(child, Mapping):
            out.extend(_harm_reasons(child))
    return out


def readiness_reasons(status: Mapping[str, Any], symbol: str | None = None) -> list[str]:
    """Why the node does not take new entries (empty = ready): healthy, trading ACTIVE and the
    gate open for every configured symbol (or, given `symbol`, for that one)."""
    reasons = health_reasons(status)
    gate = status.get("gate") if isinstance(status.get("gate"), Mapping) else {}
    symbols = gate.get("symbols") if isinstance(gate.get("symbols"), Mapping) else {}
    if symbol is not None:
        if symbol not in symbols:
            reasons.append(f"{symbol} is not a configured symbol (known: {', '.join(symbols) or 'none'})")
        elif not symbols[symbol].get("open"):
            reasons.append(f"gate closed for {symbol}: {'; '.join(map(str, symbols[symbol].get('reasons') or []))}")
    elif symbols:
        for name, sym_gate in symbols.items():
            if not sym_gate.get("open"):
                reasons.append(f"gate closed for {name}: {'; '.join(map(str, sym_gate.get('reasons') or []))}")
    elif not gate.get("open"):
        why = [str(r) for r in gate.get("reasons") or []]
        reasons.append("gate closed" + (f": {'; '.join(why)}" if why else ""))
    if status.get("trading") != "ACTIVE":
        reasons.append(f"trading {status.get('trading')}")
    return reasons


class StatusServer:
    """Serve the endpoints above on `bind` ('host:port'; port 0 picks a free port)."""

    def __init__(
        self,
        status_provider: StatusProvider,
        command_handler: CommandHandler,
        registry: CollectorRegistry,
        *,
        bind: str = "127.0.0.1:8765",
        token: str | None = None,
        on_scrape: Callable[[], None] | None = None,
        pages: Mapping[str, Page] | None = None,
        health_provider: StatusProvider | None = None,
    ) -> None:
        self.status_provider = status_provider
        # /health and /ready read only the tree, mode, trading and gates: a cheaper document
        # (no positions, no per-strategy store reads) keeps a tight /ready poll off Redis.
        self.health_provider = health_provider or status_provider
        self.pages = dict(pages or {})  # more GET routes, e.g. the web console (runtime/console)
        self.command_handler = command_handler
        self.registry = registry
        self.on_scrape = on_scrape  # e.g. metrics.update_from_status(provider()) before /metrics
        self._host, self._requested_port = parse_bind(bind)
        self.read_deadline_s = READ_DEADLINE_S
        self._token = token or None
        register_secret(self._token)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(
        cls,
        config: StatusConfig,
        status_provider: StatusProvider,
        command_handler: CommandHandler,
        registry: CollectorRegistry,
        *,
        environ: Mapping[str, str] | None = None,
        on_scrape: Callable[[], None] | None = None,
        pages: Mapping[str, Page] | None = None,
    ) -> "StatusServer":
        """Resolve `token_env`; a configured but unset variable is a ConfigError (fail closed)."""
        env = os.environ if environ is None else environ
        token = None
        if config.token_env:
            token = env.get(config.token_env)
            if not token:
                raise ConfigError([ConfigProblem(
                    "status.token_env", None,
                    f"environment variable {config.token_env} is not set; the status server "
                    "will not accept commands without its token",
                )])
        return cls(status_provider, command_handler, registry, bind=config.bind, token=token,
                   on_scrape=on_scrape, pages=pages)

    # -- lifecycle ---------------------------------------------------------------

    def bind(self) -> "StatusServer":
        """Take the port (OSError if it is busy or the address is not ours); serve nothing yet."""
        if self._httpd is None:
            server_cls = _Server6 if ":" in self._host else _Server
            self._httpd = server_cls((self._host, self._requested_port), _Handler)
            self._httpd.app = self  # type: ignore[attr-defined]
        return self

    def start(self) -> "StatusServer":
        self.bind()
        assert self._httpd is not None
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name=COMPONENT, daemon=True
        )
        self._thread.start()
        need_token = self._token is not None
        log_event(COMPONENT, "listening", details={"url": self.url, "token_required": need_token},
                  action_taken="operator commands require the operator token" if need_token
                  else "operator commands are accepted without a token (loopback only)")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._httpd is None:
            return
        if self._thread is not None:  # bound but never started: nothing to shut down
            self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
        self._httpd = None
        log_event(COMPONENT, "stopped")

    def __enter__(self) -> "StatusServer":
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        if self._httpd is None:
            return self._requested_port
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    def check_token(self, header: str | None) -> bool:
        if self._token is None:
            return True
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode(), self._token.encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One JSON log line per server-side error (never a traceback on stderr); a client gone is quiet."""
        exc = sys.exc_info()[1]
        if isinstance(exc, _CLIENT_GONE):
            return
        log_event(COMPONENT, "request_failed", level="ERROR", exc=exc,
                  details={"remote": str(client_address[0]) if client_address else None,
                           "error": f"{type(exc).__name__}: {exc}"},
                  action_taken="connection closed")


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server_version = "warden"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 10  # a stalled client cannot pin a thread forever
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

    @property
    def app(self) -> StatusServer:
        return self.server.app  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # requests are not logged line by line; commands are logged explicitly

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Malformed requests (bad request line, headers too long...): one JSON line, not stderr."""
        log_event(COMPONENT, "bad_request", level="WARNING",
                  details={"remote": self.client_address[0], "error": format % args}, action_taken="answered 4xx")

    def handle_one_request(self) -> None:
        """One request, whose headers and body must arrive within READ_DEADLINE_S in total."""
        self._deadline = threading.Timer(self.app.read_deadline_s, self._read_deadline_passed)
        self._deadline.daemon = True
        self._deadline.start()
        try:
            super().handle_one_request()
        except _CLIENT_GONE:
            self.close_connection = True
        except OSError:
            if self._expired_at is None:
                raise
            self.close_connection = True  # the deadline shut the socket under a blocked read
        finally:
            self._deadline.cancel()

    _expired_at: float | None = None

    def _read_deadline_passed(self) -> None:
        self._expired_at = time.time()
        log_event(COMPONENT, "request_deadline", level="WARNING",
                  details={"remote": self.client_address[0], "deadline_s": self.app.read_deadline_s},
                  action_taken="socket shut: headers and body not received in time")
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _request_read(self) -> None:
        """Headers and body are in: the deadline no longer applies (the command may take longer)."""
        self._deadline.cancel()

    # -- GET -----------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._request_read()
        path, _, query = self.path.partition("?")
        path = path.rstrip("/") or "/"
        if path == "/metrics":
            self._metrics()
        elif path in ("/status", "/health", "/ready"):
            status = self._status() if path == "/status" else self._status(health=True)
            if status is None:
                return
            if path == "/status":
                self._json(200, status)
            else:
                symbol = parse_qs(query).get("symbol", [None])[-1]
                reasons = health_reasons(status) if path == "/health" else readiness_reasons(status, symbol)
                self._json(503 if reasons else 200, {"ok": not reasons, "reasons": reasons})
        elif path in self.app.pages:
            self._page(self.app.pages[path], query)
        elif path.startswith("/commands/"):
            self._json(405, {"ok": False, "error": "commands are POST requests"}, {"Allow": "POST"})
        else:
            self._json(404, {"ok": False, "error": f"no such endpoint {path}",
                             "endpoints": ["/status", "/health", "/ready", "/metrics", *self.app.pages,
                                           "POST /commands/<name>"]})

    def _page(self, page: Page, query: str) -> None:
        try:
            code, body, content_type = page(parse_qs(query))
        except Exception as exc:
            log_event(COMPONENT, "page_failed", level="ERROR", exc=exc, details={"path": self.path},
                      action_taken="answered 500")
            self._json(500, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
            return
        self._send(code, body, content_type)

    def _status(self, health: bool = False) -> Mapping[str, Any] | None:
        try:
            status = self.app.health_provider() if health else self.app.status_provider()
        except Exception as exc:
            log_event(COMPONENT, "status_provider_failed", level="ERROR", exc=exc,
                      details={"path": self.path}, action_taken="answered 503")
            self._json(503, {"ok": False, "reasons": [f"status unavailable: {type(exc).__name__}: {exc}"]})
            return None
        return status

    def _metrics(self) -> None:
        try:
            if self.app.on_scrape is not None:
                self.app.on_scrape()
            body = generate_latest(self.app.registry)
        except Exception as exc:
            log_event(COMPONENT, "metrics_failed", level="ERROR", exc=exc, action_taken="answered 500")
            self._json(500, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
            return
        self._send(200, body, CONTENT_TYPE_LATEST)

    # -- POST ----------------------------------------------------------------------

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        path = self.path.split("?", 1)[0].rstrip("/")
        body_bytes = self._read_body()
        if body_bytes is None:
            return
        self._request_read()
        if not path.startswith("/commands/"):
            self._json(404, {"ok": False, "error": f"no such endpoint {path}; commands are POST /commands/<name>"})
            return
        name = path[len("/commands/"):]
        remote = self.client_address[0]
        if not self.app.check_token(self.headers.get("Authorization")):
            log_event(COMPONENT, "operator_command_unauthorized", level="WARNING",
                      details={"command": name, "remote": remote}, action_taken="refused with 401")
            self._json(401, {"ok": False, "error": "missing or wrong bearer token"},
                       {"WWW-Authenticate": 'Bearer realm="warden"'})
            return
        try:
            body = json.loads(body_bytes) if body_bytes.strip() else {}
        except (ValueError, UnicodeDecodeError):
            body = None
        except RecursionError:
            body = _TOO_DEEP
        try:
            args = validate_command(name, body)
        except CommandError as exc:
            log_event(COMPONENT, "operator_command_rejected", level="WARNING",
                      details={"command": name, "remote": remote, "error": exc.message},
                      action_taken=f"refused with {exc.status}, nothing changed")
            self._json(exc.status, {"ok": False, "command": name, "error": exc.message})
            return
        log_event(COMPONENT, "operator_command", level="WARNING",
                  details={"command": name, "remote": remote, **args}, action_taken=f"dispatching {name}")
        try:
            result = self.app.command_handler(name, args)
        except CommandError as exc:
            log_event(COMPONENT, "operator_command_refused", level="WARNING",
                      details={"command": name, "error": exc.message, **args},
                      action_taken=f"refused with {exc.status}")
            self._json(exc.status, {"ok": False, "command": name, "error": exc.message})
            return
        except Exception as exc:
            log_event(COMPONENT, "operator_command_failed", level="ERROR", exc=exc,
                      details={"command": name, **args}, action_taken="answered 500")
            self._json(500, {"ok": False, "command": name, "error": f"{type(exc).__name__}: {exc}"})
            return
        log_event(COMPONENT, "operator_command_done", details={"command": name, "result": result, **args},
                  action_taken=name)
        self._json(200, {"ok": True, "command": name, "result": dict(result or {})})

    def _read_body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._json(400, {"ok": False, "error": "bad Content-Length"})
            return None
        if length > MAX_BODY_BYTES or length < 0:
            self.close_connection = True
            self._json(413, {"ok": False, "error": f"body larger than {MAX_BODY_BYTES} bytes"})
            return None
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the client hung up, or the read deadline shut the socket
            self.close_connection = True
            return None
        return body

    # -- responses -----------------------------------------------------------------

    def _json(self, code: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        body = (json.dumps(payload, default=str, indent=None) + "\n").encode()
        self._send(code, body, "application/json", headers)

    def _send(self, code: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(code, HTTPStatus(code).phrase)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        try:
            self.end_headers()
            self.wfile.write(body)
        except _CLIENT_GONE:
            self.close_connection = True
