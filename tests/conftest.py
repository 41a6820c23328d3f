"""Session-wide fixtures: small random-weight checkpoints in the official formats, built once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def demo_weights(tmp_path_factory) -> Path:
    """A `labelgate weights demo` directory: SAM 2 `{'model': state_dict}` .pt + Grounding DINO save_pretrained."""
    from labelgate.models.weights_cli import ensure_demo_weights

    directory = tmp_path_factory.mktemp("weights") / "demo"
    ensure_demo_weights(directory)
    return directory
