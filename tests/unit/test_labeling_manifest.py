"""The resume manifest of `labelgate label`: what counts as finished, duplicates sharing rows,
failures cleared by success, and merging shard manifests."""

from __future__ import annotations

from labelgate.client.labeling.manifest import Manifest

OBJECT = {"box": [0, 0, 4, 4], "score": 0.5, "rle": None}


def test_an_image_is_finished_when_every_prompt_has_a_result(tmp_path):
    with Manifest.in_dir(tmp_path) as manifest:
        manifest.put_image("a/1.png", "/data/a/1.png", "h1", 10, 111)
        manifest.put_image("b/1.png", "/data/b/1.png", "h1", 10, 222)  # same content, other folder
        manifest.put_image("c.png", "/data/c.png", "h2", 12, 333)
        assert manifest.missing("h1", ["p", "q"]) == ["p", "q"]
        manifest.put_results("h1", 8, 6, {"p": [OBJECT]})
        assert manifest.missing("h1", ["p", "q"]) == ["q"]
        assert list(manifest.finished(["p", "q"])) == []
        manifest.put_results("h1", 8, 6, {"q": []})
        finished = list(manifest.finished(["p", "q"]))
        assert [row[0] for row in finished] == ["a/1.png", "b/1.png"]  # both keys, labeled once
        assert finished[0][3:] == (8, 6, {"p": [OBJECT], "q": []})
        assert [row[0] for row in manifest.finished(["p"])] == ["a/1.png", "b/1.png"]
        assert manifest.counts() == {"images": 3, "contents": 1, "results": 2, "failures": 0}


def test_known_hash_only_for_an_unchanged_file(tmp_path):
    with Manifest.in_dir(tmp_path) as manifest:
        manifest.put_image("a.png", "/a.png", "h1", 10, 111)
        assert manifest.known_hash("a.png", 10, 111) == "h1"
        assert manifest.known_hash("a.png", 10, 112) is None and manifest.known_hash("a.png", 11, 111) is None


def test_success_clears_the_failures_of_every_key_with_that_content(tmp_path):
    with Manifest.in_dir(tmp_path) as manifest:
        manifest.put_image("a.png", "/a.png", "h1", 1, 1)
        manifest.record_failure("a.png", "/a.png", "UNAVAILABLE: gone")
        manifest.record_failure("z.png", "/z.png", "INVALID_ARGUMENT: not an image")
        manifest.put_results("h1", 2, 2, {"p": []})
        assert manifest.failures() == [("z.png", "/z.png", "INVALID_ARGUMENT: not an image")]


def test_merge_takes_the_union_and_survives_reopening(tmp_path):
    for shard, (key, digest) in enumerate([("a.png", "h1"), ("b.png", "h2")]):
        with Manifest.in_dir(tmp_path / f"s{shard}") as manifest:
            manifest.set_meta("models", {"sam2": "v1"})
            manifest.put_image(key, f"/{key}", digest, 1, 1)
            manifest.put_results(digest, 4, 4, {"p": [OBJECT]})
    with Manifest.in_dir(tmp_path / "all") as merged:
        for shard in ("s0", "s1", "s0"):  # merging one twice adds nothing
            merged.merge_from(tmp_path / shard / "manifest.sqlite")
        assert [row[0] for row in merged.finished(["p"])] == ["a.png", "b.png"]
        assert merged.meta("models") == {"sam2": "v1"}
    with Manifest.in_dir(tmp_path / "all") as reopened:
        assert reopened.counts()["results"] == 2
