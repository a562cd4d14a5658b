"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import jax
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    path = SHARED / "fixtures"
    if not path.is_dir():
        pytest.skip(f"reference fixtures not found at {path} (shared/ must lie beside the checkout)")
    return path
