"""A TCP proxy on 127.0.0.1 in front of the simulator's WebSocket port that breaks one route only.

The simulator's ``ws_drop`` / ``ws_stall`` faults hit every socket at once; a feed holds two
(``/public`` and ``/market``), and proving that each fails and recovers on its own needs the
network to fail for one of them. This proxy forwards bytes unchanged (real WebSocket end to
end) and can, per route (the first segment of the handshake path):

- ``sever(route)``: cut that route's open connections (the client sees the TCP connection die);
- ``freeze(route)``: stop forwarding on that route's open connections in both directions,
  sockets left open (no data, no pong): a stall; new connections are unaffected;
- ``refuse(route, count)``: close the next ``count`` handshakes on that route unanswered.

Every wait is bounded; ``stop()`` closes everything.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

RECV_TIMEOUT_S = 0.02
HEAD_LIMIT = 16_384


@dataclass(eq=False)
class _Link:
    route: str
    path: str
    client: socket.socket
    upstream: socket.socket
    frozen: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.client, self.upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


class RouteProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(RECV_TIMEOUT_S * 5)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._refuse: dict[str, int] = {}
        self._stopped = threading.Event()
        self.paths: list[str] = []  # every handshake path seen, in order
        self._thread = threading.Thread(target=self._accept, name="route-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def sever(self, route: str) -> int:
        """Cut the open connections of ``route``; returns how many."""
        links = self._open(route)
        for link in links:
            link.close()
        return len(links)

    def freeze(self, route: str) -> int:
        """Stop forwarding on the open connections of ``route`` (sockets stay open); returns how many."""
        links = self._open(route)
        for link in links:
            link.frozen.set()
        return len(links)

    def refuse(self, route: str, count: int) -> None:
        with self._lock:
            self._refuse[route] = count

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()
        for link in self._open(None):
            link.close()
        self._thread.join(2.0)

    def _open(self, route: str | None) -> list[_Link]:
        with self._lock:
            return [link for link in self._links if not link.closed.is_set() and route in (None, link.route)]

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), name="route-proxy-conn", daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(1.0)
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < HEAD_LIMIT:
                chunk = client.recv(4096)
                if not chunk:
                    client.close()
                    return
                head += chunk
        except OSError:
            client.close()
            return
        path = head.split(b" ", 2)[1].decode() if head.count(b" ") >= 2 else "/"
        route = path.lstrip("/").split("/", 1)[0].split("?", 1)[0]
        with self._lock:
            self.paths.append(path)
            if self._refuse.get(route, 0) > 0:
                self._refuse[route] -= 1
                client.close()
                return
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=1.0)
        upstream.sendall(head)
        link = _Link(route, path, client, upstream)
        with self._lock:
            self._links.append(link)
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(link, src, dst), name="route-proxy-pump", daemon=True).start()

    def _pump(self, link: _Link, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(RECV_TIMEOUT_S)
        while not link.closed.is_set() and not self._stopped.is_set():
            if link.frozen.is_set():
                time.sleep(RECV_TIMEOUT_S)
                continue
            try:
                data = src.recv(65536)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                break
            if not data:
                break
            try:
                dst.sendall(data)
            except OSError:
                break
        link.close()
