"""`labelgate export tensorrt`: TensorRT engines from the exported ONNX graphs (TensorRT Python API).

One optimization profile per engine covers every dynamic axis, found by its ONNX name:
`batch` (1 .. max batch size), `points` (SAM 2 prompt tokens, 1 .. max point tokens) and
`tokens` (Grounding DINO caption tokens, 1 .. 256). Fixed image sizes stay fixed.

Precision: `fp32` builds with TF32 switched off, so engines match ONNX Runtime closely. `fp16`
uses TensorRT 10's FP16 builder flag; TensorRT 11 removed that flag (strong typing only), so
there the ONNX graph is first converted to mixed precision with NVIDIA ModelOpt AutoCast
(`pip install nvidia-modelopt[onnx]`), which keeps numerically sensitive layers in fp32. fp16
can break SAM encoders and Grounding DINO layers: `tests/gpu` checks parity per model.

Importing this module needs neither TensorRT nor a GPU; building or running an engine raises
`TensorRTUnavailable` with a message saying what is missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

PRECISIONS = ("fp16", "fp32")


class TensorRTUnavailable(RuntimeError):
    """TensorRT, a CUDA GPU or ModelOpt (fp16 on TensorRT 11) is missing on this machine."""


@dataclass(frozen=True)
class EngineOptions:
    precision: str = "fp16"
    max_batch_size: int = 8
    opt_batch_size: int = 4
    max_point_tokens: int = 66  # 64 clicks (--max-points) + 2 box corners; the padding point is added in the graph
    opt_point_tokens: int = 2
    max_text_tokens: int = 256  # Grounding DINO's max_text_len
    opt_text_tokens: int = 16
    workspace_gib: float = 8.0

    def validate(self) -> "EngineOptions":
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r}: choose fp16 or fp32")
        for low, high, what in (
            (self.opt_batch_size, self.max_batch_size, "batch size"),
            (self.opt_point_tokens, self.max_point_tokens, "point tokens"),
            (self.opt_text_tokens, self.max_text_tokens, "text tokens"),
        ):
            if not 1 <= low <= high:
                raise ValueError(f"{what}: need 1 <= optimum ({low}) <= maximum ({high})")
        return self

    def axis_range(self, axis: str) -> tuple[int, int, int]:
        """(min, opt, max) for a dynamic ONNX axis name."""
        ranges = {
            "batch": (1, self.opt_batch_size, self.max_batch_size),
            "points": (1, self.opt_point_tokens, self.max_point_tokens),
            "tokens": (1, self.opt_text_tokens, self.max_text_tokens),
        }
        if axis not in ranges:
            raise ValueError(f"no optimization profile range for the dynamic axis {axis!r}")
        return ranges[axis]


def require_tensorrt():
    """The `tensorrt` module, or TensorRTUnavailable saying what is missing."""
    try:
        import tensorrt
    except ImportError as error:
        raise TensorRTUnavailable(
            f"TensorRT is not installed ({error}). Install it on a machine with an NVIDIA GPU "
            "(`pip install tensorrt`), or serve with the `onnxruntime` or `python` repository flavor"
        ) from None
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if not has_gpu:
        raise TensorRTUnavailable("no CUDA GPU is visible: TensorRT engines are built and run on the GPU that serves them")
    return tensorrt


def onnx_input_axes(onnx_path: Path) -> dict[str, list[int | str]]:
    """Input name -> its dims, an int where fixed and the axis name where dynamic."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    return {
        value.name: [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]
        for value in graph.input
        if value.name not in initializers
    }


def profile_shapes(axes: Mapping[str, list[int | str]], options: EngineOptions) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Input name -> (min, opt, max) shapes for the optimization profile."""
    shapes = {}
    for name, dims in axes.items():
        ranges = [options.axis_range(d) if isinstance(d, str) else (d, d, d) for d in dims]
        shapes[name] = tuple(tuple(r[i] for r in ranges) for i in range(3))
    return shapes


def _fp16_onnx(onnx_path: Path, out_path: Path) -> Path:
    try:
        import modelopt.onnx.autocast as autocast
    except ImportError:
        raise TensorRTUnavailable(
            "this TensorRT has no FP16 builder flag (TensorRT 11 builds strongly typed networks only): "
            "install NVIDIA ModelOpt (`pip install nvidia-modelopt[onnx]`) to convert the graph to fp16, or use --precision fp32"
        ) from None
    import onnx

    model = autocast.convert_to_mixed_precision(onnx_path=str(onnx_path), low_precision_type="fp16", keep_io_types=True)
    onnx.save(model, str(out_path))
    return out_path


def build_engine(onnx_path: Path, plan_path: Path, options: EngineOptions) -> Path:
    """Builds and writes one serialized engine (`model.plan`)."""
    trt = require_tensorrt()
    options.validate()
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_gib * (1 << 30)))
    flags = 0
    source = onnx_path
    if options.precision == "fp16":
        if hasattr(trt.BuilderFlag, "FP16"):  # TensorRT 10: weak typing
            config.set_flag(trt.BuilderFlag.FP16)
        else:
            source = _fp16_onnx(onnx_path, plan_path.with_name(onnx_path.stem + ".fp16.onnx"))
            flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    elif hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(source)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {source}: {errors}")
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in profile_shapes(onnx_input_axes(onnx_path), options).items():
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)
    log.info("building %s engine %s from %s", options.precision, plan_path, onnx_path.name)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT could not build an engine from {source} (see the TensorRT log above)")
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    plan_path.write_bytes(bytes(serialized))
    if source != onnx_path:
        source.unlink(missing_ok=True)
    return plan_path


class EngineRunner:
    """Runs a serialized engine on the current CUDA device (buffers are torch CUDA tensors)."""

    def __init__(self, plan_path: Path):
        trt = require_tensorrt()
        import torch

        self._trt, self._torch = trt, torch
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(Path(plan_path).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT cannot load {plan_path} (built by another TensorRT version or for another GPU?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]

    def infer(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """CUDA tensors in (contiguous, the engine's dtypes), CUDA tensors out."""
        torch = self._torch
        for name in self.inputs:
            tensor = inputs[name]
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
        outputs = {}
        for name in self.outputs:
            dtype = np.dtype(self._trt.nptype(self.engine.get_tensor_dtype(name)))
            tensor = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=getattr(torch, dtype.name), device="cuda")
            outputs[name] = tensor
            self.context.set_tensor_address(name, tensor.data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        stream.synchronize()
        return outputs

    def cuda_inputs(self, inputs: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """numpy arrays -> contiguous CUDA tensors in the engine's input dtypes."""
        tensors = {}
        for name in self.inputs:
            dtype = self._trt.nptype(self.engine.get_tensor_dtype(name))
            tensors[name] = self._torch.from_numpy(np.ascontiguousarray(inputs[name], dtype=dtype)).cuda()
        return tensors

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {name: tensor.cpu().numpy() for name, tensor in self.infer(self.cuda_inputs(inputs)).items()}
