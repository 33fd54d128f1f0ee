"""Shared fixtures. Benchmark data lives in ../shared/data beside the checkout and is never copied."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
_SCRIPTS = REPO_ROOT / "tests" / "agent" / "scripts.py"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real benchmark data folder; tests that need it are skipped with a reason when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"benchmark data folder {SHARED_DATA.name!r} beside the checkout is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def scripts():
    """The scripted module replies of tests/agent/scripts.py (test folders are not packages)."""
    spec = importlib.util.spec_from_file_location("lumos_test_scripts", _SCRIPTS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
