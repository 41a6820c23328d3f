"""Results -> human-readable lines and JSON-ready dicts (used by the CLI)."""

from __future__ import annotations

from labelgate.client.results import Box, DetectResult, Mask, ModelInfo, SegmentResult


def _box(box: Box | None) -> list[float] | None:
    return None if box is None else [round(v, 2) for v in box]


def _box_text(box: Box | None) -> str:
    return "none" if box is None else "(" + ", ".join(f"{v:g}" for v in _box(box)) + ")"


def mask_dict(mask: Mask) -> dict:
    return {"score": round(mask.score, 4), "area": mask.area, "bbox": _box(mask.bbox), "rle": mask.rle,
            "mask_id": mask.mask_id}


def segment_dict(result: SegmentResult) -> dict:
    return {
        "image_id": result.image_id,
        "width": result.width,
        "height": result.height,
        "cache_hit": result.cache_hit,
        "objects": [
            {
                "label": obj.label,
                "detection_score": round(obj.detection_score, 4),
                "prompt_box": _box(obj.prompt_box),
                "masks": [mask_dict(mask) for mask in obj.masks],
            }
            for obj in result.objects
        ],
    }


def detect_dict(result: DetectResult) -> dict:
    return {
        "image_id": result.image_id,
        "width": result.width,
        "height": result.height,
        "detections": [
            {"label": d.label, "score": round(d.score, 4), "box": _box(d.box)} for d in result.detections
        ],
    }


def segment_lines(result: SegmentResult) -> list[str]:
    cached = "features cached" if result.cache_hit else "features computed"
    count = len(result.objects)
    lines = [f"{result.image_id}  {result.width}x{result.height}  {count} object{'s' * (count != 1)}  ({cached})"]
    for number, obj in enumerate(result.objects, 1):
        best = obj.best
        label = obj.label or "object"
        detection = f" (detection {obj.detection_score:.2f})" if obj.label else ""
        if best is None:
            lines.append(f"  {number}. {label}{detection}: no mask")
            continue
        of = f" (best of {len(obj.masks)})" if len(obj.masks) > 1 else ""
        mask_id = f", mask_id {best.mask_id}" if best.mask_id else ""  # for `--refine`
        lines.append(
            f"  {number}. {label}{detection}: score {best.score:.3f}{of}, area {best.area} px, bbox {_box_text(best.bbox)}"
            f"{mask_id}"
        )
    return lines


def detect_lines(result: DetectResult) -> list[str]:
    count = len(result.detections)
    lines = [f"{result.image_id}  {result.width}x{result.height}  {count} detection{'s' * (count != 1)}"]
    for number, detection in enumerate(result.detections, 1):
        lines.append(f"  {number}. {detection.label or '?'}: score {detection.score:.3f}, box {_box_text(detection.box)}")
    return lines


def models_table(models: list[ModelInfo]) -> list[str]:
    header = ("NAME", "KIND", "VERSION", "DEVICE", "DEFAULT", "CAN")
    rows = [(m.name, m.kind, m.version, m.device, "yes" if m.is_default else "", ",".join(m.capabilities)) for m in models]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
