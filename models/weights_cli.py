"""`labelgate weights ...`: list, fetch and fake the model weights.

    labelgate weights list [--dir weights]
    labelgate weights fetch NAME [NAME ...] [--dir weights] [--force]
    labelgate weights demo DIR [--seed 0]

The top-level CLI calls `add_parser(subparsers)`; each subcommand's handler takes the parsed
args and returns the exit code.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from labelgate.models import checkpoints
from labelgate.models.demo import (
    EDGETAM_DEMO_DIRNAME,
    GROUNDING_DINO_DEMO_DIRNAME,
    SAM2_DEMO_CONFIG,
    SAM2_DEMO_FILENAME,
    SAM2_DEMO_OVERRIDES,
    SAM3_DEMO_DIRNAME,
    demo_paths,
    demo_present,
    ensure_demo_weights,
    extra_demo_paths,
)
from labelgate.models.weights import NoNetworkError, WeightsError, fetch, is_present

DEFAULT_WEIGHTS_DIR = "weights"

EXIT_OK, EXIT_FAILED, EXIT_NO_NETWORK = 0, 1, 2


def demo_serve_args(directory: Path | str) -> list[str]:
    """The `labelgate serve` arguments that serve the demo weights in `directory`."""
    sam2, gdino = demo_paths(directory)
    args = ["--sam2-config", SAM2_DEMO_CONFIG, "--sam2-checkpoint", str(sam2)]
    for override in SAM2_DEMO_OVERRIDES:
        args += ["--sam2-override", override]
    args += ["--gdino-model", str(gdino)]
    for kind, path in extra_demo_paths(directory).items():
        args += ["--model", f"{kind}={kind}:{path}"]
    return args


# --- argparse ------------------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `weights` and its subcommands on the top-level CLI's subparsers."""
    names = "\n".join(f"  {spec.name:24} {spec.kind:15} {spec.description}" for spec in checkpoints.SPECS.values())
    weights = subparsers.add_parser(
        "weights",
        help="list, download and verify model weights, or write offline demo weights",
        description=(
            "Manage model weights: the official SAM 2.1 checkpoints (dl.fbaipublicfiles.com), and "
            "Grounding DINO, SAM 3 and EdgeTAM models (Hugging Face Hub), or random-weight demo models "
            "for offline use.\n\n"
            f"Known models:\n{names}"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = weights.add_subparsers(dest="weights_command", metavar="COMMAND")
    commands.required = True

    listing = commands.add_parser(
        "list",
        help="show the known models, where they come from and whether they are downloaded",
        description="Show every known model: its kind, download source, local path under --dir and whether it is present there.",
    )
    _add_dir(listing)
    listing.set_defaults(func=_list)

    fetcher = commands.add_parser(
        "fetch",
        help="download official weights and check that they load",
        description=(
            "Download official weights into --dir and check that they load: a SAM 2.1 checkpoint must "
            "load strictly into the architecture of its bundled sam2 config, a Hub model directory "
            "must have a config of its kind (EdgeTAM's with the RepViT backbone), complete safetensors "
            "files and its processor files. Weights already present and valid are not downloaded again "
            "(unless --force).\n\n"
            f"Known models:\n{names}\n\n"
            "facebook/sam3 is gated: accept its license on https://huggingface.co/facebook/sam3, then set "
            "HF_TOKEN (or run `hf auth login`) before `labelgate weights fetch sam3`.\n\n"
            "Exit status: 0 all fetched, 1 a download or check failed (or the Hub refused access), 2 no "
            "network (the message says where to get the files by hand; `labelgate weights demo DIR` "
            "writes offline random weights)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fetcher.add_argument("names", nargs="+", metavar="NAME", help=f"model to fetch, e.g. {checkpoints.DEFAULT_SAM2} {checkpoints.DEFAULT_GROUNDING_DINO}")
    _add_dir(fetcher)
    fetcher.add_argument("--force", action="store_true", help="download again even if a valid copy is present")
    fetcher.add_argument("--quiet", action="store_true", help="no progress bars or status lines")
    fetcher.set_defaults(func=_fetch)

    demo = commands.add_parser(
        "demo",
        help="write small RANDOM-weight models for offline demos and tests (meaningless output)",
        description=(
            f"Write a shrunk SAM 2.1 (DIR/{SAM2_DEMO_FILENAME}), a tiny Grounding DINO "
            f"(DIR/{GROUNDING_DINO_DEMO_DIRNAME}/), SAM 3 (DIR/{SAM3_DEMO_DIRNAME}/) and EdgeTAM "
            f"(DIR/{EDGETAM_DEMO_DIRNAME}/) with RANDOM weights, in the official formats, "
            "unless they are already there. They load through the same code as the real weights, so the "
            "whole service runs without a network, but their masks and boxes are meaningless. Prints the "
            "`labelgate serve` flags that use them."
        ),
    )
    demo.add_argument("directory", metavar="DIR", type=Path, help="directory to write the demo weights into")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the weights (default: 0)")
    demo.set_defaults(func=_demo)
    return weights


def _add_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", type=Path, default=Path(DEFAULT_WEIGHTS_DIR), metavar="DIR",
        help=f"weights directory (default: ./{DEFAULT_WEIGHTS_DIR})",
    )


# --- handlers ------------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    defaults = {checkpoints.DEFAULT_SAM2, checkpoints.DEFAULT_GROUNDING_DINO}
    rows = [("NAME", "KIND", "SOURCE", "LOCAL PATH", "PRESENT")]
    for spec in checkpoints.SPECS.values():
        name = spec.name + (" (default)" if spec.name in defaults else "")
        present = "yes" if is_present(spec, args.dir) else "no"
        rows.append((name, spec.kind, spec.source, str(spec.local_path(args.dir)), present))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return EXIT_OK


def _fetch(args: argparse.Namespace) -> int:
    unknown = [name for name in args.names if name not in checkpoints.SPECS]
    if unknown:
        print(f"unknown model {', '.join(unknown)}; known: {', '.join(checkpoints.SPECS)}", file=sys.stderr)
        return EXIT_FAILED
    status = EXIT_OK
    for name in dict.fromkeys(args.names):
        try:
            fetch(name, args.dir, force=args.force, progress=not args.quiet)
        except NoNetworkError as error:
            print(f"error: {error}", file=sys.stderr)
            status = max(status, EXIT_NO_NETWORK)
        except WeightsError as error:
            print(f"error: {error}", file=sys.stderr)
            status = max(status, EXIT_FAILED)
    return status


def _demo(args: argparse.Namespace) -> int:
    before = demo_present(args.directory)
    ensure_demo_weights(args.directory, seed=args.seed)
    for path, was_there in before.items():
        print(f"{'already present' if was_there else 'wrote'}: {path}")
    flags = " ".join(shlex.quote(arg) for arg in demo_serve_args(args.directory))
    print(
        "\nThese are RANDOM weights: the masks and boxes they give are meaningless. They only let the\n"
        "service run end to end without a network. For real results run\n"
        f"  labelgate weights fetch {checkpoints.DEFAULT_SAM2} {checkpoints.DEFAULT_GROUNDING_DINO}\n"
        "\nServe the demo weights with:\n"
        f"  labelgate serve {flags}\n"
        f"or simply:\n  labelgate serve --demo-weights {shlex.quote(str(args.directory))}"
    )
    return EXIT_OK
