"""Shared pieces of the ops tests: a status document shaped like DESIGN §7, and log capture."""
from __future__ import annotations

import logging as std_logging
import sys
from typing import Any

import pytest
from loguru import logger

from runtime.logging import add_json_sink

from .samples import healthy_status


@pytest.fixture
def status() -> dict[str, Any]:
    return healthy_status()


@pytest.fixture
def captured_logs():
    """Every JSON log line written while the test runs (loguru sinks restored afterwards)."""
    lines: list[str] = []
    handler_id = add_json_sink(lines.append, "DEBUG")
    yield lines
    try:
        logger.remove(handler_id)
    except ValueError:
        pass


@pytest.fixture
def restore_logging():
    """For tests that call setup_logging(): put loguru and stdlib logging back afterwards."""
    yield
    logger.remove()
    logger.add(sys.stderr)
    root = std_logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.setLevel(std_logging.WARNING)
