"""Shared test setup."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_state_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own user state directory, so the real run index is never touched."""
    state = tmp_path_factory.mktemp("expd-state")
    monkeypatch.setenv("EXPD_STATE_DIR", str(state))
    return state
