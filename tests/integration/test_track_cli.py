"""`labelgate track` against a real server: the files it writes hold the masks the SDK streams."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from labelgate.cli.main import main
from labelgate.client import Client
from labelgate.client.track_commands import prompts_from_steps
from labelgate.client.tracking import ObjectPrompt
from video_clip import HEIGHT, WIDTH, disc_centre, moving_shapes, square_box, video_bytes

NUM_FRAMES = 5


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "shapes.mp4"
    path.write_bytes(video_bytes(moving_shapes(NUM_FRAMES)))
    return path


def csv(values) -> str:
    return ",".join(f"{v:g}" for v in values)


def run(server, *args: str) -> int:
    return main(["track", *args, "--server", server.address, "--no-progress"])


def test_two_objects_and_a_correction_give_masks_json_and_overlays_equal_to_the_sdk(server, clip_file, tmp_path):
    out = tmp_path / "tracked"
    later = (square_box(2)[0] + 8, 28.0)
    assert run(server, str(clip_file), "--object", "1", "--box", csv(square_box(0)),
               "--object", "2", "--point", csv(disc_centre(0)), "--frame", "2", "--object", "1", "--point", csv(later),
               "--max-frames", "4", "--out", str(out)) == 0
    prompts = [ObjectPrompt(1, box=square_box(0)), ObjectPrompt(2, points=[disc_centre(0)]),
               ObjectPrompt(1, frame=2, points=[later])]
    with Client(server.address) as client:
        expected = {frame.frame_index: frame for frame in client.track(clip_file, prompts, max_frames=4)}
    assert sorted(expected) == [0, 1, 2, 3]

    coco = json.loads((out / "annotations.json").read_text())
    assert coco["videos"] == [{"id": 1, "name": "shapes.mp4", "width": WIDTH, "height": HEIGHT, "length": NUM_FRAMES}]
    assert [(image["frame_index"], image["timestamp"]) for image in coco["images"]] == \
        [(index, expected[index].timestamp) for index in range(4)]
    frame_of = {image["id"]: image["frame_index"] for image in coco["images"]}
    found = {}
    for annotation in coco["annotations"]:
        rle = {"size": annotation["segmentation"]["size"], "counts": annotation["segmentation"]["counts"].encode()}
        found[frame_of[annotation["image_id"]], annotation["track_id"]] = mask_utils.decode(rle).astype(bool)
    visible = {(index, obj): mask.to_numpy() for index, frame in expected.items() for obj, mask in frame.masks.items()
               if mask.area}
    assert visible and sorted(found) == sorted(visible)
    for key, mask in visible.items():
        assert np.array_equal(found[key], mask), key
        on_disk = np.asarray(Image.open(out / "masks" / f"{key[0]:06d}_{key[1]}.png")) > 127
        assert np.array_equal(on_disk, mask), key
    assert sorted(path.name for path in (out / "masks").iterdir()) == \
        [f"{index:06d}_{obj}.png" for index in range(4) for obj in (1, 2)]

    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.size[0] >= WIDTH and sheet.getextrema() != ((255, 255), (255, 255), (255, 255))
    import av

    with av.open(str(out / "overlay.mp4")) as video:
        assert sum(1 for _ in video.decode(video=0)) == 4


def test_a_folder_of_frames_is_tracked_backward_from_its_start_frame(server, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for index, pixels in enumerate(moving_shapes(4)):
        Image.fromarray(pixels).save(frames / f"f{index:03d}.png")
    out = tmp_path / "tracked"
    assert run(server, str(frames), "--frame", "2", "--box", csv(square_box(2)), "--direction", "backward",
               "--out", str(out), "--no-overlay") == 0
    coco = json.loads((out / "annotations.json").read_text())
    assert [(image["frame_index"], image["file_name"]) for image in coco["images"]] == \
        [(0, "f000.png"), (1, "f001.png"), (2, "f002.png")]
    assert {annotation["track_id"] for annotation in coco["annotations"]} == {1}
    assert not (out / "contact_sheet.png").exists()


def test_mistakes_are_explained_before_anything_is_tracked(server, clip_file, tmp_path, capsys):
    assert run(server, str(clip_file), "--out", str(tmp_path)) == 2
    assert "--box" in capsys.readouterr().err
    assert run(server, str(clip_file), "--frame", str(NUM_FRAMES), "--box", "1,1,9,9", "--out", str(tmp_path)) == 2
    assert "past the end" in capsys.readouterr().err
    assert run(server, str(tmp_path / "missing.mp4"), "--box", "1,1,9,9", "--out", str(tmp_path)) == 2
    assert "no such video file" in capsys.readouterr().err


def test_prompts_are_read_in_order_each_object_and_frame_holding_until_given_again():
    steps = [("box", (1, 2, 3, 4)), ("object", 5), ("point", (1, 1, False)), ("frame", 3), ("point", (2, 2, True)),
             ("object", 6), ("box", (5, 6, 7, 8)), ("point", (6, 6, False))]
    assert prompts_from_steps(steps) == [
        ObjectPrompt(1, frame=0, box=(1, 2, 3, 4)),
        ObjectPrompt(5, frame=0, points=((1, 1, False),)),
        ObjectPrompt(5, frame=3, points=((2, 2, True),)),
        ObjectPrompt(6, frame=3, points=((6, 6, False),), box=(5, 6, 7, 8)),
    ]
    with pytest.raises(ValueError, match="two boxes"):
        prompts_from_steps([("box", (1, 2, 3, 4)), ("box", (1, 2, 3, 4))])
    with pytest.raises(ValueError, match="nothing to track"):
        prompts_from_steps([("object", 2)])
