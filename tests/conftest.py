"""Shared fixtures. The real-data tier (``@pytest.mark.realdata``) reads ``$MEDSSL_DATA_DIR`` (default
``../shared/data``): skipped where that folder is absent, but a failure under CI (``CI=true``), which has it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medssl_monai.utils import shared_data_dir

REPO = Path(__file__).resolve().parents[1]
BUNDLE_3DSIAM = REPO / "bundles" / "3dsiam"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = shared_data_dir()
    if not root.is_dir():
        message = f"real data not found at {root} (set MEDSSL_DATA_DIR)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return root
