#!/usr/bin/env bash
# Every GPU check in one run (under 8 minutes), ending with the tests' results and the benchmark's tables:
#   - tests/gpu: the torch backends on CUDA against the CPU (SAM 2 in fp32, bf16, fp16; SAM 3 concepts
#     and clicks and EdgeTAM in fp32, the only dtype they take; SAM 2 video tracking in each --dtype),
#     and TensorRT engines (fp32, fp16) built by `labelgate export tensorrt` against ONNX Runtime
#     (where TensorRT is installed);
#   - `labelgate bench --device cuda` (what remains of the budget): the service benchmark, then its GPU
#     rows: labelgate's backends in fp32/bf16/fp16, and the export graphs in PyTorch against TensorRT
#     engines on the official architectures.
#
# Usage:
#   scripts/gpu_check.sh prepare   on a machine with a package registry: download what a GPU machine
#                                  without network lacks into .build/gpu-wheels (~27 MB, binary wheels for
#                                  its Python, LABELGATE_GPU_PYTHON_VERSION=3.12; carry that folder)
#   scripts/gpu_check.sh           on the GPU machine: a venv in .build/gpu-venv on top of the machine's own
#                                  python3 and its CUDA PyTorch, filled from .build/gpu-wheels when present,
#                                  else from the package index; then the checks and the tables.
#   LABELGATE_GPU_CHECK_DEVICE=cpu scripts/gpu_check.sh
#                                  a dry run of the whole script without a GPU (tests/gpu skip, quick bench).
# LABELGATE_GPU_WHEELS, LABELGATE_GPU_VENV and LABELGATE_GPU_WORK move the three folders.
# TensorRT itself (about 1 GB of wheels) is used where the machine has it, or installed from the index
# where one is reachable (LABELGATE_TENSORRT_PACKAGE, default tensorrt); without it the engine checks
# say "skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=${LABELGATE_GPU_WHEELS:-.build/gpu-wheels}
VENV=${LABELGATE_GPU_VENV:-.build/gpu-venv}
WORK=${LABELGATE_GPU_WORK:-.build/gpu-check}
BUDGET_S=${LABELGATE_GPU_CHECK_BUDGET_S:-450}
# What labelgate (model code, server, tests/gpu, bench) needs beyond the GPU machine's own Python,
# which holds a CUDA PyTorch, torchvision, transformers, timm, onnx, onnxruntime, numpy, pillow, opencv,
# prometheus-client, matplotlib and pytest. Pinned where labelgate's stubs and wheels need exactly
# these versions (grpcio 1.85.1 and protobuf 7 for the generated stubs), and where the models need
# the versions labelgate is tested with: transformers 5.24 (SAM 3's tracker on the detector's ViT,
# EdgeTAM's config, the demo writers; the machine's may be older) with the regex it requires at
# import, and timm 1.0.31 (EdgeTAM's RepViT backbone, pinned in pyproject.toml). Not av: tests/gpu
# track in-memory frames and the benchmark's main section decodes no video.
BINARY="grpcio==1.85.1 protobuf==7.36.2 pycocotools==2.0.11 regex==2026.11.19"
PURE="grpcio-health-checking==1.85.1 grpcio-reflection==1.85.1 redis==8.1.0 hydra-core==1.3.8 omegaconf==2.3.1
      portalocker==4.4.2 pytest-asyncio==1.5.0 setuptools==84.2.1 transformers==5.24.0 timm==1.0.31"
SOURCE_ONLY="sam2==1.1.0 antlr4-python3-runtime==4.9.3 iopath==0.1.10"
# The GPU machine's Python version (its binary wheels must match it).
DEVICE_PYTHON_VERSION=${LABELGATE_GPU_PYTHON_VERSION:-3.12}
# cuda for the real check; cpu for a dry run of this script on a machine without a GPU.
DEVICE=${LABELGATE_GPU_CHECK_DEVICE:-cuda}

if [ "${1:-}" = "prepare" ]; then
    mkdir -p "$WHEELS"
    "$PYTHON" -m pip download -q --no-deps -d "$WHEELS" --only-binary=:all: --python-version "$DEVICE_PYTHON_VERSION" \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 $BINARY $PURE || exit 1
    # sam2's metadata needs torch to be importable: the project's venv has it.
    PREPARE_PYTHON=$([ -x .venv/bin/python ] && echo .venv/bin/python || echo "$PYTHON")
    exec "$PREPARE_PYTHON" -m pip download -q --no-deps --no-binary=:all: --no-build-isolation -d "$WHEELS" $SOURCE_ONLY
fi

started=$(date +%s)
mkdir -p "$WORK"
log() { echo "[gpu_check $(($(date +%s) - started))s] $*"; }

if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV on top of $($PYTHON -c 'import sys, torch; print(sys.executable, "torch", torch.__version__)')"
    "$PYTHON" -m venv "$VENV" || exit 1
    # The machine's python3 may itself be a venv, whose packages --system-site-packages would not
    # reach: list its site-packages directories in a .pth file instead. The new venv's own packages
    # still come first.
    "$PYTHON" -c "import site; print('\n'.join(site.getsitepackages()))" \
        >"$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/device_python.pth" || exit 1
fi
PIP=("$VENV/bin/python" -m pip install -q --no-deps)
export SAM2_BUILD_CUDA=0 PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
FROM=()
if [ -d "$WHEELS" ]; then
    FROM=(--no-index --find-links "$WHEELS")
    log "installing from $WHEELS"
else
    log "installing from the package index"
fi
"${PIP[@]}" "${FROM[@]}" $BINARY $PURE || exit 1
"${PIP[@]}" "${FROM[@]}" --no-build-isolation $SOURCE_ONLY || exit 1
"${PIP[@]}" --no-build-isolation -e clients/python -e . >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; exit 1; }
if [ "$DEVICE" = cuda ] && ! "$VENV/bin/python" -c "import tensorrt" 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q "${LABELGATE_TENSORRT_PACKAGE:-tensorrt}" >"$WORK/tensorrt.log" 2>&1 \
        && log "installed TensorRT" || log "TensorRT not installed (no index reachable?): engine checks will be skipped"
fi
"$VENV/bin/python" - "$DEVICE" <<'EOF' || exit 1
import sys

import torch

if sys.argv[1] == "cuda":
    assert torch.cuda.is_available(), "no CUDA GPU visible: nothing to check"
    print("GPU:", torch.cuda.get_device_name(), "| torch", torch.__version__)
else:
    print("dry run on the CPU | torch", torch.__version__)
EOF

log "tests/gpu"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/gpu --junitxml="$WORK/junit.xml" -o junit_family=xunit1 \
    >"$WORK/pytest.log" 2>&1
tests_status=$?
tail -n 30 "$WORK/pytest.log"

left=$((BUDGET_S - ($(date +%s) - started)))
BENCH_OUT="$WORK/bench"
if [ $left -gt 60 ]; then
    log "labelgate bench --device $DEVICE (budget ${left}s, of which GPU rows $((left / 2))s)"
    timeout "$left" "$VENV/bin/python" -m labelgate.cli bench --device "$DEVICE" --out "$BENCH_OUT" \
        --work "$WORK/bench-work" --gpu-budget-s "$((left / 2))" $([ "$DEVICE" = cpu ] && echo --quick) \
        >"$WORK/bench.log" 2>&1 \
        || { log "labelgate bench did not finish"; tail -n 40 "$WORK/bench.log"; }
else
    log "no time left for labelgate bench"
fi

"$VENV/bin/python" - "$WORK/junit.xml" "$BENCH_OUT/bench.md" <<'EOF'
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

rows = []
junit, bench = Path(sys.argv[1]), Path(sys.argv[2])
if junit.exists():
    for case in ET.parse(junit).iter("testcase"):
        name = f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                reason = (found.get("message") or "").splitlines()[0][:70] if found.get("message") else ""
                outcome = {"failure": "FAILED", "error": "ERROR", "skipped": "skipped"}[tag] + (f": {reason}" if reason else "")
        rows.append((name, outcome))
else:
    rows.append(("tests/gpu", "no result (pytest did not run)"))
widths = [max(len(str(row[i])) for row in rows) for i in range(2)]
print()
print("  ".join(h.ljust(w) for h, w in zip(("tests/gpu check", "result"), widths)))
print("  ".join("-" * w for w in widths))
for row in rows:
    print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
print()
print(bench.read_text() if bench.exists() else "labelgate bench wrote no table (see its log above)")
EOF
log "done"
exit $((tests_status == 0 || tests_status == 5 ? 0 : 1))
