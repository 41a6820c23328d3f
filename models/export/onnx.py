"""`labelgate export onnx`: SAM 2 and Grounding DINO as ONNX files, checked against PyTorch.

Writes `<out>/sam2_image_encoder.onnx`, `<out>/sam2_mask_decoder.onnx`, `<out>/grounding_dino.onnx`
and `<out>/labelgate.json` (the model names, weights versions and fixed image sizes that the
Triton repository writer turns into config parameters). The legacy TorchScript exporter at
opset 17 is used: it exports these graphs exactly (ONNX Runtime matches PyTorch to ~1e-6).
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from labelgate.models.export.graphs import (
    GROUNDING_DINO,
    SAM2_IMAGE_ENCODER,
    SAM2_MASK_DECODER,
    GroundingDinoGraph,
    Sam2ImageEncoderGraph,
    Sam2MaskDecoderGraph,
)

log = logging.getLogger(__name__)

OPSET = 17
MANIFEST = "labelgate.json"
EXAMPLE_CAPTION = "a cat . a dog ."
PARITY_CAPTION = "person . red car . tree ."


@dataclass(frozen=True)
class Exported:
    """One exported graph: its file and what the Triton repository needs to know about it."""

    name: str
    path: Path
    parameters: dict[str, str]  # labelgate_* values, become Triton config parameters
    max_abs_diff: dict[str, float]  # per output, ONNX Runtime vs PyTorch on inputs not used for tracing


# --- generic ---------------------------------------------------------------------------------


def export_graph(graph: torch.nn.Module, inputs: Mapping[str, torch.Tensor], path: Path, opset: int = OPSET) -> Path:
    """Traces `graph` on `inputs` (named as `graph.input_names`) into an ONNX file with the graph's
    dynamic axes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    args = tuple(inputs[name] for name in graph.input_names)
    with torch.inference_mode():
        outputs = graph.eval()(*args)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings about Python control flow on fixed sizes
        torch.onnx.export(
            graph.eval(),
            args,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=list(graph.input_names),
            output_names=list(graph.output_names),
            dynamic_axes=graph.dynamic_axes(),
        )
    _pin_output_shapes(path, graph, [tuple(output.shape) for output in outputs])
    return path


def _pin_output_shapes(path: Path, graph: torch.nn.Module, shapes: list[tuple[int, ...]]) -> None:
    """ONNX shape inference leaves most output dims unknown; write the traced sizes into the
    graph, keeping the declared dynamic axes symbolic, so configs and engines see real shapes."""
    import onnx

    model = onnx.load(str(path))
    axes = graph.dynamic_axes()
    for output, shape in zip(model.graph.output, shapes):
        dims = output.type.tensor_type.shape.dim
        for index, size in enumerate(shape):
            if index in axes.get(output.name, {}):
                dims[index].dim_param = axes[output.name][index]
            else:
                dims[index].dim_value = size
    onnx.save(model, str(path))


def run_onnx(path: Path, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Runs an ONNX file once on the CPU with ONNX Runtime."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(inputs))))


def max_abs_diff(graph: torch.nn.Module, path: Path, inputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """max |ONNX Runtime - PyTorch| per output of `graph` on `inputs`."""
    with torch.inference_mode():
        expected = graph.eval()(*(inputs[name] for name in graph.input_names))
    got = run_onnx(path, {name: tensor.numpy() for name, tensor in inputs.items()})
    diffs = {}
    for name, tensor in zip(graph.output_names, expected):
        diffs[name] = _max_abs_diff(got[name], tensor.numpy(), f"{path.name} {name}")
    return diffs


def _max_abs_diff(got: np.ndarray, expected: np.ndarray, what: str) -> float:
    if got.shape != expected.shape:
        raise AssertionError(f"{what}: ONNX shape {got.shape} != PyTorch {expected.shape}")
    got, expected = got.astype(np.float64), expected.astype(np.float64)
    same = got == expected  # also equal infinities (Grounding DINO pads its logits with -inf)
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(got - expected))
    return float(np.nan_to_num(diff, nan=np.inf).max()) if diff.size else 0.0


# --- SAM 2 -----------------------------------------------------------------------------------


def sam2_encoder_inputs(image_size: int, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(batch, 3, image_size, image_size, generator=generator)}


def sam2_decoder_inputs(encoder: Sam2ImageEncoderGraph, image_size: int, batch: int, points: int, seed: int = 0):
    """Real features of random images plus random clicks (labels 0-3, as boxes and clicks give)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        features = encoder.eval()(sam2_encoder_inputs(image_size, batch, seed)["image"])
    return {
        **dict(zip(Sam2ImageEncoderGraph.output_names, features)),
        "point_coords": torch.rand(batch, points, 2, generator=generator) * image_size,
        "point_labels": torch.randint(0, 4, (batch, points), generator=generator, dtype=torch.int32),
    }


def export_sam2(model: torch.nn.Module, name: str, version: str, out_dir: Path, check: bool = True) -> list[Exported]:
    """The image encoder (fixed input size `model.image_size`) and the prompt encoder + mask decoder."""
    model = model.eval()
    size = int(model.image_size)
    encoder, decoder = Sam2ImageEncoderGraph(model), Sam2MaskDecoderGraph(model)
    parameters = {"labelgate_name": name, "labelgate_version": version, "labelgate_kind": "sam2", "labelgate_image_size": str(size)}
    exported = []
    path = export_graph(encoder, sam2_encoder_inputs(size, batch=2), out_dir / f"{SAM2_IMAGE_ENCODER}.onnx")
    diff = max_abs_diff(encoder, path, sam2_encoder_inputs(size, batch=3, seed=1)) if check else {}
    exported.append(Exported(SAM2_IMAGE_ENCODER, path, parameters, diff))
    path = export_graph(decoder, sam2_decoder_inputs(encoder, size, batch=2, points=3), out_dir / f"{SAM2_MASK_DECODER}.onnx")
    diff = max_abs_diff(decoder, path, sam2_decoder_inputs(encoder, size, batch=3, points=5, seed=1)) if check else {}
    exported.append(Exported(SAM2_MASK_DECODER, path, parameters, diff))
    return exported


# --- Grounding DINO --------------------------------------------------------------------------


def default_grounding_dino_size(processor) -> tuple[int, int]:
    """(height, width) for the fixed-size graph: the processor's own size for a landscape image
    (shortest_edge x longest_edge, 800 x 1333 for the official checkpoints)."""
    size = processor.image_processor.size
    size = size if isinstance(size, Mapping) else vars(size)
    if size.get("height") and size.get("width"):
        return int(size["height"]), int(size["width"])
    return int(size["shortest_edge"]), int(size["longest_edge"])


def grounding_dino_inputs(processor, image_size: tuple[int, int], batch: int, caption: str, seed: int = 0):
    from labelgate.models.grounding_dino.processing import model_inputs, text_structure

    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (*image_size, 3), dtype=np.uint8) for _ in range(batch)]
    inputs = model_inputs(processor, images, caption, image_size)
    masks, position_ids = text_structure(inputs["input_ids"])
    return {
        "pixel_values": inputs["pixel_values"],
        "input_ids": inputs["input_ids"],
        "token_type_ids": inputs["token_type_ids"],
        "attention_mask": inputs["attention_mask"],
        "text_self_attention_masks": masks,
        "position_ids": position_ids,
    }


def export_grounding_dino(
    model: torch.nn.Module, processor, name: str, version: str, out_dir: Path, image_size: tuple[int, int] | None = None,
    check: bool = True,
) -> Exported:
    image_size = image_size or default_grounding_dino_size(processor)
    graph = GroundingDinoGraph(model.eval())
    path = export_graph(graph, grounding_dino_inputs(processor, image_size, 2, EXAMPLE_CAPTION), out_dir / f"{GROUNDING_DINO}.onnx")
    diff = max_abs_diff(graph, path, grounding_dino_inputs(processor, image_size, 3, PARITY_CAPTION, seed=1)) if check else {}
    parameters = {
        "labelgate_name": name,
        "labelgate_version": version,
        "labelgate_kind": "grounding_dino",
        "labelgate_image_size": f"{image_size[0]}x{image_size[1]}",
    }
    return Exported(GROUNDING_DINO, path, parameters, diff)


# --- manifest --------------------------------------------------------------------------------


def write_manifest(out_dir: Path, exported: list[Exported]) -> Path:
    path = out_dir / MANIFEST
    manifest = {item.name: {"file": item.path.name, "parameters": item.parameters} for item in exported}
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def read_manifest(onnx_dir: Path) -> dict[str, dict]:
    path = Path(onnx_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {onnx_dir} is not a `labelgate export onnx` output directory")
    return json.loads(path.read_text())
