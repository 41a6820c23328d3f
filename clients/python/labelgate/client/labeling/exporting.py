"""Writing a job's dataset: each chosen exporter streams the manifest's finished images into its own
folder under the output (coco/, yolo/, ...). Also counts what was written, for the summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from labelgate.client.labeling.assemble import labeled_images
from labelgate.client.labeling.manifest import Manifest
from labelgate.client.labeling.ontology import Ontology
from labelgate.client.labeling.plan import PromptTask
from labelgate.client.labeling.records import LabeledImage, Provenance


def available_exporters() -> dict:
    """Format name -> exporter function (empty when the exporters are not installed)."""
    try:
        from labelgate.client.labeling.export import EXPORTERS
    except ImportError:
        return {}
    return dict(EXPORTERS)


def check_formats(formats: Iterable[str]) -> list[str]:
    """The formats, checked against the installed exporters before any work starts."""
    formats = [f for f in formats if f]
    known = available_exporters()
    unknown = [f for f in formats if f not in known]
    if unknown:
        raise ValueError(f"unknown format(s) {unknown}; available: {sorted(known) or 'none installed'}")
    return formats


@dataclass
class ExportReport:
    images: int = 0
    objects: Counter = field(default_factory=Counter)  # class name -> objects
    files: list[Path] = field(default_factory=list)


def export_dataset(manifest: Manifest, ontology: Ontology, tasks: dict[tuple[str, str], PromptTask],
                   provenance: Provenance, out_dir: Path, formats: Iterable[str], val_fraction: float,
                   options: dict | None = None) -> ExportReport:
    """Runs each exporter over a fresh stream of the manifest; the first pass also counts.
    `options` go to every exporter (mask_format, task, image_root, ...): each takes its own."""
    report = ExportReport()
    exporters = available_exporters()

    def images() -> Iterator[LabeledImage]:
        return labeled_images(manifest, ontology, tasks, val_fraction)

    def counted(stream: Iterator[LabeledImage]) -> Iterator[LabeledImage]:
        for image in stream:
            report.images += 1
            report.objects.update(obj.class_name for obj in image.objects)
            yield image

    formats = check_formats(formats)
    if not formats:
        for _ in counted(images()):
            pass
    for position, name in enumerate(formats):
        exporter = exporters[name]
        stream = counted(images()) if position == 0 else images()
        report.files += exporter(stream, ontology.class_names, provenance, Path(out_dir) / name, **exporter_options(ontology, options))
    return report


def exporter_options(ontology: Ontology, options: dict | None) -> dict:
    """Exporters ignore the options that are not theirs. Each class's polygons are simplified with
    its own tolerance, unless the caller gives one for all."""
    tolerances = {c.name: c.polygon_tolerance for c in ontology.classes}
    return {"polygon_tolerance": tolerances, **(options or {})}
