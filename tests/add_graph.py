"""A tiny ONNX graph, total = a + b over [n, 2] float32, for tests of the Triton python-flavour model."""

from __future__ import annotations

from pathlib import Path


def write_add_model(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["total"])], "add",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", 2]) for name in ("a", "b")],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, ["n", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)  # any onnxruntime reads it
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path
