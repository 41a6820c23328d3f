"""The SDK (Client, AsyncClient, AffinityClient) and `labelgate segment` on a concept model and with
refinement, against a real server serving a tiny random-weight SAM 3 ("sam3") next to the demo
pair: each answers exactly what the generated stubs get for the same request fields."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pycocotools.mask
import pytest
from PIL import Image
from reference import decode_rle, encode, random_image
from server_process import start_server

from labelgate.client import AffinityClient, AsyncClient, Client
from labelgate.models.sam3.demo import write_sam3_demo_model
from labelgate.v1 import labelgate_pb2 as pb

H, W = 72, 96
IMAGE = random_image(7, H, W)
PNG = encode(IMAGE)
THRESHOLD = 0.001  # random weights score low: keep every instance the model proposes
EXEMPLARS = [(10, 12, 60, 50), (70, 40, 90, 70, "neg")]
PB_EXEMPLARS = [pb.Exemplar(box=pb.Box(x_min=10, y_min=12, x_max=60, y_max=50)),
                pb.Exemplar(box=pb.Box(x_min=70, y_min=40, x_max=90, y_max=70), negative=True)]


@pytest.fixture(scope="module")
def server(demo_weights, tmp_path_factory):
    sam3_dir = write_sam3_demo_model(tmp_path_factory.mktemp("sam3") / "sam3-demo")
    running = start_server(tmp_path_factory.mktemp("concepts-server"), demo_weights, "--model", f"sam3=sam3:{sam3_dir}")
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture(scope="module")
def stub(server):
    return server.stub()


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("image") / "image.png"
    path.write_bytes(PNG)
    return path


def stub_objects(stub, **fields) -> list[tuple]:
    """(label, score, box, mask) of each object the stubs get for `fields`."""
    response = stub.Segment(pb.SegmentRequest(image=pb.Image(data=PNG), **fields), timeout=60)
    return [(obj.label, obj.detection_score,
             (obj.prompt_box.x_min, obj.prompt_box.y_min, obj.prompt_box.x_max, obj.prompt_box.y_max),
             decode_rle(obj.masks[0])) for obj in response.objects]


def sdk_objects(result) -> list[tuple]:
    return [(obj.label, obj.detection_score, obj.prompt_box, obj.best.to_numpy()) for obj in result.objects]


def assert_same(got: list[tuple], expected: list[tuple]) -> None:
    assert len(got) == len(expected) > 0
    for (label, score, box, mask), (e_label, e_score, e_box, e_mask) in zip(got, expected):
        # Exact: on a CPU each phrase runs alone (sam3 does not batch there), on the cached features.
        assert (label, score, tuple(box)) == (e_label, e_score, e_box)
        np.testing.assert_array_equal(mask, e_mask)


TEXT = dict(text="cat . dog .", model="sam3", box_threshold=THRESHOLD)


def test_sdk_text_nms_and_instance_cap(server, stub):
    expected_all = stub_objects(stub, **TEXT, nms_iou_threshold=1.0)
    assert len(expected_all) >= 2  # so that the cap below removes some
    with Client(server.address, timeout=60) as client:
        assert_same(sdk_objects(client.segment(PNG, **TEXT, nms_iou_threshold=1.0)), expected_all)
        capped = client.segment(PNG, **TEXT, nms_iou_threshold=1.0, max_instances=1)
        assert_same(sdk_objects(capped), stub_objects(stub, **TEXT, nms_iou_threshold=1.0, max_instances=1))
        assert len(capped.objects) == 1
        assert_same(sdk_objects(client.segment(PNG, **TEXT, nms_iou_threshold=0.05)),
                    stub_objects(stub, **TEXT, nms_iou_threshold=0.05))


async def test_async_client_exemplars(server, stub):
    async with AsyncClient(server.address, timeout=60) as client:
        result = await client.segment(PNG, exemplars=EXEMPLARS, model="sam3", box_threshold=THRESHOLD)
    assert_same(sdk_objects(result), stub_objects(stub, exemplars=PB_EXEMPLARS, model="sam3", box_threshold=THRESHOLD))


def test_affinity_client_exemplars_with_text_and_refine(server, stub):
    with AffinityClient([server.address], timeout=60) as client:
        result = client.segment(PNG, text="car", exemplars=EXEMPLARS, model="sam3", box_threshold=THRESHOLD)
        assert_same(sdk_objects(result), stub_objects(stub, text="car", exemplars=PB_EXEMPLARS, model="sam3",
                                                      box_threshold=THRESHOLD))
        first = client.segment(PNG, points=[(40, 30)])
        refined = client.segment(PNG, points=[(40, 30), (5, 5, True)], refine=first.objects[0].best)
    expected = stub.Segment(pb.SegmentRequest(image=pb.Image(data=PNG), points=[pb.Point(x=40, y=30),
                            pb.Point(x=5, y=5, negative=True)], refine_mask_id=first.objects[0].best.mask_id), timeout=60)
    np.testing.assert_array_equal(refined.objects[0].best.to_numpy(), decode_rle(expected.objects[0].masks[0]))


# --- CLI ---------------------------------------------------------------------------------------


def cli(server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labelgate.cli", "segment", *args, "--server", server.address],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)


def cli_objects(done: subprocess.CompletedProcess) -> list[tuple]:
    assert done.returncode == 0, done.stderr
    objects = json.loads(done.stdout)["objects"]
    return [(obj["label"], obj["masks"][0]["rle"]) for obj in objects]


def rles(objects: list[tuple]) -> list[tuple]:
    """(label, the mask as the CLI prints it: compressed COCO RLE) of each object."""
    def rle(mask):
        encoded = pycocotools.mask.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": [int(n) for n in encoded["size"]], "counts": encoded["counts"].decode()}

    return [(label, rle(mask)) for label, _, _, mask in objects]


def test_cli_concept_flags(server, stub, image_file, tmp_path):
    done = cli(server, str(image_file), "--model", "sam3", "--text", "cat . dog .", "--box-threshold", str(THRESHOLD),
               "--nms-iou", "1", "--max-instances", "2", "--json")
    assert cli_objects(done) == rles(stub_objects(stub, **TEXT, nms_iou_threshold=1.0, max_instances=2))
    done = cli(server, str(image_file), "--model", "sam3", "--exemplar", "10,12,60,50", "--exemplar", "70,40,90,70,neg",
               "--box-threshold", str(THRESHOLD), "--json", "--out", str(tmp_path / "overlay.png"))
    assert cli_objects(done) == rles(stub_objects(stub, exemplars=PB_EXEMPLARS, model="sam3", box_threshold=THRESHOLD))
    with Image.open(tmp_path / "overlay.png") as overlay:
        assert overlay.size == (W, H)


def test_cli_prints_mask_ids_and_refines_them(server, stub, image_file):
    first = cli(server, str(image_file), "--point", "40,30")
    assert first.returncode == 0, first.stderr
    [mask_id] = re.findall(r"mask_id (mask_\w+)", first.stdout)
    refined = cli(server, str(image_file), "--point", "40,30", "--point", "5,5,neg", "--refine", mask_id, "--json")
    assert refined.returncode == 0, refined.stderr
    expected = stub.Segment(pb.SegmentRequest(image=pb.Image(data=PNG), points=[pb.Point(x=40, y=30),
                            pb.Point(x=5, y=5, negative=True)], refine_mask_id=mask_id), timeout=60)
    [obj] = json.loads(refined.stdout)["objects"]
    assert obj["masks"][0]["rle"]["counts"] == expected.objects[0].masks[0].rle.counts
    assert obj["masks"][0]["mask_id"].startswith("mask_")  # refinable again
    unknown = cli(server, str(image_file), "--point", "40,30", "--refine", "mask_" + "0" * 32)
    assert unknown.returncode == 1 and unknown.stderr.startswith("error: NOT_FOUND: ") and "Traceback" not in unknown.stderr
