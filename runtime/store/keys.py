"""The key schema of DESIGN §3, every key under `<namespace>:`.

Hash tags. Redis Cluster places a key by the part between the first `{` and
the next `}`. DESIGN writes keys as `runtime:{id}`; we keep those braces
literally, so they *are* hash tags:

- every key of one strategy (`strategy:{s1}`, `runtime:{s1}`,
  `lock_state:{s1}`, `lease:{s1}`) lands in the slot of `s1`, so a script that
  touches a strategy's runtime and its lock/lease stays single-slot;
- every key of one symbol (`symbol:{BTCUSDT}:strategies`, `price:{BTCUSDT}`,
  `snapshot:{BTCUSDT}`) lands in the slot of `BTCUSDT`;
- the order queue, its stop-priority twin, the journal and the journal's
  indexes share the tag `{orders}`: one XREADGROUP blocks on both queue streams
  at once (stop entries are never stuck behind a block on the normal stream),
  and one Lua script appends to the journal and updates its indexes
  atomically. This is why the queue is `queue:{orders}` rather than the
  `queue:orders` of DESIGN's table (same for the journal).
- `generation` is one global INCR counter (single-key commands only).

Ids and symbols must be non-empty and free of braces and whitespace, so a tag
can never be broken or emptied by a hostile id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}")


def _checked(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(
            f"invalid {kind} {value!r}: expected 1-128 characters of [A-Za-z0-9._:/-], "
            "starting with a letter or digit"
        )
    return value


@dataclass(frozen=True, slots=True)
class Keys:
    """Builds every key the store uses; one instance per namespace."""

    namespace: str

    def __post_init__(self) -> None:
        _checked("namespace", self.namespace)

    def _key(self, rest: str) -> str:
        return f"{self.namespace}:{rest}"

    # -- per strategy (tag = strategy id) --------------------------------
    def strategy(self, strategy_id: str) -> str:
        return self._key(f"strategy:{{{_checked('strategy id', strategy_id)}}}")

    def runtime(self, strategy_id: str) -> str:
        return self._key(f"runtime:{{{_checked('strategy id', strategy_id)}}}")

    def lock_state(self, strategy_id: str) -> str:
        return self._key(f"lock_state:{{{_checked('strategy id', strategy_id)}}}")

    def lease(self, strategy_id: str) -> str:
        return self._key(f"lease:{{{_checked('strategy id', strategy_id)}}}")

    # -- per symbol (tag = symbol) ----------------------------------------
    def symbol_strategies(self, symbol: str) -> str:
        return self._key(f"symbol:{{{_checked('symbol', symbol)}}}:strategies")

    def price(self, symbol: str) -> str:
        return self._key(f"price:{{{_checked('symbol', symbol)}}}")

    def snapshot(self, symbol: str) -> str:
        return self._key(f"snapshot:{{{_checked('symbol', symbol)}}}")

    # -- global ---------------------------------------------------------
    @property
    def generation(self) -> str:
        return self._key("generation")

    # -- orders (tag = orders) --------------------------------------------
    @property
    def queue_orders(self) -> str:
        """Normal-priority order queue (entries)."""
        return self._key("queue:{orders}")

    @property
    def queue_stop(self) -> str:
        """Stop-loss / risk-reducing exit queue, always consumed first."""
        return self._key("queue:{orders}:stop")

    @property
    def queue_dead(self) -> str:
        """Dead letters: queue entries that failed their schema check."""
        return self._key("queue:{orders}:dead")

    @property
    def journal_orders(self) -> str:
        """The append-only journal stream of order intents and outcomes."""
        return self._key("journal:{orders}")

    @property
    def journal_open(self) -> str:
        """Hash client_order_id -> entry id of its intent, until a final outcome."""
        return self._key("journal:{orders}:open")

    @property
    def journal_records(self) -> str:
        """Hash record_id -> journal entry id: makes journal writes idempotent."""
        return self._key("journal:{orders}:records")
