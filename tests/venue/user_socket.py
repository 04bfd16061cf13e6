"""A raw /private socket for tests: POST a listenKey, connect, collect user-data events."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import requests
import websocket

from runtime.simexchange import SimExchange


def new_listen_key(exchange: SimExchange) -> str:
    reply = requests.post(f"{exchange.rest_url}/fapi/v1/listenKey", headers={"X-MBX-APIKEY": exchange.api_key},
                          timeout=2)
    assert reply.status_code == 200, reply.text
    return reply.json()["listenKey"]


class UserSocket:
    """Reads one /private/ws/<listenKey> socket on a thread; ``events`` grows as frames arrive."""

    def __init__(self, exchange: SimExchange, listen_key: str | None = None) -> None:
        self.listen_key = listen_key or new_listen_key(exchange)
        self.ws = websocket.create_connection(f"{exchange.ws_url}/private/ws/{self.listen_key}", timeout=5)
        self.events: list[dict[str, Any]] = []
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while True:
                frame = self.ws.recv()
                if not frame:
                    break
                self.events.append(json.loads(frame))
        except (websocket.WebSocketException, OSError):
            pass
        finally:
            self.closed.set()

    def orders(self, client_id: str) -> list[dict[str, Any]]:
        """The ``o`` objects of ORDER_TRADE_UPDATE events for ``client_id``, in order."""
        return [e["o"] for e in list(self.events) if e.get("e") == "ORDER_TRADE_UPDATE" and e["o"]["c"] == client_id]

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e.get("e") == event_type]

    def close(self) -> None:
        self.ws.close()
        self._thread.join(2)


def wait_settled(seconds: float) -> None:
    """Let late requests land before counting (recvWindow plus settle window); bounded."""
    time.sleep(seconds)
