"""`labelgate export triton-repo`: a Triton model repository from the exported ONNX graphs.

    <repo>/sam2_image_encoder/config.pbtxt  <repo>/sam2_image_encoder/1/<artifact>
    <repo>/sam2_mask_decoder/...            <repo>/grounding_dino/...

Flavors (the artifact and the Triton backend that runs it):
- `tensorrt`: `model.plan`, a TensorRT engine (`labelgate.models.export.tensorrt`), GPU.
- `onnxruntime`: `model.onnx` on Triton's ONNX Runtime backend.
- `python`: `model.onnx` + `model.py` (`triton_python_model.py`), ONNX Runtime inside Triton's python
  backend, for machines without a GPU or without the ONNX Runtime backend.

Tensor names, types and shapes are read from the ONNX files themselves (axis 0 is the batch), so
configs and graphs cannot disagree. The labelgate_* values of `labelgate.json` become config
parameters, which the labelgate Triton backends read back (model name, weights version, sizes).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from labelgate.models.export.onnx import read_manifest

FLAVORS = ("tensorrt", "onnxruntime", "python")
ARTIFACTS = {"tensorrt": "model.plan", "onnxruntime": "model.onnx", "python": "model.onnx"}
PYTHON_MODEL_TEMPLATE = Path(__file__).with_name("triton_python_model.py")

_TRITON_TYPES = {
    1: "TYPE_FP32",
    2: "TYPE_UINT8",
    3: "TYPE_INT8",
    6: "TYPE_INT32",
    7: "TYPE_INT64",
    9: "TYPE_BOOL",
    10: "TYPE_FP16",
    11: "TYPE_FP64",
    16: "TYPE_BF16",
}


@dataclass(frozen=True)
class TensorConfig:
    name: str
    data_type: str  # TYPE_FP32, ...
    dims: tuple[int, ...]  # without the batch axis; -1 = any size


@dataclass(frozen=True)
class RepositoryOptions:
    flavor: str = "python"
    max_batch_size: int = 8
    preferred_batch_sizes: tuple[int, ...] = (4, 8)
    max_queue_delay_us: int = 2000
    instance_kind: str = "auto"  # auto (GPU for tensorrt/onnxruntime, CPU for python), gpu or cpu
    instance_count: int = 1
    onnxruntime_threads: int = 0  # python flavor: intra-op threads per instance (0 = ONNX Runtime's default)

    def validate(self) -> "RepositoryOptions":
        problems = []
        if self.flavor not in FLAVORS:
            problems.append(f"flavor {self.flavor!r}: choose one of {', '.join(FLAVORS)}")
        if self.max_batch_size < 1:
            problems.append(f"max batch size must be >= 1, got {self.max_batch_size}")
        bad = [size for size in self.preferred_batch_sizes if not 1 <= size <= self.max_batch_size]
        if bad:
            problems.append(f"preferred batch sizes {bad} are outside 1..{self.max_batch_size}")
        if self.max_queue_delay_us < 0:
            problems.append(f"max queue delay must be >= 0 us, got {self.max_queue_delay_us}")
        if self.instance_kind not in ("auto", "gpu", "cpu"):
            problems.append(f"instance kind {self.instance_kind!r}: choose auto, gpu or cpu")
        if self.instance_count < 1:
            problems.append(f"instance count must be >= 1, got {self.instance_count}")
        if self.flavor == "tensorrt" and self.instance_kind == "cpu":
            problems.append("TensorRT engines run on GPU instances only")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def kind(self) -> str:
        if self.instance_kind == "auto":
            return "KIND_CPU" if self.flavor == "python" else "KIND_GPU"
        return f"KIND_{self.instance_kind.upper()}"


def onnx_tensors(onnx_path: Path) -> tuple[list[TensorConfig], list[TensorConfig]]:
    """(inputs, outputs) of an ONNX graph, without their batch axis."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph

    def convert(value) -> TensorConfig:
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type not in _TRITON_TYPES:
            raise ValueError(f"{onnx_path.name}: tensor {value.name} has an ONNX type ({tensor_type.elem_type}) Triton configs here do not map")
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim)
        return TensorConfig(value.name, _TRITON_TYPES[tensor_type.elem_type], dims[1:])

    initializers = {init.name for init in graph.initializer}
    inputs = [convert(value) for value in graph.input if value.name not in initializers]
    return inputs, [convert(value) for value in graph.output]


def model_config(
    name: str, inputs: list[TensorConfig], outputs: list[TensorConfig], options: RepositoryOptions, parameters: dict[str, str]
) -> str:
    """config.pbtxt text for one model."""
    runner = {"tensorrt": 'platform: "tensorrt_plan"', "onnxruntime": 'backend: "onnxruntime"', "python": 'backend: "python"'}
    lines = [f'name: "{name}"', runner[options.flavor], f"max_batch_size: {options.max_batch_size}"]
    for section, tensors in (("input", inputs), ("output", outputs)):
        entries = ",\n".join(
            f'  {{ name: "{t.name}" data_type: {t.data_type} dims: [ {", ".join(str(d) for d in t.dims)} ] }}' for t in tensors
        )
        lines.append(f"{section} [\n{entries}\n]")
    preferred = ", ".join(str(size) for size in sorted(set(options.preferred_batch_sizes)))
    lines.append(
        "dynamic_batching {\n"
        + (f"  preferred_batch_size: [ {preferred} ]\n" if preferred else "")
        + f"  max_queue_delay_microseconds: {options.max_queue_delay_us}\n}}"
    )
    lines.append(f"instance_group [ {{ kind: {options.kind} count: {options.instance_count} }} ]")
    values = dict(parameters)
    if options.flavor == "python":
        values["onnxruntime_intra_op_threads"] = str(options.onnxruntime_threads)
    for key, value in sorted(values.items()):
        lines.append(f'parameters {{ key: "{key}" value: {{ string_value: "{_escape(value)}" }} }}')
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


BuildEngine = Callable[[Path, Path], object]  # (onnx file, plan file to write)


def write_repository(onnx_dir: Path, out_dir: Path, options: RepositoryOptions, build_engine: BuildEngine | None = None) -> list[Path]:
    """Writes one model directory per exported graph in `onnx_dir`; returns the config paths.
    The tensorrt flavor needs `build_engine` (`labelgate.models.export.tensorrt.build_engine`)."""
    options.validate()
    if options.flavor == "tensorrt" and build_engine is None:
        raise ValueError("the tensorrt flavor needs an engine builder")
    onnx_dir, out_dir = Path(onnx_dir), Path(out_dir)
    configs = []
    for name, entry in read_manifest(onnx_dir).items():
        onnx_path = onnx_dir / entry["file"]
        inputs, outputs = onnx_tensors(onnx_path)
        version_dir = out_dir / name / "1"
        version_dir.mkdir(parents=True, exist_ok=True)
        artifact = version_dir / ARTIFACTS[options.flavor]
        if options.flavor == "tensorrt":
            build_engine(onnx_path, artifact)
        else:
            shutil.copyfile(onnx_path, artifact)
        if options.flavor == "python":
            shutil.copyfile(PYTHON_MODEL_TEMPLATE, version_dir / "model.py")
        config = out_dir / name / "config.pbtxt"
        config.write_text(model_config(name, inputs, outputs, options, entry["parameters"]))
        configs.append(config)
    return configs
