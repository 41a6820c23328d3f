"""`labelgate export onnx` graphs in ONNX Runtime against PyTorch on the random-weight demo models of
the real architectures (within tests/tolerances.py's bound for two fp32 evaluations in other kernels),
on inputs other than the ones the graphs were traced with (other batch sizes, point counts and captions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agreement import Proposals, box_coordinate_tolerance, match_queries, sam2_score_tolerance
from labelgate.models.backend import SamPrompt
from labelgate.models.demo import SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES
from labelgate.models.export.onnx import run_onnx
from labelgate.models.sam2.prompts import prompt_tokens
from labelgate.models.demo import demo_paths

from tolerances import GDINO_DEMO_DEPTH, SAM2_DEMO_DECODER_DEPTH, SAM2_DEMO_ENCODER_DEPTH, reordering_tolerance


@pytest.fixture(scope="module")
def sam2(demo_weights):
    from labelgate.models.sam2.torch_backend import Sam2TorchBackend

    checkpoint, _ = demo_paths(demo_weights)
    return Sam2TorchBackend.from_checkpoint(SAM2_DEMO_CONFIG, checkpoint, "cpu", SAM2_DEMO_OVERRIDES)


def _image(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _assert_close(got: np.ndarray, expected, depth: float) -> None:
    """ONNX Runtime and PyTorch run other kernels: equal within the reordering bound of `depth`."""
    expected = np.asarray(expected)
    assert got.shape == expected.shape
    tolerance = reordering_tolerance(float(np.abs(expected).max()), depth)
    assert float(np.abs(got - expected).max()) <= tolerance


@pytest.mark.fidelity
def test_encoder_gives_the_torch_backend_features(sam2, demo_onnx):
    images = [_image(1, 240, 320), _image(2, 300, 200), _image(3, 256, 256)]
    expected = sam2.encode(images)
    batch = np.stack([sam2.transforms(image).numpy() for image in images])

    got = run_onnx(demo_onnx / "sam2_image_encoder.onnx", {"image": batch})

    for row, features in enumerate(expected):
        _assert_close(got["image_embed"][row], features.image_embed, SAM2_DEMO_ENCODER_DEPTH)
        _assert_close(got["high_res_feats_0"][row], features.high_res_feats[0], SAM2_DEMO_ENCODER_DEPTH)
        _assert_close(got["high_res_feats_1"][row], features.high_res_feats[1], SAM2_DEMO_ENCODER_DEPTH)


PROMPTS = {
    "one click": ([(120, 90)], [1], []),
    "clicks with a negative": ([(40, 50), (200, 160), (100, 30)], [1, 0, 1], []),
    "one box": ([], [], [(20, 30, 250, 200)]),
    "three boxes": ([], [], [(20, 30, 250, 200), (0, 0, 320, 240), (100, 100, 140, 130)]),
    "click and box": ([(150, 100), (60, 60)], [1, 0], [(50, 40, 260, 220)]),
}


@pytest.mark.fidelity
@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("prompt_name", sorted(PROMPTS))
def test_decoder_gives_the_torch_mask_decoder_logits(sam2, demo_onnx, prompt_name, multimask):
    image = _image(4, 240, 320)
    features = sam2.encode([image])[0]
    points, labels, boxes = PROMPTS[prompt_name]
    prompt = SamPrompt(
        np.array(points, np.float32).reshape(-1, 2), np.array(labels, np.int32), np.array(boxes, np.float32).reshape(-1, 4), multimask
    )
    coords, token_labels = prompt_tokens(sam2.transforms, prompt, features.orig_hw, torch.device("cpu"))
    model = sam2.model
    with torch.inference_mode():  # the call Sam2TorchBackend (and SAM2ImagePredictor) makes
        sparse, dense = model.sam_prompt_encoder(points=(coords, token_labels), boxes=None, masks=None)
        expected_logits, expected_scores, _, _ = model.sam_mask_decoder(
            image_embeddings=features.image_embed[None],
            image_pe=model.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
            repeat_image=coords.shape[0] > 1,
            high_res_features=[f[None] for f in features.high_res_feats],
        )
    objects = coords.shape[0]
    inputs = {
        "image_embed": np.repeat(features.image_embed.numpy()[None], objects, axis=0),
        "high_res_feats_0": np.repeat(features.high_res_feats[0].numpy()[None], objects, axis=0),
        "high_res_feats_1": np.repeat(features.high_res_feats[1].numpy()[None], objects, axis=0),
        "point_coords": coords.numpy(),
        "point_labels": token_labels.numpy(),
    }

    got = run_onnx(demo_onnx / "sam2_mask_decoder.onnx", inputs)

    prefix = "multimask" if multimask else "singlemask"
    _assert_close(got[f"{prefix}_logits"], expected_logits, SAM2_DEMO_DECODER_DEPTH)
    scores = expected_scores.numpy()
    assert got[f"{prefix}_scores"].shape == scores.shape
    for score, expected_score in zip(got[f"{prefix}_scores"].ravel(), scores.ravel()):
        assert score == pytest.approx(float(expected_score), abs=sam2_score_tolerance(expected_score, SAM2_DEMO_DECODER_DEPTH))


@pytest.mark.fidelity
def test_grounding_dino_gives_the_transformers_logits_and_boxes(demo_weights, demo_onnx):
    from transformers import AutoProcessor, GroundingDinoForObjectDetection

    from labelgate.models.grounding_dino.processing import model_inputs, text_structure

    _, directory = demo_paths(demo_weights)
    processor = AutoProcessor.from_pretrained(directory)
    model = GroundingDinoForObjectDetection.from_pretrained(directory).eval()
    size = (320, 480)  # the demo processor's shortest_edge x longest_edge: the exported fixed size
    inputs = model_inputs(processor, [_image(5, 300, 500), _image(6, 200, 300)], "red car . person . tree .", size)
    with torch.inference_mode():
        expected = model(**inputs)
    masks, position_ids = text_structure(inputs["input_ids"])
    feed = {name: inputs[name].numpy() for name in ("pixel_values", "input_ids", "token_type_ids", "attention_mask")}
    feed.update(text_self_attention_masks=masks.numpy(), position_ids=position_ids.numpy())

    got = run_onnx(demo_onnx / "grounding_dino.onnx", feed)

    for row in range(len(feed["input_ids"])):
        # Queries are the top-k proposals: rows may come out in another order where proposals tie.
        proposals = Proposals.of(expected.enc_outputs_class[row], expected.logits.shape[1])
        proposals.skip_unless_determined()
        boxes = expected.pred_boxes[row].numpy()
        order = match_queries(proposals, boxes, got["pred_boxes"][row], box_coordinate_tolerance(boxes))
        logits = expected.logits[row].numpy()
        finite = np.isfinite(logits)  # logits past the caption are -inf in both
        assert np.array_equal(np.isfinite(got["logits"][row][order]), finite)
        _assert_close(got["logits"][row][order][finite], logits[finite], GDINO_DEMO_DEPTH)


def _dims(onnx_path):
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
    return {v.name: dims(v) for v in graph.input}, {v.name: dims(v) for v in graph.output}


def test_graphs_have_a_dynamic_batch_axis_and_fixed_image_sizes(demo_onnx):
    shapes = {name: _dims(demo_onnx / f"{name}.onnx") for name in ("sam2_image_encoder", "sam2_mask_decoder", "grounding_dino")}
    for inputs, outputs in shapes.values():
        assert all(dims[0] == "batch" for dims in [*inputs.values(), *outputs.values()])
    encoder_inputs, encoder_outputs = shapes["sam2_image_encoder"]
    assert encoder_inputs["image"] == ["batch", 3, 256, 256]
    assert encoder_outputs["high_res_feats_0"] == ["batch", 32, 64, 64]
    decoder_inputs, decoder_outputs = shapes["sam2_mask_decoder"]
    assert decoder_inputs["point_coords"] == ["batch", "points", 2]
    assert decoder_inputs["point_labels"] == ["batch", "points"]
    assert decoder_outputs["multimask_logits"] == ["batch", 3, 64, 64]  # low-res: upscaling stays outside
    assert decoder_outputs["singlemask_logits"] == ["batch", 1, 64, 64]
    gdino_inputs, _ = shapes["grounding_dino"]
    assert gdino_inputs["pixel_values"] == ["batch", 3, 320, 480]
    assert gdino_inputs["text_self_attention_masks"] == ["batch", "tokens", "tokens"]


def test_manifest_names_the_models_and_weights_as_the_torch_backends_do(sam2, demo_weights, demo_onnx):
    from labelgate.models.export.onnx import read_manifest
    from labelgate.models.grounding_dino.torch_backend import GroundingDinoBackend

    manifest = read_manifest(demo_onnx)
    _, directory = demo_paths(demo_weights)
    detector = GroundingDinoBackend.from_pretrained(directory)
    assert manifest["sam2_image_encoder"]["parameters"]["labelgate_version"] == sam2.info.version
    assert manifest["sam2_mask_decoder"]["parameters"]["labelgate_name"] == "sam2_demo"
    assert manifest["grounding_dino"]["parameters"]["labelgate_version"] == detector.info.version
    assert manifest["grounding_dino"]["parameters"]["labelgate_image_size"] == "320x480"


def test_export_without_a_checkpoint_says_where_to_get_one(tmp_path, capsys):
    from labelgate.cli.main import main

    status = main(["export", "onnx", "--out", str(tmp_path), "--sam2-checkpoint", str(tmp_path / "missing.pt")])
    assert status == 1
    assert "missing.pt: no such file" in capsys.readouterr().err
