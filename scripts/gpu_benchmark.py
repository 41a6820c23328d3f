"""GPU benchmark of the export path, for scripts/gpu_check.sh: the official architectures with random
weights (SAM 2.1 hiera-t at 1024 px, Grounding DINO tiny at 800x1333), PyTorch eager fp32 / bf16
against TensorRT engines built by labelgate's exporter, median ms per call on the GPU.

Prints one tab-separated row per measure: `bench<TAB>measure<TAB>value<TAB>unit`. A measure that
cannot run (no TensorRT, the time budget spent, an error) prints `n/a` with the reason, so the
table is always complete.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def _row(measure: str, value, unit: str = "ms") -> None:
    text = f"{value:.2f}" if isinstance(value, float) else str(value)
    print(f"bench\t{measure}\t{text}\t{unit}", flush=True)


def _timed_ms(call, warmup: int = 3, repeats: int = 20) -> float:
    for _ in range(warmup):
        call()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


class Budget:
    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def left(self) -> bool:
        return time.monotonic() < self.deadline


def _measure(name: str, budget: Budget, call, unit: str = "ms") -> None:
    if not budget.left():
        _row(name, "n/a (time budget spent)", unit)
        return
    try:
        _row(name, _timed_ms(call), unit)
    except Exception as error:  # one failing measure must not lose the others
        _row(name, f"n/a ({type(error).__name__}: {str(error).splitlines()[0][:80]})", unit)


def _autocast(dtype: str):
    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[dtype])


def _engines(graphs: dict, inputs: dict, workdir: Path, budget: Budget) -> dict:
    """{graph name: EngineRunner} for fp16 engines of `graphs`, or {} with a reason row."""
    from labelgate.models.export.onnx import export_graph
    from labelgate.models.export.tensorrt import EngineOptions, EngineRunner, TensorRTUnavailable, build_engine, require_tensorrt

    try:
        require_tensorrt()
    except TensorRTUnavailable as error:
        _row("TensorRT engines", f"n/a ({str(error)[:80]})", "")
        return {}
    runners = {}
    options = EngineOptions(precision="fp16", max_batch_size=16, opt_batch_size=8, workspace_gib=16)
    for name, graph in graphs.items():
        if not budget.left():
            break
        try:
            started = time.monotonic()
            onnx_path = export_graph(graph, inputs[name], workdir / f"{name}.onnx")
            runners[name] = EngineRunner(build_engine(onnx_path, workdir / f"{name}.plan", options))
            _row(f"{name}: export + fp16 engine build", time.monotonic() - started, "s")
        except Exception as error:
            _row(f"{name}: TensorRT fp16 engine", f"n/a ({type(error).__name__}: {str(error).splitlines()[0][:80]})", "")
    return runners


def bench_sam2(budget: Budget, workdir: Path) -> None:
    from sam2.build_sam import build_sam2

    from labelgate.models.export.graphs import Sam2ImageEncoderGraph, Sam2MaskDecoderGraph

    model = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cuda").eval()
    encoder, decoder = Sam2ImageEncoderGraph(model).eval(), Sam2MaskDecoderGraph(model).eval()
    images = {batch: torch.randn(batch, 3, 1024, 1024, device="cuda") for batch in (1, 8)}
    with torch.inference_mode():
        features = encoder(images[1])

    def prompts(batch: int) -> dict:
        return {
            **{name: f.expand(batch, -1, -1, -1).contiguous() for name, f in zip(Sam2ImageEncoderGraph.output_names, features)},
            "point_coords": torch.rand(batch, 2, 2, device="cuda") * 1024,
            "point_labels": torch.ones(batch, 2, dtype=torch.int32, device="cuda"),
        }

    decoder_inputs = {batch: prompts(batch) for batch in (1, 16)}
    for dtype in ("fp32", "bf16"):
        for batch, image in images.items():
            def run_encoder(image=image, dtype=dtype):
                with torch.inference_mode(), _autocast(dtype):
                    encoder(image)
            _measure(f"SAM 2 hiera-t encoder, torch {dtype}, batch {batch}", budget, run_encoder, "ms/batch")
        for batch, inputs in decoder_inputs.items():
            def run_decoder(inputs=inputs, dtype=dtype):
                with torch.inference_mode(), _autocast(dtype):
                    decoder(*(inputs[n] for n in Sam2MaskDecoderGraph.input_names))
            _measure(f"SAM 2 decoder, torch {dtype}, {batch} prompts", budget, run_decoder, "ms/batch")
    graphs = {"sam2_image_encoder": encoder, "sam2_mask_decoder": decoder}
    engines = _engines(graphs, {"sam2_image_encoder": {"image": images[1]}, "sam2_mask_decoder": decoder_inputs[1]}, workdir, budget)
    if "sam2_image_encoder" in engines:
        for batch, image in images.items():
            _measure(f"SAM 2 hiera-t encoder, TensorRT fp16, batch {batch}", budget,
                     lambda image=image: engines["sam2_image_encoder"].infer({"image": image}), "ms/batch")
    if "sam2_mask_decoder" in engines:
        for batch, inputs in decoder_inputs.items():
            _measure(f"SAM 2 decoder, TensorRT fp16, {batch} prompts", budget,
                     lambda inputs=inputs: engines["sam2_mask_decoder"].infer(inputs), "ms/batch")


def bench_grounding_dino(budget: Budget, workdir: Path) -> None:
    from transformers import GroundingDinoConfig, GroundingDinoForObjectDetection

    from labelgate.models.export.graphs import GroundingDinoGraph
    from labelgate.models.grounding_dino.processing import text_structure

    model = GroundingDinoForObjectDetection(GroundingDinoConfig()).to("cuda").eval()  # the tiny architecture
    graph = GroundingDinoGraph(model).eval()
    # "[CLS] car . person . [SEP]" in BERT ids; the values only need to be valid ids.
    input_ids = torch.tensor([[101, 2482, 1012, 2711, 1012, 102]], device="cuda")
    masks, position_ids = text_structure(input_ids)
    inputs = {
        "pixel_values": torch.randn(1, 3, 800, 1333, device="cuda"),
        "input_ids": input_ids,
        "token_type_ids": torch.zeros_like(input_ids),
        "attention_mask": torch.ones_like(input_ids),
        "text_self_attention_masks": masks,
        "position_ids": position_ids,
    }
    for dtype in ("fp32", "bf16"):
        def run(dtype=dtype):
            with torch.inference_mode(), _autocast(dtype):
                graph(*(inputs[n] for n in GroundingDinoGraph.input_names))
        _measure(f"Grounding DINO tiny 800x1333, torch {dtype}", budget, run, "ms/image")
    engines = _engines({"grounding_dino": graph}, {"grounding_dino": inputs}, workdir, budget)
    if "grounding_dino" in engines:
        _measure("Grounding DINO tiny 800x1333, TensorRT fp16", budget, lambda: engines["grounding_dino"].infer(inputs), "ms/image")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=240.0, help="stop starting measures after this long")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        _row("GPU benchmark", "n/a (no CUDA GPU)", "")
        return 0
    _row("GPU", torch.cuda.get_device_name(), "")
    budget = Budget(args.budget_s)
    with tempfile.TemporaryDirectory() as workdir:
        for bench in (bench_sam2, bench_grounding_dino):
            try:
                bench(budget, Path(workdir))
            except Exception as error:
                _row(bench.__name__, f"n/a ({type(error).__name__}: {str(error).splitlines()[0][:80]})", "")
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
