"""`labelgate label` on an annotation tool's data: a Label Studio project (`ls://HOST:PORT/ID`, or
`--label-studio-url URL --project ID`) or a CVAT task (`cvat://HOST/ID`) as the source, and the labels
pushed back into it (`--push-predictions`, `--push-annotations`). See docs/labeling.md."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from functools import partial
from pathlib import Path

from labelgate.client.labeling import cvat_source, label_studio_source
from labelgate.client.labeling.export.common import model_version
from labelgate.client.labeling.label_studio_api import API_KEY_ENV, LabelStudioApi
from labelgate.client.labeling.label_studio_push import check_controls, push_predictions
from labelgate.client.labeling.manifest import Manifest
from labelgate.client.labeling.ontology import Ontology
from labelgate.client.labeling.records import LabeledImage, Provenance
from labelgate.client.labeling.sources import RemoteItem, keep_key

PUSHED_CVAT_DIR = "cvat-push"  # under --out: the COCO 1.0 file uploaded to the CVAT task
SOURCE_IMAGES_DIR = "source-images"  # under --out: downloaded images, by key, for the YOLO images/ folder


def add_remote_source_flags(parser: argparse.ArgumentParser):
    """The flags that name an annotation tool's data as the source; returns their group."""
    group = parser.add_argument_group("annotation tools as the source (SOURCE ls://HOST:PORT/ID or cvat://HOST/ID)")
    group.add_argument("--label-studio-url", metavar="URL", help="a Label Studio (any URL), with --project, instead of SOURCE")
    group.add_argument("--project", type=int, metavar="ID", help="the Label Studio project whose tasks to read")
    group.add_argument("--ls-token", metavar="KEY", default="",
                       help=f"Label Studio API key (default: ${API_KEY_ENV}); a personal access token or a legacy token")
    return group


def add_remote_flags(parser: argparse.ArgumentParser) -> None:
    group = add_remote_source_flags(parser)
    group.add_argument("--push-predictions", action="store_true",
                       help="create a prediction on each labeled Label Studio task (once per model_version)")
    group.add_argument("--push-annotations", action="store_true",
                       help="upload the labels to the CVAT task as COCO 1.0 (replaces the task's annotations; "
                            "skipped when the same labels were uploaded before)")


@contextmanager
def open_remote(args: argparse.Namespace, ontology: Ontology, manifest: Manifest) -> Iterator[RemoteSource | None]:
    """The remote source SOURCE (or the flags) names, checked for a push before any labeling; None
    for a local SOURCE. When YOLO is among the formats, it keeps the images it downloads (YOLO
    datasets hold their images)."""
    text = args.paths[0] if args.paths else ""
    keep = Path(args.out) / SOURCE_IMAGES_DIR if "yolo" in args.format.split(",") and not args.no_export else None
    if args.label_studio_url or text.startswith(label_studio_source.SCHEME):
        if args.push_annotations:
            raise ValueError("--push-annotations is for a CVAT task; a Label Studio project takes --push-predictions")
        project = _label_studio_project(args, text, ontology)
        yield RemoteSource(project.items, _push_to_label_studio(project) if args.push_predictions else None,
                           keep, manifest)
    elif text.startswith(cvat_source.SCHEME):
        if args.push_predictions:
            raise ValueError("--push-predictions is for a Label Studio project; a CVAT task takes --push-annotations")
        with _cvat_task(args, text, ontology) as task:
            yield RemoteSource(task.items, _push_to_cvat(task) if args.push_annotations else None, keep, manifest)
    else:
        if args.push_predictions or args.push_annotations:
            raise ValueError("--push-predictions / --push-annotations need a Label Studio or CVAT SOURCE "
                             "(ls://HOST:PORT/ID, cvat://HOST/ID)")
        yield None


def is_remote(text: str, args: argparse.Namespace) -> bool:
    return bool(args.label_studio_url) or text.startswith((label_studio_source.SCHEME, cvat_source.SCHEME))


@contextmanager
def remote_items(args: argparse.Namespace, text: str) -> Iterator[Callable[[], Iterable[RemoteItem]]]:
    """The images of the Label Studio project or CVAT task `text` (or the flags) names, to read only."""
    if args.label_studio_url or text.startswith(label_studio_source.SCHEME):
        yield _label_studio_project(args, text, None).items
    else:
        with _cvat_task(args, text, None) as task:
            yield task.items


class RemoteSource:
    """listing: the tool's images; push(manifest, images, ontology, provenance, out_dir, export_options)
    -> lines to print, or None when no push was asked for."""

    def __init__(self, listing: Callable[[], Iterable[RemoteItem]], push: Callable[..., list[str]] | None,
                 keep_images: Path | None, manifest: Manifest):
        self._listing, self._push, self._keep, self._manifest = listing, push, keep_images, manifest

    def items(self, glob: str) -> Iterator[RemoteItem]:
        return keeping_images((item for item in self._listing() if keep_key(item.key, glob)), self._keep, self._manifest)

    def image_references(self, glob: str) -> dict[str, str]:
        """Each image's key -> the tool's own name for it, where it has one (Label Studio tasks)."""
        return {item.key: item.reference for item in self._listing() if item.reference and keep_key(item.key, glob)}

    def push(self, manifest: Manifest, images: Iterable[LabeledImage], ontology: Ontology, provenance: Provenance,
             out_dir: Path, export_options: dict) -> list[str]:
        return self._push(manifest, images, ontology, provenance, out_dir, export_options) if self._push else []


def source_images(out_dir: Path) -> Path | None:
    """Where a remote source's images were kept for the exporters, if they were."""
    folder = Path(out_dir) / SOURCE_IMAGES_DIR
    return folder if folder.is_dir() else None


def keeping_images(items: Iterable[RemoteItem], folder: Path | None, manifest: Manifest) -> Iterator[RemoteItem]:
    """Each item's image also written to folder/key when the job downloads it. An image the manifest
    has already hashed (so the job will not download it) but whose file is missing, e.g. on the
    first run with YOLO, is downloaded here; if that fails, the YOLO export names it."""
    for item in items:
        key = Path(item.key)
        if folder is not None and not key.is_absolute() and ".." not in key.parts:  # never outside the folder
            path = folder / key
            if not path.is_file() and manifest.known_hash(item.key, *item.stamp()) is not None:
                with suppress(OSError):
                    _fetch_and_keep(item.fetch, path)
            item = replace(item, fetch=partial(_fetch_and_keep, item.fetch, path))
        yield item


def _fetch_and_keep(fetch, path: Path) -> bytes:
    data = fetch()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial_path = path.with_name(path.name + ".partial")
    partial_path.write_bytes(data)
    partial_path.replace(path)
    return data


def _label_studio_project(args: argparse.Namespace, text: str,
                          ontology: Ontology | None) -> label_studio_source.LabelStudioProject:
    if args.label_studio_url:
        if args.project is None:
            raise ValueError("--label-studio-url needs --project ID")
        url, project = args.label_studio_url, args.project
    else:
        url, project = label_studio_source.parse_reference(text)
    api = LabelStudioApi(url, args.ls_token or os.environ.get(API_KEY_ENV, ""), timeout=args.timeout)
    opened = label_studio_source.LabelStudioProject(api, project)
    if getattr(args, "push_predictions", False):
        check_controls(opened.controls, ontology)
    return opened


def _push_to_label_studio(project: label_studio_source.LabelStudioProject):
    def push(manifest, images, ontology, provenance, out_dir, export_options) -> list[str]:
        counts = push_predictions(project, images, model_version(provenance), manifest)
        return [counts.line(f"Label Studio project {project.project}")]
    return push


@contextmanager
def _cvat_task(args: argparse.Namespace, text: str, ontology: Ontology | None) -> Iterator[cvat_source.CvatTaskSource]:
    from labelgate.client.labeling.cvat_push import check_labels

    host, task_id = cvat_source.parse_reference(text)
    with cvat_source.connect(host) as client:
        task = cvat_source.CvatTaskSource(cvat_source.retrieve_task(client, task_id), client.api_map.host)
        if getattr(args, "push_annotations", False):
            check_labels(task, ontology.class_names)
        yield task


def _push_to_cvat(task: cvat_source.CvatTaskSource):
    def push(manifest, images, ontology, provenance, out_dir, export_options) -> list[str]:
        from labelgate.client.labeling.cvat_push import push_annotations

        result = push_annotations(task, images, ontology.class_names, provenance, Path(out_dir) / PUSHED_CVAT_DIR,
                                  manifest, **export_options)
        return [result.line(task.task.id)]
    return push
