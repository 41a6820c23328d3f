"""`labelgate bench`: the benchmark command (`make bench` runs it)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

# concepts: SAM 3's rows, slow at its real size; labeling: `labelgate label` jobs; video: tracking (all opt-in)
SECTIONS = ("main", "concepts", "labeling", "video")


def _bench(args: argparse.Namespace) -> int:
    from labelgate.bench.runner import run

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.fuzz is not None:
        from labelgate.bench.fuzz_runner import run_fuzz

        return run_fuzz(args.fuzz, args.fuzz_seed, Path(args.work), Path(args.out))
    if args.soak is not None:
        from labelgate.bench.soak_bench import run as run_soak

        return run_soak(Path(args.out), Path(args.work), args.soak, args.quick, args.device)
    return run(Path(args.out), Path(args.work), args.quick, args.device, args.rounds, args.gpu_budget_s,
               tuple(dict.fromkeys(args.sections)), args.labeling_images, args.video_frames)


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
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=["main"],
                        help="what to measure: main (the table, EdgeTAM's row included) and/or concepts (SAM 3 against "
                        "Grounding DINO + SAM 2, at their real sizes: slow, about 10 minutes on 2 cores), labeling "
                        "(`labelgate label` jobs against a plain in-process loop; resume; job memory) and/or video "
                        "(tracking through the service against upstream's SAM2VideoPredictor; memory; corrections), "
                        "both with the demo models "
                        "(default: %(default)s)")
    parser.add_argument("--labeling-images", type=int, default=None, metavar="N",
                        help="labeling section: images a job labels in the throughput and resume rows (default: 40; "
                        "--quick 4); the memory row compares 200 images with 20")
    parser.add_argument("--video-frames", type=int, default=None, metavar="N",
                        help="video section: the memory rows' clip length, compared after N/10 frames and after N "
                        "(default: 300)")
    parser.add_argument("--gpu-budget-s", type=float, default=300.0,
                        help="with CUDA: stop starting GPU measures (backends, then TensorRT engines) after this long; "
                        "the ones left read n/a (default: %(default)s)")
    parser.add_argument("--soak", type=float, default=None, metavar="SECONDS",
                        help="instead of the table: callers mixing clicks, Detect and text Segment against one server "
                        "for SECONDS; writes soak.md and soak.json (answers against the idle ones, sheds, RSS)")
    parser.add_argument("--fuzz", type=int, default=None, metavar="N",
                        help="instead of the table: N generated requests (odd images, numbers, strings, raw bytes) to "
                        "every RPC of a demo server; writes fuzz.md, exit 1 on any answer off the contract")
    parser.add_argument("--fuzz-seed", type=int, default=0, help="the fuzz run's seed: the same seed sends the same requests")
    parser.set_defaults(func=_bench)
