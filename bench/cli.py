"""`labelgate bench`: the benchmark command (`make bench` runs it)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def _bench(args: argparse.Namespace) -> int:
    from labelgate.bench.runner import run

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return run(Path(args.out), Path(args.work), args.quick, args.device, args.rounds, args.gpu_budget_s)


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "bench",
        help="benchmark labelgate side by side against the usual SAM 2 backend",
        description="Start real servers (labelgate with and without batching, and a baseline that runs set_image + "
        "predict on every request), measure them interleaved, and write a table, a JSON file and a PNG chart. "
        "Every figure is a ratio of two things measured side by side; absolute times only on a GPU.",
    )
    parser.add_argument("--quick", action="store_true", help="tiniest configuration (demo models, few rounds): what the tests run")
    parser.add_argument("--out", default="bench/results", help="where the table, JSON and chart go (default: %(default)s)")
    parser.add_argument("--work", default=".build/bench", help="model files and server logs (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds for the latency rows")
    parser.add_argument("--gpu-budget-s", type=float, default=300.0,
                        help="with CUDA: stop starting GPU measures (backends, then TensorRT engines) after this long; "
                        "the ones left read n/a (default: %(default)s)")
    parser.set_defaults(func=_bench)
