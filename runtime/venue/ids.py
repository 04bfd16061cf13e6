"""Client order ids: the venue's idempotency key, validated before anything is sent.

DESIGN §3: every intent carries a deterministic client order id, reused on every
retry. An id the venue would refuse (-1100) is a programming error, so it is a
``ValueError`` raised here, naming the bad id, not a venue outcome.
"""

from __future__ import annotations

import re

CLIENT_ORDER_ID_PATTERN = re.compile(r"[.A-Za-z0-9:/_-]{1,36}")


def is_valid_client_order_id(client_order_id: object) -> bool:
    """True if the venue would accept this id as newClientOrderId / clientAlgoId."""
    return isinstance(client_order_id, str) and CLIENT_ORDER_ID_PATTERN.fullmatch(client_order_id) is not None


def validate_client_order_id(client_order_id: object) -> str:
    """Return the id unchanged, or raise ``ValueError`` naming it and the rule."""
    if not is_valid_client_order_id(client_order_id):
        raise ValueError(
            f"invalid client order id {client_order_id!r}: must match "
            f"{CLIENT_ORDER_ID_PATTERN.pattern} (1-36 chars of letters, digits, '.:/_-')"
        )
    return client_order_id  # type: ignore[return-value]
