"""TensorRT engines built by `labelgate export tensorrt` against ONNX Runtime on the same inputs
(skipped without CUDA or TensorRT). fp32 engines must match closely; fp16 engines must give the
same SAM 2 masks (IoU >= 0.98) and nearly the same Grounding DINO boxes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tensorrt")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.fixture(scope="module", params=["fp32", "fp16"])
def engines(request, demo_onnx, tmp_path_factory):
    """{model name: EngineRunner} of a tensorrt-flavor repository built in this precision."""
    from labelgate.models.export.tensorrt import EngineRunner, TensorRTUnavailable, build_engine, EngineOptions
    from labelgate.models.export.onnx import read_manifest

    repo = tmp_path_factory.mktemp(f"engines-{request.param}")
    options = EngineOptions(precision=request.param, max_batch_size=4, opt_batch_size=2, workspace_gib=4)
    runners = {}
    for name, entry in read_manifest(demo_onnx).items():
        plan = repo / name / "1" / "model.plan"
        try:
            build_engine(demo_onnx / entry["file"], plan, options)
        except TensorRTUnavailable as error:  # fp16 on TensorRT 11 without ModelOpt
            pytest.skip(str(error))
        runners[name] = EngineRunner(plan)
    return request.param, runners


def _sam2_inputs(demo_onnx, batch: int, points: int):
    from labelgate.models.export.onnx import run_onnx

    rng = np.random.default_rng(batch * 10 + points)
    image = rng.standard_normal((batch, 3, 256, 256)).astype(np.float32)
    features = run_onnx(demo_onnx / "sam2_image_encoder.onnx", {"image": image})
    decoder = {
        **features,
        "point_coords": (rng.random((batch, points, 2)) * 256).astype(np.float32),
        "point_labels": rng.integers(0, 4, (batch, points)).astype(np.int32),
    }
    return {"image": image}, features, decoder


def _iou(a, b):
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


@pytest.mark.parametrize(("batch", "points"), [(1, 1), (3, 5)])
def test_sam2_engines_match_onnx_runtime(engines, demo_onnx, batch, points):
    from labelgate.models.export.onnx import run_onnx

    precision, runners = engines
    encoder_inputs, features, decoder_inputs = _sam2_inputs(demo_onnx, batch, points)
    expected = run_onnx(demo_onnx / "sam2_mask_decoder.onnx", decoder_inputs)
    got_features = runners["sam2_image_encoder"](encoder_inputs)
    # The decoder engine on the engine's own features: the whole TensorRT path against the whole ONNX one.
    got = runners["sam2_mask_decoder"]({**decoder_inputs, **got_features})
    if precision == "fp32":
        for name in features:
            assert np.abs(got_features[name] - features[name]).max() <= 1e-3
        for name in expected:
            assert np.abs(got[name] - expected[name]).max() <= 1e-3
    for name in ("multimask_logits", "singlemask_logits"):
        for row in range(batch):
            for mask in range(expected[name].shape[1]):
                assert _iou(got[name][row, mask] > 0, expected[name][row, mask] > 0) >= 0.98


def test_grounding_dino_engine_matches_onnx_runtime(engines, demo_onnx, demo_weights):
    from transformers import AutoProcessor

    from labelgate.models.export.onnx import grounding_dino_inputs, run_onnx
    from labelgate.models.demo import demo_paths

    precision, runners = engines
    processor = AutoProcessor.from_pretrained(demo_paths(demo_weights)[1])
    inputs = {k: v.numpy() for k, v in grounding_dino_inputs(processor, (320, 480), 2, "person . red car .", seed=3).items()}
    expected = run_onnx(demo_onnx / "grounding_dino.onnx", inputs)
    got = runners["grounding_dino"](inputs)
    finite = np.isfinite(expected["logits"])
    assert np.array_equal(np.isfinite(got["logits"]), finite)
    logits_tolerance, boxes_tolerance = (1e-3, 1e-4) if precision == "fp32" else (5e-2, 5e-3)
    assert np.abs(got["logits"][finite] - expected["logits"][finite]).max() <= logits_tolerance
    assert np.abs(got["pred_boxes"] - expected["pred_boxes"]).max() <= boxes_tolerance
