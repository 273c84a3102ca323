"""Helpers for pilot tests: wait for a condition by letting the app run, never by fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot


async def until(
    pilot: Pilot[Any], predicate: Callable[[], object], timeout: float = 5.0, what: str = ""
) -> None:
    """Let the app process messages until `predicate()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what or predicate}"
        await pilot.pause(0.02)
