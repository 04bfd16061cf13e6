"""Decoding of raw Redis replies, each failure named by key and field.

The store's clients run with `decode_responses=False`, so every value arrives
as bytes; these helpers are the only place that turns bytes into Python values,
and they never let a UnicodeDecodeError, JSONDecodeError or RecursionError out:
a bad value always becomes `CorruptState(key, field, problem)`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from runtime.store.errors import CorruptState

_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


def show(value: object, limit: int = 60) -> str:
    """A short repr of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def text(value: object, key: str, field: str) -> str:
    """bytes/str -> str, or CorruptState if it is not UTF-8."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptState(key, field, f"not UTF-8: {show(bytes(value))}") from None
    raise CorruptState(key, field, f"expected a string, found {type(value).__name__}")


def decode_mapping(raw: Any, key: str) -> dict[str, str]:
    """A hash or stream entry as returned by redis-py -> {str: str}."""
    if not isinstance(raw, dict):
        raise CorruptState(key, "type", f"expected a mapping, found {type(raw).__name__}")
    out: dict[str, str] = {}
    for k, v in raw.items():
        name = text(k, key, show(k))
        out[name] = text(v, key, name)
    return out


def nonnegative_float(value: str, key: str, field: str) -> float:
    """A decimal string -> finite float >= 0."""
    if not _DECIMAL.fullmatch(value):
        raise CorruptState(key, field, f"not a non-negative decimal number: {show(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise CorruptState(key, field, f"not a finite number: {show(value)}")
    return number


def json_object(value: str, key: str, field: str) -> dict[str, Any]:
    """A JSON text that must hold an object."""
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError) as exc:
        raise CorruptState(key, field, f"not valid JSON ({exc}): {show(value)}") from None
    if not isinstance(parsed, dict):
        raise CorruptState(key, field, f"expected a JSON object, found {type(parsed).__name__}")
    return parsed


def dump_json(value: Any) -> str:
    """Canonical JSON for values written to Redis; refuses NaN/Infinity."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
