"""The `edgetam` kind served by name next to the demo SAM 2, through gRPC against a real server: a click
answers with transformers' own EdgeTAM mask, and a repeat click on the image is a cache hit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference import decode_rle, encode, random_image, segment_request
from server_process import start_server

from labelgate.models.edgetam.demo import write_edgetam_demo_model
from labelgate.v1 import labelgate_pb2 as pb

IMAGE = random_image(5, 96, 128)
CLICK = (40.0, 30.0, False)  # integral pixels: exact in the proto's float32


@pytest.fixture(scope="module")
def edgetam_dir(tmp_path_factory):
    return write_edgetam_demo_model(tmp_path_factory.mktemp("edgetam") / "edgetam-demo", seed=3)


@pytest.fixture(scope="module")
def running(demo_weights, edgetam_dir, tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("edgetam-server"), demo_weights, "--model", f"edge=edgetam:{edgetam_dir}")
    yield server
    assert server.stop() == 0, server.log()


def _reference_mask(directory, image, x, y) -> np.ndarray:
    """One click through transformers alone (processor -> EdgeTamModel -> post_process_masks)."""
    from transformers import EdgeTamModel, Sam2Processor

    processor = Sam2Processor.from_pretrained(directory)
    model = EdgeTamModel.from_pretrained(directory).eval()
    inputs = processor(images=image, input_points=[[[[x, y]]]], input_labels=[[[1]]], return_tensors="pt")
    with torch.inference_mode():
        output = model(**inputs, multimask_output=False)
    return processor.post_process_masks(output.pred_masks, inputs["original_sizes"])[0][0, 0].numpy()


def _click(stub, image: pb.Image, model: str = "edge", click=CLICK):
    return stub.Segment(segment_request(image, [click], [], model=model), timeout=60)


def test_listed_with_its_kind_next_to_sam2(running):
    models = {m.name: m.kind for m in running.stub().ListModels(pb.ListModelsRequest(), timeout=10).models}
    assert models["edge"] == "edgetam" and models["sam2_demo"] == "sam2"


def test_a_click_answers_and_a_repeat_click_is_a_cache_hit(running, edgetam_dir):
    stub = running.stub()
    hits_before = running.metric("labelgate_cache_events_total", cache="features/edge", event="hits")
    first = _click(stub, pb.Image(data=encode(IMAGE)))
    assert not first.cache_hit
    np.testing.assert_array_equal(decode_rle(first.objects[0].masks[0]), _reference_mask(edgetam_dir, IMAGE, 40.0, 30.0))
    again = _click(stub, pb.Image(image_id=first.image_id), click=(80.0, 60.0, False))
    assert again.cache_hit
    np.testing.assert_array_equal(decode_rle(again.objects[0].masks[0]), _reference_mask(edgetam_dir, IMAGE, 80.0, 60.0))
    assert running.metric("labelgate_cache_events_total", cache="features/edge", event="hits") == hits_before + 1
    # SAM 2's features are its own: the same image is new to it.
    assert not _click(stub, pb.Image(image_id=first.image_id), model="sam2_demo").cache_hit
