"""The GPU rows' bookkeeping, run on the CPU: numbers where a measure runs, "n/a (why)" where it
cannot, and a table with every column. (The CUDA timings themselves run only in scripts/gpu_check.sh.)"""

from __future__ import annotations

import warnings

import pytest
import torch

from labelgate.bench import engines
from labelgate.bench.gpu import Budget, measure, per_second
from labelgate.bench.report import gpu_table


def test_measure_gives_milliseconds_per_item():
    calls = []
    value = measure(Budget(60), lambda: calls.append(1), repeats=4, per=2)
    assert isinstance(value, float) and value >= 0
    assert len(calls) == 2 + 4  # warm-up calls, then the timed ones


def test_measure_says_why_there_is_no_number():
    def broken():
        raise ValueError("engine exploded\nsecond line")

    assert measure(Budget(60), broken) == "n/a (ValueError: engine exploded)"
    assert measure(Budget(0), lambda: None) == "n/a (time budget spent)"


def test_per_second_inverts_milliseconds_and_keeps_reasons():
    assert per_second(4.0) == pytest.approx(250.0)
    assert per_second("n/a (time budget spent)") == "n/a (time budget spent)"


def test_gpu_table_has_the_union_of_columns_and_blank_cells():
    rows = [
        {"measure": "encoder", "unit": "ms", "torch fp32": 12.345, "torch bf16": "n/a (time budget spent)"},
        {"measure": "engine build", "unit": "s", "TensorRT fp16": 61.0},
    ]
    lines = gpu_table(rows).splitlines()
    assert lines[0] == "| GPU measure | torch fp32 | torch bf16 | TensorRT fp16 |"
    assert lines[2] == "| encoder (ms) | 12.35 | n/a (time budget spent) |  |"
    assert lines[3] == "| engine build (s) |  |  | 61.00 |"
    assert gpu_table([]) == ""


class _Double(torch.nn.Module):
    input_names = ("x",)

    def forward(self, x):
        return x * 2


def test_engine_rows_time_torch_and_explain_a_missing_tensorrt(tmp_path):
    cases = {"double, batch 2": ("double", "ms/batch", {"x": torch.ones(2, 3)})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # autocast("cuda") without CUDA warns and does nothing
        rows = engines._rows(cases, {"double": _Double()}, {"double": {"x": torch.ones(1, 3)}}, tmp_path, Budget(60))
    case, build = rows
    assert case["measure"] == "double, batch 2" and case["unit"] == "ms/batch"
    assert isinstance(case["torch fp32"], float) and isinstance(case["torch bf16"], float)
    # No GPU here: TensorRT cannot build, and both the case and the build row say why.
    assert case[engines.ENGINE].startswith("n/a (") and case[engines.ENGINE] == build[engines.ENGINE]
    assert build["measure"] == "double: export + engine build" and build["unit"] == "s"


def test_backend_rows_run_the_real_backends_and_explain_what_a_device_cannot(demo_weights):
    """On the CPU, with the demo models: fp32 cells are numbers; bf16/fp16 SAM 2 cells say why not."""
    from labelgate.bench.gpu import backend_rows
    from labelgate.bench.setup import prepare_models

    models = prepare_models(demo_weights.parent, quick=True)  # the session's demo weights, in work/demo
    rows = {row["measure"]: row for row in backend_rows(models, (96, 64), Budget(120), device="cpu")}
    assert set(rows) == {"SAM 2 encoder, batch 1", "SAM 2 encoder, batch 8", "SAM 2 click (decoder + masks) p50",
                         "Grounding DINO"}
    for row in rows.values():
        assert isinstance(row["torch fp32"], float) and row["torch fp32"] > 0, row
    for dtype in ("bf16", "fp16"):
        assert rows["SAM 2 encoder, batch 1"][f"torch {dtype}"].startswith("n/a (ValueError: --dtype")
    assert rows["Grounding DINO"]["unit"] == "images/s"
