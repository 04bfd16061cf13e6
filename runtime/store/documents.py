"""JSON documents: `strategy:{id}` definitions, `snapshot:{S}` state-builder snapshots,
and the `symbol:{S}:strategies` index.

A document is stored as a hash {doc: <JSON object>, ts: <epoch seconds>}; loads
are schema-checked and name the key and field that was wrong.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from runtime.store._codec import decode_mapping, dump_json, json_object, nonnegative_float, text
from runtime.store.errors import CorruptState, translated
from runtime.store.keys import Keys

_FIELDS = ("doc", "ts")


@dataclass(frozen=True, slots=True)
class Document:
    key: str
    data: dict[str, Any]
    ts: float  # epoch seconds when it was written


class Documents:
    def __init__(self, client: redis.Redis, keys: Keys, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._keys = keys
        self._clock = clock

    # -- generic ----------------------------------------------------------
    def put(self, key: str, data: Mapping[str, Any], ts: float | None = None) -> None:
        try:
            body = dump_json(dict(data))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"document for {key} is not JSON-serialisable: {exc}") from exc
        with translated("put_document", key):
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(key)
            pipe.hset(key, mapping={"doc": body, "ts": repr(float(self._clock() if ts is None else ts))})
            pipe.execute()

    def get(self, key: str) -> Document | None:
        with translated("load_document", key):
            raw = self._client.hgetall(key)
        if not raw:
            return None
        values = decode_mapping(raw, key)
        for name in values:
            if name not in _FIELDS:
                raise CorruptState(key, name, "unexpected field")
        for name in _FIELDS:
            if name not in values:
                raise CorruptState(key, name, "missing")
        return Document(key, json_object(values["doc"], key, "doc"), nonnegative_float(values["ts"], key, "ts"))

    # -- strategies ---------------------------------------------------------
    def put_strategy(self, strategy_id: str, definition: Mapping[str, Any]) -> None:
        """Store a definition; index it under its `symbol` when it has one."""
        self.put(self._keys.strategy(strategy_id), definition)
        symbol = definition.get("symbol")
        if isinstance(symbol, str):
            self.index_symbol(symbol, strategy_id)

    def put_strategies(self, definitions: Mapping[str, Mapping[str, Any]], ts: float | None = None) -> None:
        """`put_strategy` for many, in one MULTI/EXEC round trip (each document replaced whole, as
        `put` does). A WRONGTYPE on any key fails the call (redis.ResponseError); the caller then
        puts them one by one, which repairs the key."""
        stamp = repr(float(self._clock() if ts is None else ts))
        pipe = self._client.pipeline(transaction=True)
        for strategy_id, definition in definitions.items():
            key = self._keys.strategy(strategy_id)
            try:
                body = dump_json(dict(definition))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"document for {key} is not JSON-serialisable: {exc}") from exc
            pipe.delete(key)
            pipe.hset(key, mapping={"doc": body, "ts": stamp})
            symbol = definition.get("symbol")
            if isinstance(symbol, str):
                pipe.sadd(self._keys.symbol_strategies(symbol), strategy_id)
        with translated("put_strategies", None):
            pipe.execute()

    def load_strategy(self, strategy_id: str) -> dict[str, Any] | None:
        document = self.get(self._keys.strategy(strategy_id))
        return None if document is None else document.data

    def index_symbol(self, symbol: str, strategy_id: str) -> None:
        key = self._keys.symbol_strategies(symbol)
        self._keys.strategy(strategy_id)  # validates the id
        with translated("index_symbol", key):
            self._client.sadd(key, strategy_id)

    def unindex_symbol(self, symbol: str, strategy_id: str) -> None:
        key = self._keys.symbol_strategies(symbol)
        with translated("unindex_symbol", key):
            self._client.srem(key, strategy_id)

    def strategies_for_symbol(self, symbol: str) -> frozenset[str]:
        key = self._keys.symbol_strategies(symbol)
        with translated("strategies_for_symbol", key):
            members = self._client.smembers(key)
        return frozenset(text(m, key, "member") for m in members)

    # -- snapshots ----------------------------------------------------------
    def put_snapshot(self, symbol: str, data: Mapping[str, Any], ts: float | None = None) -> None:
        self.put(self._keys.snapshot(symbol), data, ts)

    def load_snapshot(self, symbol: str) -> Document | None:
        return self.get(self._keys.snapshot(symbol))
