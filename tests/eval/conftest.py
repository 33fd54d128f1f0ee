"""The scripted replies of tests/agent/scripts.py as a fixture (test folders are not packages)."""

import importlib.util
from pathlib import Path

import pytest

_SCRIPTS = Path(__file__).resolve().parent.parent / "agent" / "scripts.py"


@pytest.fixture(scope="session")
def scripts():
    spec = importlib.util.spec_from_file_location("lumos_test_scripts", _SCRIPTS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
