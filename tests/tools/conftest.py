import pytest

from lumos.tools.maths import maths_toolbox


@pytest.fixture(scope="module")
def maths():
    """One maths toolbox (and its sympy worker) per test module."""
    with maths_toolbox(timeout=1.0) as toolbox:
        yield toolbox
