"""Dataset sources of `labelgate label`: keys are paths relative to the dataset root (so same-named
files in different folders stay apart), in a fixed order, from a folder, a list file or a COCO JSON."""

from __future__ import annotations

import json

import pytest
from labelgate.client.labeling.sources import iter_source


@pytest.fixture
def root(tmp_path):
    for name in ("b/1.jpg", "a/1.jpg", "a/deep/2.PNG", "c.webp", "a/notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def test_folder_keys_are_relative_sorted_and_images_only(root):
    assert [item.key for item in iter_source(root)] == ["c.webp", "a/1.jpg", "a/deep/2.PNG", "b/1.jpg"]
    assert [item.key for item in iter_source(root, glob="a/*")] == ["a/1.jpg", "a/deep/2.PNG"]
    assert all(item.path.is_absolute() and item.path.is_file() for item in iter_source(root))


def test_list_file_and_coco_json_resolve_against_their_folder_or_the_image_root(root, tmp_path_factory):
    listing = root / "list.txt"
    listing.write_text("# the ones to label\nb/1.jpg\n\na/1.jpg\n")
    assert [(i.key, i.path) for i in iter_source(listing)] == [("b/1.jpg", root / "b/1.jpg"), ("a/1.jpg", root / "a/1.jpg")]
    elsewhere = tmp_path_factory.mktemp("meta") / "instances.json"
    elsewhere.write_text(json.dumps({"images": [{"id": 1, "file_name": "a/deep/2.PNG"}]}))
    [item] = iter_source(elsewhere, image_root=root)
    assert item.key == "a/deep/2.PNG" and item.path == root / "a/deep/2.PNG"


@pytest.mark.parametrize("content, message", [("https://x/1.jpg\n", "local paths"), ])
def test_urls_are_refused_with_a_way_out(root, content, message):
    listing = root / "urls.txt"
    listing.write_text(content)
    with pytest.raises(ValueError, match=message):
        list(iter_source(listing))


def test_a_missing_source_is_named(tmp_path):
    with pytest.raises(ValueError, match="no such folder"):
        list(iter_source(tmp_path / "nope"))
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="COCO JSON"):
        list(iter_source(bad))
