"""`labelgate export triton-repo` / `export tensorrt`: model repositories whose configs Triton's own
ModelConfig schema parses, with the graphs' tensor names, types and shapes; TensorRT engine
profiles; and a clear message where TensorRT or a GPU is missing."""

from __future__ import annotations

import pytest
from google.protobuf import text_format

from labelgate.cli.main import main

MODELS = ("sam2_image_encoder", "sam2_mask_decoder", "grounding_dino")


def _config(path):
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def _tensors(section):
    return {t.name: (model_config_name(t.data_type), list(t.dims)) for t in section}


def model_config_name(value):
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2.DataType.Name(value)


def _kind(group):
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2.ModelInstanceGroup.Kind.Name(group.kind)


@pytest.fixture(scope="module")
def python_repo(demo_onnx, tmp_path_factory):
    out = tmp_path_factory.mktemp("repo")
    assert main(["export", "triton-repo", "--onnx", str(demo_onnx), "--out", str(out), "--flavor", "python",
                 "--max-batch-size", "6", "--preferred-batch-size", "3", "--preferred-batch-size", "6",
                 "--max-queue-delay-us", "1500", "--instances", "2", "--onnxruntime-threads", "1"]) == 0
    return out


def test_python_flavor_writes_config_onnx_and_model_py_per_model(python_repo):
    for name in MODELS:
        assert sorted(p.name for p in (python_repo / name / "1").iterdir()) == ["model.onnx", "model.py"]
        config = _config(python_repo / name / "config.pbtxt")
        assert config.name == name and config.backend == "python"
        assert config.max_batch_size == 6
        assert list(config.dynamic_batching.preferred_batch_size) == [3, 6]
        assert config.dynamic_batching.max_queue_delay_microseconds == 1500
        assert [(_kind(g), g.count) for g in config.instance_group] == [("KIND_CPU", 2)]
        assert config.parameters["onnxruntime_intra_op_threads"].string_value == "1"


def test_configs_carry_the_graph_tensors_without_the_batch_axis(python_repo):
    encoder = _config(python_repo / "sam2_image_encoder" / "config.pbtxt")
    assert _tensors(encoder.input) == {"image": ("TYPE_FP32", [3, 256, 256])}
    assert _tensors(encoder.output)["image_embed"] == ("TYPE_FP32", [256, 16, 16])
    decoder = _config(python_repo / "sam2_mask_decoder" / "config.pbtxt")
    inputs = _tensors(decoder.input)
    assert inputs["point_coords"] == ("TYPE_FP32", [-1, 2]) and inputs["point_labels"] == ("TYPE_INT32", [-1])
    assert _tensors(decoder.output)["multimask_scores"] == ("TYPE_FP32", [3])
    gdino = _config(python_repo / "grounding_dino" / "config.pbtxt")
    inputs = _tensors(gdino.input)
    assert inputs["pixel_values"] == ("TYPE_FP32", [3, 320, 480])
    assert inputs["text_self_attention_masks"] == ("TYPE_BOOL", [-1, -1])
    assert inputs["input_ids"] == ("TYPE_INT64", [-1])
    assert _tensors(gdino.output) == {"logits": ("TYPE_FP32", [30, 256]), "pred_boxes": ("TYPE_FP32", [30, 4])}


def test_configs_carry_what_labelgate_reads_back(python_repo):
    parameters = _config(python_repo / "sam2_mask_decoder" / "config.pbtxt").parameters
    assert parameters["labelgate_name"].string_value == "sam2_demo"
    assert parameters["labelgate_image_size"].string_value == "256"
    assert len(parameters["labelgate_version"].string_value) == 12
    assert _config(python_repo / "grounding_dino" / "config.pbtxt").parameters["labelgate_image_size"].string_value == "320x480"


def test_onnxruntime_flavor_defaults_to_gpu_instances(demo_onnx, tmp_path):
    assert main(["export", "triton-repo", "--onnx", str(demo_onnx), "--out", str(tmp_path), "--flavor", "onnxruntime"]) == 0
    config = _config(tmp_path / "sam2_mask_decoder" / "config.pbtxt")
    assert config.backend == "onnxruntime"
    assert [_kind(g) for g in config.instance_group] == ["KIND_GPU"]
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert [p.name for p in (tmp_path / "sam2_mask_decoder" / "1").iterdir()] == ["model.onnx"]


def test_bad_repository_options_are_refused(demo_onnx, tmp_path, capsys):
    status = main(["export", "triton-repo", "--onnx", str(demo_onnx), "--out", str(tmp_path), "--flavor", "python",
                   "--max-batch-size", "4", "--preferred-batch-size", "8"])
    assert status == 1
    assert "preferred batch sizes [8] are outside 1..4" in capsys.readouterr().err
    status = main(["export", "triton-repo", "--onnx", str(tmp_path / "nothing"), "--out", str(tmp_path), "--flavor", "python"])
    assert status == 1
    assert "not a `labelgate export onnx` output directory" in capsys.readouterr().err


def test_engine_profiles_cover_batch_points_and_text_tokens(demo_onnx):
    from labelgate.models.export.tensorrt import EngineOptions, onnx_input_axes, profile_shapes

    options = EngineOptions(max_batch_size=8, opt_batch_size=4, max_point_tokens=66, opt_point_tokens=2)
    decoder = profile_shapes(onnx_input_axes(demo_onnx / "sam2_mask_decoder.onnx"), options)
    assert decoder["point_coords"] == ((1, 1, 2), (4, 2, 2), (8, 66, 2))
    assert decoder["image_embed"] == ((1, 256, 16, 16), (4, 256, 16, 16), (8, 256, 16, 16))
    gdino = profile_shapes(onnx_input_axes(demo_onnx / "grounding_dino.onnx"), options)
    assert gdino["text_self_attention_masks"] == ((1, 1, 1), (4, 16, 16), (8, 256, 256))
    assert gdino["pixel_values"][2] == (8, 3, 320, 480)


def _tensorrt_usable() -> bool:
    from labelgate.models.export.tensorrt import TensorRTUnavailable, require_tensorrt

    try:
        require_tensorrt()
    except TensorRTUnavailable:
        return False
    return True


def test_tensorrt_export_explains_what_is_missing(demo_onnx, tmp_path, capsys):
    if _tensorrt_usable():
        pytest.skip("TensorRT and a GPU are here: tests/gpu builds real engines")
    status = main(["export", "tensorrt", "--onnx", str(demo_onnx), "--repo", str(tmp_path)])
    assert status == 2
    message = capsys.readouterr().err
    assert "TensorRT is not installed" in message or "no CUDA GPU" in message
    assert not any(tmp_path.rglob("model.plan"))
