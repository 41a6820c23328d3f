"""GPU rows for the export path: the graphs `labelgate export` writes, run by PyTorch eager (fp32,
bf16) and as TensorRT fp16 engines built by labelgate's own exporter, on the official architectures
with random weights (SAM 2.1 hiera-t at 1024 px, Grounding DINO tiny at 800x1333)."""

from __future__ import annotations

import time
from pathlib import Path

from labelgate.bench.gpu import Budget, autocast, measure, not_available

TORCH_DTYPES = ("fp32", "bf16")
ENGINE = "TensorRT fp16"


def _engines(graphs: dict, inputs: dict, workdir: Path, budget: Budget, builds: dict) -> dict:
    """{graph name: EngineRunner} for the fp16 engines that could be built; `builds` gets one
    entry per graph: seconds to export and build, or why not."""
    from labelgate.models.export.onnx import export_graph
    from labelgate.models.export.tensorrt import EngineOptions, EngineRunner, TensorRTUnavailable, build_engine, require_tensorrt

    try:
        require_tensorrt()
    except TensorRTUnavailable as error:
        builds.update({name: not_available(error) for name in graphs})
        return {}
    runners = {}
    options = EngineOptions(precision="fp16", max_batch_size=16, opt_batch_size=8, workspace_gib=16)
    for name, graph in graphs.items():
        if not budget.left():
            builds[name] = "n/a (time budget spent)"
            continue
        try:
            started = time.monotonic()
            onnx_path = export_graph(graph, inputs[name], workdir / f"{name}.onnx")
            runners[name] = EngineRunner(build_engine(onnx_path, workdir / f"{name}.plan", options))
            builds[name] = time.monotonic() - started
        except Exception as error:
            builds[name] = not_available(error)
    return runners


def _rows(cases: dict, graphs: dict, inputs: dict, workdir: Path, budget: Budget) -> list[dict]:
    """`cases`: {measure: (graph name, unit, inputs by input name)}. One row per case, plus one
    row with each graph's export + engine build time."""
    import torch

    rows = []
    for name, (graph_name, unit, case_inputs) in cases.items():
        graph = graphs[graph_name]
        row = {"measure": name, "unit": unit}
        for dtype in TORCH_DTYPES:
            def run(graph=graph, case_inputs=case_inputs, dtype=dtype):
                with torch.inference_mode(), autocast(dtype):
                    graph(*(case_inputs[n] for n in graph.input_names))
            row[f"torch {dtype}"] = measure(budget, run)
        rows.append(row)
    builds: dict = {}
    engines = _engines(graphs, inputs, workdir, budget, builds)
    for row, (graph_name, _, case_inputs) in zip(rows, cases.values()):
        runner = engines.get(graph_name)
        row[ENGINE] = measure(budget, lambda: runner.infer(case_inputs)) if runner else builds[graph_name]
    rows += [{"measure": f"{name}: export + engine build", "unit": "s", ENGINE: value} for name, value in builds.items()]
    return rows


def sam2_rows(budget: Budget, workdir: Path) -> list[dict]:
    import torch
    from sam2.build_sam import build_sam2

    from labelgate.models.export.graphs import Sam2ImageEncoderGraph, Sam2MaskDecoderGraph

    model = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cuda").eval()
    graphs = {"sam2_image_encoder": Sam2ImageEncoderGraph(model).eval(), "sam2_mask_decoder": Sam2MaskDecoderGraph(model).eval()}
    images = {batch: {"image": torch.randn(batch, 3, 1024, 1024, device="cuda")} for batch in (1, 8)}
    with torch.inference_mode():
        features = graphs["sam2_image_encoder"](images[1]["image"])

    def prompts(batch: int) -> dict:
        return {
            **{name: f.expand(batch, -1, -1, -1).contiguous() for name, f in zip(Sam2ImageEncoderGraph.output_names, features)},
            "point_coords": torch.rand(batch, 2, 2, device="cuda") * 1024,
            "point_labels": torch.ones(batch, 2, dtype=torch.int32, device="cuda"),
        }

    decoder_inputs = {batch: prompts(batch) for batch in (1, 16)}
    cases = {
        **{f"SAM 2 hiera-t encoder graph, batch {b}": ("sam2_image_encoder", "ms/batch", i) for b, i in images.items()},
        **{f"SAM 2 decoder graph, {b} prompts": ("sam2_mask_decoder", "ms/batch", i) for b, i in decoder_inputs.items()},
    }
    return _rows(cases, graphs, {"sam2_image_encoder": images[1], "sam2_mask_decoder": decoder_inputs[1]}, workdir, budget)


def grounding_dino_rows(budget: Budget, workdir: Path) -> list[dict]:
    import torch
    from transformers import GroundingDinoConfig, GroundingDinoForObjectDetection

    from labelgate.models.export.graphs import GroundingDinoGraph
    from labelgate.models.grounding_dino.processing import text_structure

    model = GroundingDinoForObjectDetection(GroundingDinoConfig()).to("cuda").eval()  # the tiny architecture
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
    cases = {"Grounding DINO tiny graph, 800x1333": ("grounding_dino", "ms/image", inputs)}
    return _rows(cases, {"grounding_dino": GroundingDinoGraph(model).eval()}, {"grounding_dino": inputs}, workdir, budget)


def engine_rows(budget: Budget, workdir: Path) -> list[dict]:
    import torch

    rows = []
    for bench in (sam2_rows, grounding_dino_rows):
        try:
            rows += bench(budget, workdir)
        except Exception as error:
            rows.append({"measure": bench.__name__, "unit": "", ENGINE: not_available(error)})
        torch.cuda.empty_cache()
    return rows
