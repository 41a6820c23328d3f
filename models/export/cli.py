"""`labelgate export ...`: from checkpoints to a Triton model repository.

    labelgate export onnx --out DIR [--sam2-config C --sam2-checkpoint P | --demo-weights DIR] [--gdino-model DIR]
    labelgate export triton-repo --onnx DIR --out REPO --flavor python|onnxruntime|tensorrt [batching options]
    labelgate export tensorrt --onnx DIR --repo REPO [--precision fp16|fp32] [batching options]

The top-level CLI calls `add_parser(subparsers)`; each handler returns the exit code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_UNAVAILABLE = 0, 1, 2


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from labelgate.models.default_pair import DEFAULT_GDINO_MODEL, DEFAULT_SAM2_CHECKPOINT, DEFAULT_SAM2_CONFIG

    export = subparsers.add_parser(
        "export",
        help="export the models to ONNX, TensorRT engines and a Triton model repository",
        description=(
            "Export SAM 2 and Grounding DINO for Triton Inference Server: `onnx` writes the graphs, "
            "`triton-repo` turns them into a model repository, `tensorrt` builds TensorRT engines into one. "
            "Then serve with `labelgate serve --backend triton --triton-url HOST:PORT`."
        ),
    )
    commands = export.add_subparsers(dest="export_command", metavar="COMMAND")
    commands.required = True

    onnx = commands.add_parser(
        "onnx",
        help="write the SAM 2 encoder, SAM 2 decoder and Grounding DINO as ONNX files",
        description=(
            "Write sam2_image_encoder.onnx (fixed input size, both high-res feature maps, no_mem_embed applied), "
            "sam2_mask_decoder.onnx (dynamic batch and point count; low-res logits and scores), grounding_dino.onnx "
            "(fixed image size, tokenisation outside) and labelgate.json into --out, and check each graph against "
            "PyTorch with ONNX Runtime."
        ),
    )
    onnx.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory for the ONNX files")
    onnx.add_argument("--sam2-config", default=DEFAULT_SAM2_CONFIG, help=f"bundled sam2 config (default: {DEFAULT_SAM2_CONFIG})")
    onnx.add_argument("--sam2-checkpoint", type=Path, default=Path(DEFAULT_SAM2_CHECKPOINT), help="SAM 2 checkpoint .pt")
    onnx.add_argument("--sam2-override", action="append", default=[], metavar="KEY=VALUE", help="hydra override (repeatable)")
    onnx.add_argument("--sam2-name", default="", help="model name clients use (default: the config's name)")
    onnx.add_argument("--gdino-model", default=DEFAULT_GDINO_MODEL, help="Grounding DINO save_pretrained directory ('' = none)")
    onnx.add_argument(
        "--gdino-image-size", default="", metavar="HxW",
        help="fixed Grounding DINO input size (default: the processor's shortest_edge x longest_edge, 800x1333 for the official models)",
    )
    onnx.add_argument("--demo-weights", type=Path, default=None, metavar="DIR", help="export the random demo weights in DIR (written if missing)")
    onnx.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch check")
    onnx.set_defaults(func=_onnx)

    repo = commands.add_parser(
        "triton-repo",
        help="write a Triton model repository from `export onnx` output",
        description=(
            "Write <out>/{sam2_image_encoder,sam2_mask_decoder,grounding_dino}/config.pbtxt + 1/<artifact>, with dynamic "
            "batching and instance groups. Flavors: tensorrt (model.plan, GPU; needs TensorRT), onnxruntime (model.onnx on "
            "Triton's ONNX Runtime backend), python (model.onnx run by ONNX Runtime inside Triton's python backend, CPU)."
        ),
    )
    repo.add_argument("--onnx", type=Path, required=True, metavar="DIR", help="`labelgate export onnx` output directory")
    repo.add_argument("--out", type=Path, required=True, metavar="REPO", help="model repository to write")
    repo.add_argument("--flavor", choices=("tensorrt", "onnxruntime", "python"), required=True)
    _add_repository_options(repo)
    _add_engine_options(repo)
    repo.set_defaults(func=_triton_repo)

    engines = commands.add_parser(
        "tensorrt",
        help="build TensorRT engines into a Triton model repository (needs TensorRT and a GPU)",
        description="Build one TensorRT engine per ONNX graph and write the tensorrt-flavor model repository around them.",
    )
    engines.add_argument("--onnx", type=Path, required=True, metavar="DIR", help="`labelgate export onnx` output directory")
    engines.add_argument("--repo", type=Path, required=True, metavar="REPO", help="model repository to write")
    _add_repository_options(engines)
    _add_engine_options(engines)
    engines.set_defaults(func=_tensorrt, flavor="tensorrt")
    return export


def _add_repository_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-batch-size", type=int, default=8, help="Triton max_batch_size and engine profile maximum (default: 8)")
    parser.add_argument(
        "--preferred-batch-size", type=int, action="append", default=None, metavar="N",
        help="dynamic batching preferred size (repeatable; default: 4 and the max batch size)",
    )
    parser.add_argument("--max-queue-delay-us", type=int, default=2000, help="dynamic batching max queue delay (default: 2000)")
    parser.add_argument("--instance-kind", choices=("auto", "gpu", "cpu"), default="auto",
                        help="instance group kind (default: GPU for tensorrt/onnxruntime, CPU for python)")
    parser.add_argument("--instances", type=int, default=1, help="instances per model (default: 1)")
    parser.add_argument("--onnxruntime-threads", type=int, default=0, help="python flavor: ONNX Runtime intra-op threads (0 = its default)")


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", choices=("fp16", "fp32"), default="fp16", help="TensorRT engine precision (default: fp16)")
    parser.add_argument("--max-point-tokens", type=int, default=66, help="engine profile maximum of SAM 2 prompt tokens (default: 66)")
    parser.add_argument("--workspace-gib", type=float, default=8.0, help="TensorRT builder workspace (default: 8 GiB)")


def _repository_options(args: argparse.Namespace):
    from labelgate.models.export.triton_repository import RepositoryOptions

    preferred = tuple(args.preferred_batch_size) if args.preferred_batch_size else tuple(sorted({min(4, args.max_batch_size), args.max_batch_size}))
    return RepositoryOptions(
        flavor=args.flavor,
        max_batch_size=args.max_batch_size,
        preferred_batch_sizes=preferred,
        max_queue_delay_us=args.max_queue_delay_us,
        instance_kind=args.instance_kind,
        instance_count=args.instances,
        onnxruntime_threads=args.onnxruntime_threads,
    ).validate()


def _engine_builder(args: argparse.Namespace):
    from labelgate.models.export.tensorrt import EngineOptions, build_engine, require_tensorrt

    require_tensorrt()  # before anything is written
    options = EngineOptions(
        precision=args.precision,
        max_batch_size=args.max_batch_size,
        opt_batch_size=min(4, args.max_batch_size),
        max_point_tokens=args.max_point_tokens,
        opt_point_tokens=min(2, args.max_point_tokens),
        workspace_gib=args.workspace_gib,
    ).validate()
    return lambda onnx_path, plan_path: build_engine(onnx_path, plan_path, options)


def _parse_size(text: str) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--gdino-image-size {text!r}: expected HxW, e.g. 800x1333") from None
    if height < 32 or width < 32:
        raise ValueError(f"--gdino-image-size {text!r}: too small")
    return height, width


def _onnx(args: argparse.Namespace) -> int:
    from labelgate.models.export.onnx import export_grounding_dino, export_sam2, write_manifest

    try:
        gdino_size = _parse_size(args.gdino_image_size)
        sam2, gdino_dir = _load_models(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"labelgate export onnx: {error}", file=sys.stderr)
        return EXIT_FAILED
    exported = export_sam2(sam2.model, sam2.info.name, sam2.info.version, args.out, check=not args.no_check)
    if gdino_dir is not None:
        model, processor, name, version = _load_grounding_dino(gdino_dir)
        exported.append(export_grounding_dino(model, processor, name, version, args.out, gdino_size, check=not args.no_check))
    write_manifest(args.out, exported)
    for item in exported:
        diff = ", ".join(f"{name} {value:.1e}" for name, value in item.max_abs_diff.items()) or "not checked"
        print(f"wrote {item.path} (max |ONNX Runtime - PyTorch|: {diff})")
    return EXIT_OK


def _load_models(args: argparse.Namespace):
    from labelgate.models.demo import SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES
    from labelgate.models.sam2.torch_backend import Sam2TorchBackend
    from labelgate.models.demo import ensure_demo_weights

    config, checkpoint, overrides, gdino, name = (
        args.sam2_config, args.sam2_checkpoint, tuple(args.sam2_override), args.gdino_model, args.sam2_name
    )
    if args.demo_weights:
        checkpoint, gdino_dir = ensure_demo_weights(args.demo_weights)
        config, overrides, gdino = SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES + overrides, str(gdino_dir)
        name = name or "sam2_demo"  # the name `labelgate serve --demo-weights` uses
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"--sam2-checkpoint {checkpoint}: no such file (fetch it with `labelgate weights fetch`)")
    if gdino and not Path(gdino, "config.json").is_file():
        raise FileNotFoundError(f"--gdino-model {gdino}: not a save_pretrained directory (pass --gdino-model '' to skip it)")
    sam2 = Sam2TorchBackend.from_checkpoint(config, Path(checkpoint), "cpu", overrides, name=name)
    return sam2, (Path(gdino) if gdino else None)


def _load_grounding_dino(directory: Path):
    from transformers import AutoProcessor, GroundingDinoForObjectDetection

    from labelgate.models.weights_hash import pretrained_version

    processor = AutoProcessor.from_pretrained(directory)
    model = GroundingDinoForObjectDetection.from_pretrained(directory).eval()
    # Name and version exactly as GroundingDinoBackend.from_pretrained gives them.
    return model, processor, directory.resolve().name, pretrained_version(directory)


def _triton_repo(args: argparse.Namespace) -> int:
    from labelgate.models.export.tensorrt import TensorRTUnavailable
    from labelgate.models.export.triton_repository import write_repository

    try:
        options = _repository_options(args)
        builder = _engine_builder(args) if options.flavor == "tensorrt" else None
        configs = write_repository(args.onnx, args.out, options, builder)
    except TensorRTUnavailable as error:
        print(f"labelgate export: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (ValueError, FileNotFoundError) as error:
        print(f"labelgate export: {error}", file=sys.stderr)
        return EXIT_FAILED
    for config in configs:
        print(f"wrote {config.parent} ({options.flavor})")
    print(f"serve it: tritonserver --model-repository {args.out.resolve()}  (see docs/triton.md)")
    return EXIT_OK


def _tensorrt(args: argparse.Namespace) -> int:
    args.out = args.repo
    return _triton_repo(args)


def main(argv: list[str] | None = None) -> int:
    """`python -m labelgate.models.export.cli ...`: the export commands alone (no gRPC client imports)."""
    parser = argparse.ArgumentParser(prog="labelgate")
    add_parser(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
