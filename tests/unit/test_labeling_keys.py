"""Keys of `labelgate label`: shards partition a dataset, the train/val split is a fixed function of
each image's key, and a prompt's result key changes exactly when the server's answer could."""

from __future__ import annotations

import pytest
from labelgate.client.labeling.keys import parse_shard, shard_of, split_of
from labelgate.client.labeling.ontology import parse_ontology
from labelgate.client.labeling.plan import ModelChoice, prompt_tasks

KEYS = [f"folder{i % 7}/img_{i:05d}.jpg" for i in range(3000)]
MODELS = ModelChoice("sam2", "gd", False, {"sam2": "v1", "gd": "v2"})


def test_shards_partition_the_keys_evenly():
    owners = [shard_of(key, 4) for key in KEYS]
    assert set(owners) == {0, 1, 2, 3}
    assert all(0.2 * len(KEYS) < owners.count(i) < 0.3 * len(KEYS) for i in range(4))
    assert [shard_of(key, 4) for key in KEYS] == owners  # deterministic


def test_split_is_a_function_of_the_key_and_the_fraction():
    val = [key for key in KEYS if split_of(key, 0.2) == "val"]
    assert 0.15 * len(KEYS) < len(val) < 0.25 * len(KEYS)
    assert {split_of(key, 0.0) for key in KEYS} == {"train"} and {split_of(key, 1.0) for key in KEYS} == {"val"}
    assert set(val) <= {key for key in KEYS if split_of(key, 0.3) == "val"}  # growing the fraction only adds to val
    owners = [shard_of(key, 2) for key in val]
    assert 0 < owners.count(0) < len(val)  # the split does not follow the shards


def test_parse_shard(monkeypatch):
    assert parse_shard("1/4") == (1, 4)
    assert parse_shard("4", {"JOB_COMPLETION_INDEX": "3"}) == (3, 4)
    for bad in ("4/4", "-1/2", "a/b", "2"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad, {})


def _keys(data: dict, models: ModelChoice = MODELS) -> dict:
    return {pair: task.key for pair, task in prompt_tasks(parse_ontology(data), models).items()}


def test_prompt_keys_change_with_what_the_server_answer_depends_on():
    base = {"classes": {"car": "a car", "dog": "a dog"}}
    keys = _keys(base)
    assert len(set(keys.values())) == 2
    # renaming a class, min area, NMS or the tolerance change nothing the server computes
    same = _keys({"nms": {"iou": 0.9}, "classes": {"auto": {"prompts": "a car", "min_area": 9, "polygon_tolerance": 3},
                                                   "dog": "a dog"}})
    assert set(same.values()) == set(keys.values())
    changed = _keys({"classes": {"car": {"prompts": "a car", "box_threshold": 0.2}, "dog": "a dog"}})
    assert changed[("dog", "a dog")] == keys[("dog", "a dog")] and changed[("car", "a car")] != keys[("car", "a car")]
    boxes = _keys({"classes": {"car": {"prompts": "a car", "output": "boxes"}, "dog": "a dog"}})
    assert boxes[("car", "a car")] != keys[("car", "a car")]  # a Detect call instead of a Segment
    newer = _keys(base, ModelChoice("sam2", "gd", False, {"sam2": "v1", "gd": "v3"}))
    assert set(newer.values()).isdisjoint(keys.values())  # new detector weights: everything again
