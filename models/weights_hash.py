"""A short, stable version string for a set of weight files: part of every cache key, so that
features computed with other weights are never reused."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

_CHUNK = 8 * 1024 * 1024


def weights_version(files: Iterable[Path], extra: Iterable[str] = ()) -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(f) for f in files):
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    for item in extra:
        digest.update(item.encode())
    return digest.hexdigest()[:12]


def weight_files(directory: Path) -> list[Path]:
    """The files of a transformers `save_pretrained` directory that decide its outputs."""
    files = sorted(directory.glob("*.safetensors")) + sorted(directory.glob("*.bin"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors or *.bin weights in {directory}")
    return sorted(files + [directory / "config.json"])


def pretrained_version(directory: Path) -> str:
    """`weights_version` of a transformers `save_pretrained` directory."""
    return weights_version(weight_files(directory))
