"""One market-data WebSocket connection attempt and its reader thread (websocket-client).

The thread connects, pings every ``ping_interval`` seconds, reads, decodes and validates
every frame (``FrameDecoder``, F12) and only ``tell``s the feed actor what it saw, each
message stamped with its route and connection number so the actor can ignore a
superseded connection. It never touches actor state; the actor reads only
``last_ping``/``last_pong`` here (floats this thread writes) for its pong check.
``close()`` is safe from any thread and never blocks.

This thread shares the GIL with the stop path (feed -> state-builder -> execution), so
the per-frame work is one msgspec decode and one ``tell``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import pykka
import websocket
from websocket import ABNF

from actors.feed_frames import CorruptFrame, FeedEvent, FrameDecoder

# --- what the reader tells the actor ----------------------------------------------------


@dataclass(frozen=True)
class SocketConnected:
    route: str
    conn: int


@dataclass(frozen=True)
class SocketConnectFailed:
    route: str
    conn: int
    reason: str


@dataclass(frozen=True)
class SocketClosed:
    route: str
    conn: int
    reason: str
    perf: float  # when the reader saw it


@dataclass(frozen=True)
class SocketFrame:
    route: str
    conn: int
    event: FeedEvent
    received: float  # wall clock, epoch s
    perf: float  # time.perf_counter() when the frame left the socket


@dataclass(frozen=True)
class SocketCorrupt:
    route: str
    conn: int
    detail: str
    received: float


@dataclass(frozen=True)
class SocketTimings:
    """How one reader waits; the feed passes its own (tests inject short ones)."""

    ping_interval_s: float  # 0: no pings
    connect_timeout_s: float
    recv_timeout_s: float  # wake-up to ping and to notice a close() request


class FeedSocket:
    """One connection attempt of one route; see the module docstring."""

    def __init__(self, route: str, conn: int, url: str, decoder: FrameDecoder, ref: pykka.ActorRef[Any],
                 timings: SocketTimings, clock: Callable[[], float]) -> None:
        self.route = route
        self.conn = conn
        self.url = url
        self._decoder = decoder
        self._ref = ref
        self._timings = timings
        self._clock = clock
        self._stop = threading.Event()
        self._ws: websocket.WebSocket | None = None
        self.last_ping: float | None = None  # monotonic
        self.last_pong: float | None = None  # monotonic
        self.thread = threading.Thread(target=self._run, name=f"feed-{decoder.symbol}-{route}-{conn}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self._stop.set()
        ws = self._ws
        if ws is not None:
            ws.abort()  # wakes the reader; the reader closes the socket itself

    # -- reader thread -----------------------------------------------------------------

    def _tell(self, message: Any) -> None:
        if self._stop.is_set():
            return
        try:
            self._ref.tell(message)
        except pykka.ActorDeadError:
            self._stop.set()

    def _run(self) -> None:
        ws = websocket.WebSocket(enable_multithread=True, skip_utf8_validation=True)
        try:
            ws.connect(self.url, timeout=self._timings.connect_timeout_s)
        except Exception as exc:  # noqa: BLE001 - every failure is one failed attempt
            ws.shutdown()
            self._tell(SocketConnectFailed(self.route, self.conn, describe(exc)))
            return
        self._ws = ws
        if self._stop.is_set():
            ws.shutdown()
            return
        ws.settimeout(self._timings.recv_timeout_s)
        self.last_ping = self.last_pong = time.monotonic()
        self._tell(SocketConnected(self.route, self.conn))
        try:
            reason = self._read(ws)
        except Exception as exc:  # noqa: BLE001 - a reader bug is a dropped connection, never a dead thread
            reason = f"reader failed: {describe(exc)}"
        perf = time.perf_counter()
        ws.shutdown()
        self._tell(SocketClosed(self.route, self.conn, reason, perf))

    def _read(self, ws: websocket.WebSocket) -> str:
        ping_interval = self._timings.ping_interval_s
        while not self._stop.is_set():
            mono = time.monotonic()
            if ping_interval > 0 and mono - (self.last_ping or 0.0) >= ping_interval:
                if self.last_pong is not None and self.last_ping is not None and self.last_pong >= self.last_ping:
                    self.last_ping = mono  # only one ping outstanding: its age is the pong check
                    try:
                        ws.ping(b"warden")
                    except (OSError, websocket.WebSocketException) as exc:
                        return f"ping failed: {describe(exc)}"
            try:
                opcode, frame = ws.recv_data_frame(control_frame=True)
            except websocket.WebSocketTimeoutException:
                continue
            except (OSError, websocket.WebSocketException) as exc:
                return "closed" if self._stop.is_set() else f"connection lost: {describe(exc)}"
            if opcode == ABNF.OPCODE_PONG:
                self.last_pong = time.monotonic()
                continue
            if opcode == ABNF.OPCODE_PING:
                continue
            if opcode == ABNF.OPCODE_CLOSE:
                code = int.from_bytes(frame.data[:2], "big") if len(frame.data) >= 2 else None
                text = frame.data[2:].decode("utf-8", "replace") if len(frame.data) > 2 else ""
                return f"closed by venue (code {code}{': ' + text if text else ''})"
            self._on_data(frame.data)
        return "closed"

    def _on_data(self, raw: bytes | str) -> None:
        received, perf = self._clock(), time.perf_counter()
        try:
            event = self._decoder.decode(raw)
        except CorruptFrame as exc:
            self._tell(SocketCorrupt(self.route, self.conn, str(exc), received))
            return
        self._tell(SocketFrame(self.route, self.conn, event, received, perf))


def describe(exc: BaseException) -> str:
    """One line naming the exception (websocket-client appends the response headers: cut)."""
    text = str(exc).strip()
    text = text.splitlines()[0].split(" -+-+- ")[0][:200] if text else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = [
    "FeedSocket",
    "SocketClosed",
    "SocketConnectFailed",
    "SocketConnected",
    "SocketCorrupt",
    "SocketFrame",
    "SocketTimings",
    "describe",
]
