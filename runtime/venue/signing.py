"""HMAC-SHA256 request signing for the Binance USD-M futures protocol.

The venue signs ``totalParams`` (query string, then request body) with the API
secret; the signature travels as the last ``signature`` parameter. The exact
bytes signed are the exact bytes sent, so encoding lives here, next to signing:
a connector that encoded parameters one way and signed them another would be
answered -1022 only in production.

This module never logs and never stores a secret.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from decimal import Decimal
from urllib.parse import urlencode

ParamValue = str | int | float | Decimal | bool
Params = Mapping[str, ParamValue] | Iterable[tuple[str, ParamValue]]


def sign(secret: str, payload: str) -> str:
    """Hex HMAC-SHA256 of ``payload`` keyed by ``secret`` (DESIGN §4 test vector)."""
    return hmac.new(secret.encode("utf-8"), payload.encode("utf-8"), hashlib.sha256).hexdigest()


def verify(secret: str, payload: str, signature: str) -> bool:
    """Constant-time check of ``signature`` over ``payload`` (used by the simulated exchange)."""
    return hmac.compare_digest(sign(secret, payload), signature.lower())


def format_value(value: ParamValue) -> str:
    """Render one parameter the way the venue expects.

    Booleans are ``true``/``false``; floats and Decimals never use exponent
    notation (``1e-05`` is a -1111 precision reject waiting to happen).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        value = Decimal(repr(value))
    if isinstance(value, Decimal):
        text = format(value, "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text or "0"
    return str(value)


def encode_params(params: Params) -> str:
    """URL-encode parameters in the given order (order matters for the signature)."""
    items = params.items() if isinstance(params, Mapping) else params
    return urlencode([(key, format_value(value)) for key, value in items])


def signed_query(secret: str, params: Params) -> str:
    """Encoded query with ``&signature=…`` appended over exactly that encoding."""
    query = encode_params(params)
    return f"{query}&signature={sign(secret, query)}"
