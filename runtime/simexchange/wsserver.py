"""WebSocket side of the simulated exchange: Binance-style market and user-data streams with faults.

Runs a ``websockets`` asyncio server in its own thread. Streams are served as
Binance does: combined ``/stream?streams=a/b`` (frames ``{"stream", "data"}``)
or raw ``/ws/a/b`` (the event alone), plus live ``SUBSCRIBE`` /
``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` requests. A stream name that is not
served, in the URL or in a live SUBSCRIBE, is accepted (SUBSCRIBE answers
``{"result": null}``), listed, and never sends anything: Binance acknowledges
every SUBSCRIBE, unknown symbol or stream type included, and tells the client
nothing. Only a malformed request (bad JSON, unknown method, params not a list of
names) gets an error; an unknown path is refused at the handshake (HTTP 400).

Routes, as after Binance's USD-M base-URL split (2026-03-06; legacy URLs
retired 2026-04-23): ``/public`` carries depth and bookTicker, ``/market``
carries markPrice, aggTrade and forceOrder, ``/private`` carries the
user-data stream of a listenKey. A stream asked for on the wrong route is
accepted and silently withheld, as Binance does: the root (legacy) path still
serves the /public streams and never a /market one. A listenKey is a stream
name like any other: a /private handshake (or SUBSCRIBE) with an unknown, deleted
or expired key is accepted and gets nothing, no event and no close (Binance sends
``listenKeyExpired`` only for a key that was valid on the connection and then
expired), so a client must check its key with the REST API (PUT: -1125). When a
valid key expires or is deleted, its sockets get ``listenKeyExpired`` and are closed.

``publish`` is the only entry from other threads: it hops onto the loop with
``call_soon_threadsafe`` (FIFO), so events reach every socket in the order they
were produced. Each socket has its own bounded queue and sender task, so one
slow client cannot delay the others (it is disconnected instead).

Faults applied here: ``ws_drop`` (close all, refuse handshakes), ``ws_stall``
(send nothing, read nothing, so no pong, socket open), ``ws_gap`` (a depth event
never leaves), ``ws_corrupt`` (invalid JSON or a missing field).
"""

from __future__ import annotations

import asyncio
import http
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from runtime.logging import log_event
from runtime.simexchange.faults import FaultBoard


STREAM_SUFFIXES = {
    "depth": "depth", "depth@100ms": "depth", "depth@250ms": "depth", "depth@500ms": "depth",
    "bookTicker": "bookTicker",
    "markPrice": "markPrice", "markPrice@1s": "markPrice", "aggTrade": "aggTrade", "forceOrder": "forceOrder",
}
ALL_MARKET_STREAMS = {"!forceOrder@arr": "!forceOrder@arr"}
PUBLIC, MARKET, PRIVATE, ROOT = "/public", "/market", "/private", ""
ROUTE_OF_KIND = {"depth": PUBLIC, "bookTicker": PUBLIC, "markPrice": MARKET, "aggTrade": MARKET,
                 "forceOrder": MARKET, "!forceOrder@arr": MARKET}
SERVED_KINDS_ON = {ROOT: PUBLIC, PUBLIC: PUBLIC, MARKET: MARKET}  # the root path is the legacy /public
USER_KEY = "@user"  # every /private socket's canonical stream key (one account)
SCHEMA_FIELD = {"depthUpdate": "pu", "markPriceUpdate": "p", "aggTrade": "p", "forceOrder": "o", "bookTicker": "b",
                "ORDER_TRADE_UPDATE": "o", "ACCOUNT_UPDATE": "a", "ALGO_UPDATE": "o"}
QUEUE_LIMIT = 10_000
STALL_CHECK_S = 0.02


class StreamNameError(ValueError):
    """A handshake path or live request the exchange refuses; the message says why and what is valid."""


@dataclass(eq=False)
class Subscriber:
    """One socket: which streams (canonical key -> names the client used), framing, outbound queue."""

    ws: ServerConnection
    combined: bool
    queue: asyncio.Queue[str | None]  # None: close after what is queued
    route: str = ROOT
    streams: dict[str, set[str]] = field(default_factory=dict)
    paused: bool = False

    def serves(self, key: str) -> bool:
        """Does this socket's route carry stream ``key``? (A wrong-route stream is withheld.)"""
        if self.route == PRIVATE:
            return key == USER_KEY
        kind = key if key in ALL_MARKET_STREAMS else key.partition("@")[2]
        return ROUTE_OF_KIND.get(kind) == SERVED_KINDS_ON[self.route]

    def add(self, name: str, key: str) -> None:
        self.streams.setdefault(key, set()).add(name)

    def remove(self, name: str) -> None:
        for names in self.streams.values():
            names.discard(name)

    def names(self) -> list[str]:
        return sorted(n for names in self.streams.values() for n in names)


class StreamServer:
    """Thread-owning asyncio WebSocket server; start/stop from any thread."""

    def __init__(self, symbols: Iterable[str], faults: FaultBoard, *, host: str = "127.0.0.1", port: int = 0,
                 ping_interval_s: float | None = None,
                 listen_key_valid: Callable[[str], bool] = lambda key: False) -> None:
        self.symbols = {s.lower() for s in symbols}
        self.listen_key_valid = listen_key_valid
        self.faults = faults
        self.host = host
        self.port = port
        self.ping_interval_s = ping_interval_s
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._subs: set[Subscriber] = set()
        self._stalled = False
        self._tasks: list[asyncio.Task[None]] = []
        self.frames_sent = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout_s: float = 5.0) -> None:
        """Listen, then return; raises if the server could not start in ``timeout_s``."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._open())
            except BaseException as exc:  # report to start(), do not die silently
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="simexchange-ws", daemon=True)
        self._thread.start()
        if not ready.wait(timeout_s):
            raise RuntimeError(f"simexchange WebSocket server did not start within {timeout_s}s")
        if failure:
            raise RuntimeError(f"simexchange WebSocket server failed to start: {failure[0]!r}") from failure[0]

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close every socket and the listener, stop the loop, join the thread."""
        loop, thread = self.loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._close(), loop)
        try:
            future.result(timeout_s)
        except Exception as exc:  # best effort: the loop is stopped below regardless
            log_event("simexchange", "ws_close_unclean", details={"error": repr(exc)}, level="WARNING")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)

    def every(self, interval: Callable[[], float], action: Callable[[], None], name: str) -> None:
        """Run ``action`` on the loop every ``interval()`` seconds (re-read each time) until stop."""
        assert self.loop is not None, "start() first"

        async def tick() -> None:
            while True:
                await asyncio.sleep(interval())
                try:
                    action()
                except Exception as exc:
                    log_event("simexchange", "periodic_task_failed", details={"task": name}, level="ERROR", exc=exc)

        def schedule() -> None:
            self._tasks.append(self.loop.create_task(tick(), name=name))  # type: ignore[union-attr]

        self.loop.call_soon_threadsafe(schedule)

    # -- thread-safe entry points ---------------------------------------------------------------

    def publish(self, key: str, data: dict[str, Any]) -> None:
        """Send one event to every subscriber of stream ``key`` (canonical, e.g. ``btcusdt@depth``)."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._fanout, key, data)

    def expire_listen_key(self, key: str, event: dict[str, Any]) -> None:
        """Send ``event`` (listenKeyExpired) to the sockets of ``key``, then close them."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._expire, key, event)

    def drop_all(self, abrupt: bool = False) -> None:
        """Close every open socket (``abrupt``: abort TCP, no close frame)."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._drop_all, abrupt)

    def connection_count(self) -> int:
        return len(self._subs)

    # -- stream names -------------------------------------------------------------------------

    def canonical(self, name: str) -> str | None:
        """Stream name -> the key events are published under; None for a name not served
        (uppercase symbol, unknown symbol or stream type)."""
        if name in ALL_MARKET_STREAMS:
            return ALL_MARKET_STREAMS[name]
        symbol, _, suffix = name.partition("@")
        kind = STREAM_SUFFIXES.get(suffix)
        if symbol not in self.symbols or kind is None:  # self.symbols is lowercase: BTCUSDT@depth is not served
            return None
        return f"{symbol}@{kind}"

    def parse_path(self, path: str) -> tuple[str, bool, list[str]]:
        """(route, combined?, stream names) from a handshake path; ``StreamNameError`` if invalid."""
        url = urlsplit(path)
        route = next((r for r in (PUBLIC, MARKET, PRIVATE) if url.path == r or url.path.startswith(f"{r}/")), ROOT)
        rest = url.path[len(route):]
        query = parse_qs(url.query)
        if rest.rstrip("/") == "/stream":
            raw = query.get("streams", [""])[0]
            names = [n for n in raw.split("/") if n]
            combined = True
        elif rest == "/ws" or rest.startswith("/ws/"):
            names = [n for n in rest[len("/ws"):].split("/") if n]
            combined = False
        else:
            raise StreamNameError(f"unknown path {url.path!r}; use [/public|/market|/private]/stream?streams=a/b "
                                  "or [/public|/market|/private]/ws/<stream>")
        if route == PRIVATE:  # /private/ws/<key>, /private/ws?listenKey=<key>, or none yet (SUBSCRIBE it later)
            names += query.get("listenKey", [])
        return route, combined, names

    def _key_or_withheld(self, route: str, name: str) -> str:
        """A stream name's key; a name not served gets a key nothing is published under.

        Binance accepts any name, in the URL or a SUBSCRIBE (ccxt connects to ``/public/ws/0`` and
        SUBSCRIBEs afterwards), and sends nothing for one it does not serve: no error, no frames.
        On /private the names are listenKeys: only the account's valid key carries its events.
        """
        key = (USER_KEY if self.listen_key_valid(name) else None) if route == PRIVATE else self.canonical(name)
        return key or f"?{name}"

    # -- loop side --------------------------------------------------------------------------

    async def _open(self) -> None:
        self._server = await serve(self._handler, self.host, self.port, process_request=self._process_request,
                                   compression=None, ping_interval=self.ping_interval_s, ping_timeout=None,
                                   close_timeout=1.0, max_queue=64)
        self.port = self._server.sockets[0].getsockname()[1]
        self._tasks.append(asyncio.get_running_loop().create_task(self._watch_stall(), name="ws-stall"))

    async def _close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.faults.take("ws_drop") is not None:
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "simexchange: ws_drop fault is on\n")
        try:
            self.parse_path(request.path)
        except StreamNameError as exc:
            return connection.respond(http.HTTPStatus.BAD_REQUEST, f"{exc}\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        route, combined, names = self.parse_path(ws.request.path)  # checked by _process_request
        sub = Subscriber(ws, combined, asyncio.Queue(QUEUE_LIMIT), route)
        for name in names:
            sub.add(name, self._key_or_withheld(route, name))
        self._subs.add(sub)
        if self._stalled:
            self._pause(sub)
        sender = asyncio.get_running_loop().create_task(self._send_loop(sub))
        try:
            async for message in ws:
                self._on_client_message(sub, message)
        except ConnectionClosed:
            pass
        finally:
            self._subs.discard(sub)
            sender.cancel()

    async def _send_loop(self, sub: Subscriber) -> None:
        try:
            while True:
                frame = await sub.queue.get()
                if frame is None:
                    await sub.ws.close(1000, "listenKeyExpired")
                    return
                await sub.ws.send(frame)
                self.frames_sent += 1
        except (ConnectionClosed, asyncio.CancelledError):
            return

    def _on_client_message(self, sub: Subscriber, message: str | bytes) -> None:
        """Binance live subscription requests: {"method": ..., "params": [...], "id": n}."""
        try:
            request = json.loads(message)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self._reply(sub, {"error": {"code": 3, "msg": f"Invalid JSON: {exc}"}, "id": None})
            return
        if not isinstance(request, dict):
            self._reply(sub, {"error": {"code": 2, "msg": "Invalid request: expected an object"}, "id": None})
            return
        method, params, req_id = request.get("method"), request.get("params", []), request.get("id")
        try:
            if method == "LIST_SUBSCRIPTIONS":
                self._reply(sub, {"result": sub.names(), "id": req_id})
                return
            if method not in ("SUBSCRIBE", "UNSUBSCRIBE"):
                raise StreamNameError(f"unknown method {method!r}; use SUBSCRIBE, UNSUBSCRIBE or LIST_SUBSCRIPTIONS")
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                raise StreamNameError("'params' must be a list of stream names")
            keys = [self._key_or_withheld(sub.route, p) for p in params]
        except StreamNameError as exc:
            self._reply(sub, {"error": {"code": 2, "msg": f"Invalid request: {exc}"}, "id": req_id})
            return
        for name, key in zip(params, keys):
            if method == "SUBSCRIBE":
                sub.add(name, key)
            else:
                sub.remove(name)
        self._reply(sub, {"result": None, "id": req_id})

    def _reply(self, sub: Subscriber, payload: dict[str, Any]) -> None:
        self._enqueue(sub, json.dumps(payload))

    def _fanout(self, key: str, data: dict[str, Any]) -> None:
        if key.endswith("@depth") and self.faults.take("ws_gap", symbol=data.get("s")) is not None:
            return
        for sub in list(self._subs):
            names = sub.streams.get(key)
            if not names or not sub.serves(key):
                continue
            if self.faults.take("ws_stall") is not None:
                continue
            for name in names:
                frame = json.dumps({"stream": name, "data": data} if sub.combined else data)
                corrupt = self.faults.take("ws_corrupt", stream=name)
                if corrupt is not None:
                    frame = _corrupt_frame(frame, data, name, sub.combined, corrupt["mode"])
                self._enqueue(sub, frame)

    def _enqueue(self, sub: Subscriber, frame: str | None) -> None:
        try:
            sub.queue.put_nowait(frame)
        except asyncio.QueueFull:
            log_event("simexchange", "slow_consumer_disconnected", details={"route": sub.route, "streams": len(sub.streams)},
                      action_taken="socket closed 1008", level="WARNING")
            self._subs.discard(sub)
            asyncio.get_running_loop().create_task(sub.ws.close(1008, "slow consumer"))

    def _expire(self, key: str, event: dict[str, Any]) -> None:
        for sub in list(self._subs):
            if sub.route == PRIVATE and key in sub.streams.get(USER_KEY, ()):
                self._subs.discard(sub)
                self._enqueue(sub, json.dumps({"stream": key, "data": event} if sub.combined else event))
                self._enqueue(sub, None)

    def _drop_all(self, abrupt: bool) -> None:
        for sub in list(self._subs):
            self._subs.discard(sub)
            if abrupt:
                sub.ws.transport.abort()
            else:
                asyncio.get_running_loop().create_task(sub.ws.close(1001, "simexchange: ws_drop"))

    async def _watch_stall(self) -> None:
        """Pause/resume reading on every socket as ws_stall switches (no read = no pong)."""
        while True:
            stalled = self.faults.peek("ws_stall") is not None
            if stalled != self._stalled:
                self._stalled = stalled
                for sub in list(self._subs):
                    self._pause(sub) if stalled else self._resume(sub)
            await asyncio.sleep(STALL_CHECK_S)

    def _pause(self, sub: Subscriber) -> None:
        if not sub.paused:
            sub.paused = True
            sub.ws.transport.pause_reading()

    def _resume(self, sub: Subscriber) -> None:
        if sub.paused:
            sub.paused = False
            sub.ws.transport.resume_reading()


def _corrupt_frame(frame: str, data: dict[str, Any], name: str, combined: bool, mode: str) -> str:
    if mode == "json":
        return frame[: max(1, len(frame) // 2)]
    missing = SCHEMA_FIELD.get(str(data.get("e")), "e")
    broken = {k: v for k, v in data.items() if k != missing}
    return json.dumps({"stream": name, "data": broken} if combined else broken)
