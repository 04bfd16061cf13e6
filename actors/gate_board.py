"""GateBoard: where the degradation actor publishes the current gate for readers.

Degradation is the one writer ("the one place that says may we trade?"). The execution
engine reads the published, immutable `Gate` on every order without a message hop.
Until degradation publishes its first gate, the board is closed for entries.
"""

from __future__ import annotations

from actors.core.degradation import Gate, Mode


def _closed_until_ready() -> Gate:
    return Gate(Mode.NORMAL, False, frozenset(), 0.5, ("starting: degradation not yet running",), {})


class GateBoard:
    def __init__(self) -> None:
        self._gate = _closed_until_ready()

    def publish(self, gate: Gate) -> None:
        self._gate = gate  # a reference swap: atomic for readers

    def __call__(self) -> Gate:
        return self._gate
