"""Shared fixtures: one tiny synthetic corpus per test session (seconds to make)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

# Ray reads RAY_AUTH_MODE once, at import; `import tune` sets it, but a test module may import ray first
os.environ.setdefault("RAY_AUTH_MODE", "token")
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")

SHARED = Path(__file__).resolve().parents[2] / "shared"
if not SHARED.is_dir():  # CI clones the project with shared/ beside it
    SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    from slr.corpus.synthetic import generate
    return generate("tiny", tmp_path_factory.mktemp("corpus") / "tiny", seed=0)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = SHARED / "data"
    assert path.is_dir(), f"the shared data folder is expected at {path}"
    return path


def pytest_collection_modifyitems(config, items):  # noqa: ANN001
    """Every test under tests/tune/ is in the `ray` group (scripts/test.sh runs the `ray` tests, split into the
    `paced` ones and the others, beside the rest: three pytest processes)."""
    for item in items:
        if item.nodeid.startswith("tests/tune/"):
            item.add_marker(pytest.mark.ray)
