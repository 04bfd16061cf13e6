from __future__ import annotations

from typing import Any, Callable, Iterator

import pykka
import pytest

from supervision import Supervisor


@pytest.fixture
def start_sup() -> Iterator[Callable[..., Any]]:
    """Start a top-level supervisor and return its proxy; stopped after the test."""
    started: list[pykka.ActorRef[Any]] = []

    def _start(**options: Any) -> Any:
        ref = Supervisor.start(**options)
        started.append(ref)
        return ref.proxy()

    yield _start
    for ref in reversed(started):
        if ref.is_alive():
            try:
                ref.stop(timeout=10)
            except (pykka.ActorDeadError, pykka.Timeout):
                pass
