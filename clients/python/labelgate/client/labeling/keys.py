"""Deterministic keys of a labeling job: which shard and which split an image falls in (from its
dataset key), and what identifies the work already done for it (content hash + prompt key)."""

from __future__ import annotations

import hashlib
import json
import os

SHARD_INDEX_ENV = "JOB_COMPLETION_INDEX"  # set by Kubernetes in each pod of an Indexed Job


def unit_interval(key: str, salt: str) -> float:
    """A number in [0, 1) fixed by `key` (and `salt`, so that shards and splits are independent)."""
    digest = hashlib.blake2b(f"{salt}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def shard_of(key: str, count: int) -> int:
    return int(unit_interval(key, "shard") * count)


def split_of(key: str, val_fraction: float) -> str:
    return "val" if unit_interval(key, "split") < val_fraction else "train"


def parse_shard(text: str, environ=os.environ) -> tuple[int, int]:
    """"I/N" -> (I, N); "N" or "/N" -> (the Indexed Job's $JOB_COMPLETION_INDEX, N)."""
    index_text, _, count_text = text.rpartition("/")
    if not index_text:
        index_text = environ.get(SHARD_INDEX_ENV, "")
        if not index_text:
            raise ValueError(f"--shard {text!r}: give I/N, or set ${SHARD_INDEX_ENV} (a Kubernetes Indexed Job does)")
    try:
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected I/N with whole numbers, e.g. 0/4") from None
    if not 0 <= index < count:
        raise ValueError(f"--shard {text!r}: need 0 <= I < N")
    return index, count


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def prompt_key(request: dict) -> str:
    """The key of one prompt's raw result on an image: a hash of everything the server's answer
    depends on (prompt, call, thresholds, model names and weights versions)."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]
