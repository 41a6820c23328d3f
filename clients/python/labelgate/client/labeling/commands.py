"""`labelgate label` (label a dataset from a text ontology; `label merge` joins shards) and
`labelgate embed` (warm a fleet's caches). Registered by `add_labeling_commands(subparsers)`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path

from labelgate.client.arg_types import fraction, whole
from labelgate.client.client import DEFAULT_TARGET
from labelgate.client.errors import LabelgateClientError
from labelgate.client.fleet_args import fleet_client, run_command
from labelgate.client.labeling.assemble import labeled_images
from labelgate.client.labeling.exporting import (
    check_formats,
    export_dataset,
    exporter_options,
)
from labelgate.client.labeling.job import (
    JobOptions,
    TooManyFailures,
    in_shard,
    run_labeling,
)
from labelgate.client.labeling.keys import parse_shard
from labelgate.client.labeling.manifest import MANIFEST_NAME, Manifest
from labelgate.client.labeling.ontology import Ontology, OntologyError, load_ontology
from labelgate.client.labeling.plan import ModelChoice, choose_models, prompt_tasks
from labelgate.client.labeling.records import Provenance
from labelgate.client.labeling.remote_sources import (
    add_remote_flags,
    add_remote_source_flags,
    is_remote,
    open_remote,
    remote_items,
    source_images,
)
from labelgate.client.labeling.sources import iter_source, keep_key
from labelgate.client.labeling.summary import summary_dict, summary_lines, write_summary
from labelgate.client.labeling.window import bounded_map
from labelgate.client.transport import SERVER_ENV

DEFAULT_FORMATS = "coco"
DEFAULT_VAL_FRACTION = 0.1


def add_labeling_commands(subparsers: argparse._SubParsersAction) -> None:
    label = subparsers.add_parser(
        "label",
        help="label a whole dataset from a text ontology (resumable; COCO, YOLO, Label Studio, CVAT)",
        description=(
            "Label every image of SOURCE (a folder, a list file, a COCO JSON, a Label Studio project or a CVAT\n"
            "task) with the classes of an ontology file, through a labelgate server or fleet. Results go to a\n"
            "resume manifest in --out as\n"
            "images finish: a rerun skips finished images, a changed ontology redoes only what it changes.\n"
            "At the end the dataset is written in each --format. See docs/labeling.md."
        ),
        epilog=(
            "examples:\n"
            "  labelgate label photos/ --ontology classes.yaml --out dataset/ --format coco,yolo\n"
            "  labelgate label photos/ --ontology classes.yaml --out shard-0/ --shard 0/4 --no-export\n"
            "  labelgate label merge shard-0/ shard-1/ shard-2/ shard-3/ --out dataset/ --format coco\n"
            "  labelgate label --export-only --out dataset/ --format label-studio\n"
            "  LABEL_STUDIO_API_KEY=... labelgate label ls://localhost:8080/3 --ontology classes.yaml --out ls-3/ "
            "--push-predictions\n"
            "  CVAT_ACCESS_TOKEN=... labelgate label cvat://cvat.example.com/12 --ontology classes.yaml --out cvat-12/ "
            "--push-annotations"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    label.add_argument("paths", nargs="*", metavar="SOURCE",
                       help="a folder (searched recursively), a list file (one path a line), a COCO JSON, a Label "
                            "Studio project (ls://HOST:PORT/ID) or a CVAT task (cvat://HOST/ID); or 'merge SHARD_DIR...'")
    label.add_argument("--ontology", type=Path, metavar="FILE", help="classes and their prompts (YAML; see docs/labeling.md)")
    label.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the manifest and the dataset go")
    label.add_argument("--format", default=DEFAULT_FORMATS, metavar="F[,F]",
                       help="dataset formats to write, comma-separated: coco, yolo, label-studio, cvat, ... "
                            "(default: %(default)s; '' writes none)")
    label.add_argument("--mask-format", choices=("rle", "polygons"),
                       help="masks in COCO / CVAT files as RLE or polygons (default: COCO rle, CVAT polygons)")
    label.add_argument("--yolo-task", choices=("segment", "detect"), default="segment",
                       help="YOLO labels as polygons (segment) or boxes (detect) (default: %(default)s)")
    label.add_argument("--glob", default="", metavar="PATTERN",
                       help="only keys (paths relative to SOURCE) matching this pattern; '*' also matches '/'")
    label.add_argument("--image-root", type=Path, metavar="DIR",
                       help="where relative paths in a list file or COCO JSON start (default: the file's folder)")
    label.add_argument("--model", default="", metavar="NAME",
                       help="a SAM 3 model (text -> masks in one model) or the SAM 2 model (default: the ontology's, "
                            "else the server's default, Grounding DINO + SAM 2)")
    label.add_argument("--detector-model", default="", metavar="NAME", help="the Grounding DINO model (with SAM 2)")
    label.add_argument("--val-fraction", type=fraction("val fraction"), metavar="F",
                       help=f"share of images in the val split, chosen by a hash of each key "
                            f"(default: the manifest's, else {DEFAULT_VAL_FRACTION})")
    label.add_argument("--shard", metavar="I/N",
                       help="label only shard I of N (by a hash of each key); 'N' alone takes I from $JOB_COMPLETION_INDEX")
    label.add_argument("--limit", type=whole("limit", 0), metavar="N", help="label at most N images in this run")
    label.add_argument("--max-failures", type=whole("max failures", 0), metavar="N", help="stop once more than N images have failed")
    label.add_argument("--export-only", action="store_true", help="write the dataset from the manifest; no server needed")
    label.add_argument("--no-export", action="store_true", help="label only (e.g. a shard, merged later)")
    _add_job_flags(label)
    add_remote_flags(label)
    label.set_defaults(func=_label)

    embed = subparsers.add_parser(
        "embed",
        help="warm a server's (or fleet's) embedding caches for a dataset ahead of labelers",
        description="Send every image of SOURCE to Embed once, so that later clicks and labeling jobs hit the cache.",
        epilog="example:\n  labelgate embed photos/ --server 10.0.0.5:50051 --server 10.0.0.6:50051",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    embed.add_argument("source", nargs="?", default="", metavar="SOURCE",
                       help="a folder, a list file, a COCO JSON, a Label Studio project (ls://HOST:PORT/ID) or a CVAT "
                            "task (cvat://HOST/ID)")
    embed.add_argument("--model", default="", metavar="NAME", help="the model whose cache to fill (default: the server's)")
    embed.add_argument("--glob", default="", metavar="PATTERN", help="only keys matching this pattern")
    embed.add_argument("--image-root", type=Path, metavar="DIR", help="where relative paths in a list file or COCO JSON start")
    embed.add_argument("--shard", metavar="I/N", help="only shard I of N")
    _add_job_flags(embed)
    add_remote_source_flags(embed)
    embed.set_defaults(func=_embed)


def _add_job_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", action="append", default=[], metavar="HOST:PORT",
                        help=f"a labelgate server; repeat (or comma-separate) for a fleet: each image sticks to one "
                             f"replica (default: ${SERVER_ENV} or {DEFAULT_TARGET})")
    parser.add_argument("--servers-dns", metavar="HOST:PORT",
                        help="every address this name resolves to, e.g. a Kubernetes headless Service")
    parser.add_argument("--concurrency", type=whole("concurrency", 1), default=8, metavar="N",
                        help="images in flight at once (default: %(default)s); enough to keep the servers' batchers full")
    parser.add_argument("--timeout", type=float, default=120.0, metavar="S", help="seconds per call (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _label(args: argparse.Namespace) -> int:
    try:
        return run_command(lambda: _label_or_merge(args), args, usage_errors=(OntologyError, ValueError, OSError),
                           failures=(TooManyFailures,))
    except KeyboardInterrupt:
        print(f"interrupted: finished images are kept in {args.out / MANIFEST_NAME}; run the same command again "
              "to go on", file=sys.stderr)
        return 130


def _label_or_merge(args: argparse.Namespace) -> int:
    if args.paths[:1] == ["merge"]:
        return _merge(args, [Path(p) for p in args.paths[1:]])
    if args.export_only:
        return _export_only(args)
    if len(args.paths) != (0 if args.label_studio_url else 1) or args.ontology is None:
        raise ValueError("give one SOURCE and --ontology FILE (or 'merge SHARD_DIR...', or --export-only)")
    return _label_source(args, args.paths[0] if args.paths else "")


def _label_source(args: argparse.Namespace, source: str) -> int:
    ontology = load_ontology(args.ontology)
    formats = [] if args.no_export else check_formats(args.format.split(","))
    shard = parse_shard(args.shard) if args.shard else None
    args.out.mkdir(parents=True, exist_ok=True)
    with fleet_client(args) as client, Manifest.in_dir(args.out) as manifest, open_remote(args, ontology, manifest) as remote:
        models = choose_models(client.list_models(), args.model or ontology.model, args.detector_model or ontology.detector)
        _remember(manifest, ontology, models, _val_fraction(args, manifest))
        tasks = prompt_tasks(ontology, models)

        def items():
            found = remote.items(args.glob) if remote else iter_source(Path(source), args.glob, args.image_root)
            return in_shard(found, shard)

        total = None if args.no_progress else sum(1 for _ in items())
        options = JobOptions(args.concurrency, args.limit, args.max_failures, progress=not args.no_progress)
        counters = run_labeling(client, items(), manifest, {t.key: t for t in tasks.values()}.values(), args.out,
                                options, total)

        def push(provenance: Provenance) -> list[str]:
            images = labeled_images(manifest, ontology, tasks, _val_fraction(args, manifest))
            return remote.push(manifest, images, ontology, provenance, args.out,
                               exporter_options(ontology, _export_options(args)))

        # A Label Studio source's tasks JSON points at the images where Label Studio keeps them.
        image_urls = remote.image_references(args.glob) if remote is not None and "label-studio" in formats else {}
        return _finish(args, manifest, ontology, models, tasks, formats, counters, push if remote is not None else None,
                       {"image_urls": image_urls} if image_urls else {})


def _export_only(args: argparse.Namespace) -> int:
    formats = check_formats(args.format.split(","))
    if not (args.out / MANIFEST_NAME).is_file():
        raise ValueError(f"{args.out}: no {MANIFEST_NAME} here; run `labelgate label SOURCE --out {args.out}` first")
    with Manifest.in_dir(args.out) as manifest:
        ontology, models = _stored(manifest, args.ontology)
        return _finish(args, manifest, ontology, models, prompt_tasks(ontology, models), formats, None)


def _merge(args: argparse.Namespace, shards: list[Path]) -> int:
    """Shard manifests into --out's, then the dataset from it: the same as one unsharded run."""
    if not shards:
        raise ValueError("label merge: give the shard folders, e.g. `labelgate label merge shard-0/ shard-1/ --out all/`")
    formats = [] if args.no_export else check_formats(args.format.split(","))
    manifests = [shard / MANIFEST_NAME for shard in shards]
    missing = [str(path) for path in manifests if not path.is_file()]
    if missing:
        raise ValueError(f"label merge: no manifest at {', '.join(missing)}")
    with Manifest.in_dir(args.out) as merged:
        for path in manifests:
            with Manifest(path) as shard:
                mine = (merged.meta("ontology"), merged.meta("models"))
                theirs = (shard.meta("ontology"), shard.meta("models"))
            if mine[0] is not None and mine != theirs:
                raise ValueError(f"label merge: {path} was labeled with another ontology or models than the shards before it")
            merged.merge_from(path)
        ontology, models = _stored(merged, args.ontology)
        return _finish(args, merged, ontology, models, prompt_tasks(ontology, models), formats, None)


def _finish(args, manifest: Manifest, ontology: Ontology, models: ModelChoice, tasks, formats, counters,
            push: Callable[[Provenance], list[str]] | None = None, source_options: dict | None = None) -> int:
    """Exports, pushes to the source's tool (`push`, given a remote source), writes and prints the summary.
    `source_options`: exporter options that only the source knows (see _label_source)."""
    val_fraction = _val_fraction(args, manifest)
    provenance = _provenance(args, manifest, ontology, models)
    report = export_dataset(manifest, ontology, tasks, provenance, args.out, formats, val_fraction,
                            {**_export_options(args), **(source_options or {})})
    summary = summary_dict(counters, report, manifest.counts(), ontology.class_names, push(provenance) if push else [])
    write_summary(summary, args.out)
    print("\n".join(summary_lines(summary, args.out)))
    return 0


def _provenance(args, manifest: Manifest, ontology: Ontology, models: ModelChoice) -> Provenance:
    return Provenance(dict(sorted(models.versions.items())), ontology.hash,
                      {"val_fraction": _val_fraction(args, manifest), "nms": asdict(ontology.nms),
                       "segmenter": models.segmenter, "detector": models.detector})


def _export_options(args: argparse.Namespace) -> dict:
    kept = source_images(args.out)  # a Label Studio / CVAT source's downloaded images, for YOLO
    return {"task": args.yolo_task, **({"mask_format": args.mask_format} if args.mask_format else {}),
            **({"image_root": kept} if kept else {})}


def _val_fraction(args: argparse.Namespace, manifest: Manifest) -> float:
    """--val-fraction, else the one the manifest was labeled with, else 0.1."""
    return args.val_fraction if args.val_fraction is not None else manifest.meta("val_fraction", DEFAULT_VAL_FRACTION)


def _remember(manifest: Manifest, ontology: Ontology, models: ModelChoice, val_fraction: float) -> None:
    manifest.set_meta("ontology", ontology.to_dict())
    manifest.set_meta("models", asdict(models))
    manifest.set_meta("val_fraction", val_fraction)


def _stored(manifest: Manifest, ontology_path: Path | None) -> tuple[Ontology, ModelChoice]:
    models = manifest.meta("models")
    if models is None:
        raise ValueError(f"{manifest.path}: no finished run recorded here")
    if ontology_path is not None:
        return load_ontology(ontology_path), ModelChoice(**models)
    return _ontology_from_dict(manifest.meta("ontology")), ModelChoice(**models)


def _ontology_from_dict(data: dict) -> Ontology:
    """The stored (normalised) ontology back as an Ontology."""
    classes = {c["name"]: {k: v for k, v in c.items() if k != "name"} for c in data["classes"]}
    for spec in classes.values():
        spec["prompts"] = list(spec["prompts"])
    return Ontology.from_dict({"classes": classes, "nms": data["nms"], "model": data["model"], "detector": data["detector"]})


def _embed(args: argparse.Namespace) -> int:
    return run_command(lambda: _embed_source(args), args)


def _embed_source(args: argparse.Namespace) -> int:
    shard = parse_shard(args.shard) if args.shard else None
    if not args.source and not args.label_studio_url:
        raise ValueError("give a SOURCE (a folder, list file, COCO JSON, ls://HOST:PORT/ID or cvat://HOST/ID)")
    with ExitStack() as stack:
        if is_remote(args.source, args):
            remote = stack.enter_context(remote_items(args, args.source))
            listing = lambda: (item for item in remote() if keep_key(item.key, args.glob))  # noqa: E731
        else:
            listing = lambda: iter_source(Path(args.source), args.glob, args.image_root)  # noqa: E731
        embedded, hits, failed = _embed_all(args, lambda: in_shard(listing(), shard))
    print(f"embedded {embedded} images ({hits} were already cached), {failed} failed")
    return 0


def _embed_all(args: argparse.Namespace, items) -> tuple[int, int, int]:
    from tqdm import tqdm

    total = None if args.no_progress else sum(1 for _ in items())
    embedded = hits = failed = 0
    with fleet_client(args) as client, tqdm(total=total, unit="img", disable=args.no_progress) as bar:
        for item, result, error in bounded_map(lambda i: client.embed(i.read(), model=args.model), items(),
                                               args.concurrency):
            bar.update()
            if error is not None:
                if not isinstance(error, (LabelgateClientError, OSError)) or getattr(error, "unreachable", False):
                    raise error
                failed += 1
                print(f"{item.key}: {error}", file=sys.stderr)
                continue
            embedded += 1
            hits += result.cache_hit
    return embedded, hits, failed


