"""The client subcommands of the `labelgate` command: segment, detect, models.

`add_client_commands(subparsers)` registers them; nothing is parsed or connected at import time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from labelgate.client import report
from labelgate.client.arg_types import fraction, positive_seconds, whole
from labelgate.client.client import DEFAULT_TARGET, Client
from labelgate.client.errors import LabelgateClientError
from labelgate.client.labeling.commands import add_labeling_commands
from labelgate.client.overlay import draw_overlay
from labelgate.client.transport import SERVER_ENV, TLS_CA_ENV, TOKEN_ENV
_NEGATIVE = {"neg", "negative", "n", "-"}
_POSITIVE = {"pos", "positive", "p", "+"}


# --- argument types (argparse turns ArgumentTypeError into a usage error naming the flag) -------


def _numbers(parts: list[str], what: str, syntax: str, text: str) -> list[float]:
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} {text!r}: expected {syntax} with numbers, e.g. {_EXAMPLES[what]}") from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"{what} {text!r}: coordinates must be finite numbers")
    return values


_EXAMPLES = {"point": "--point 120,80 or --point 40,35,neg", "box": "--box 10,20,200,180",
             "exemplar": "--exemplar 10,20,200,180 or --exemplar 220,40,300,160,neg"}


def parse_point(text: str) -> tuple[float, float, bool]:
    """"X,Y" or "X,Y,neg" -> (x, y, negative)."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(
            f"point {text!r}: expected X,Y or X,Y,neg (pixels; 'neg' marks a negative click), e.g. {_EXAMPLES['point']}"
        )
    x, y = _numbers(parts[:2], "point", "X,Y[,neg]", text)
    negative = len(parts) == 3 and _is_negative(parts[2], "point", text, "third", "negative click")
    return x, y, negative


def _is_negative(flag: str, what: str, text: str, ordinal: str, meaning: str) -> bool:
    """The optional last part of a --point or --exemplar: 'neg' or 'pos' (and their synonyms)."""
    if flag.lower() not in _NEGATIVE | _POSITIVE:
        raise argparse.ArgumentTypeError(
            f"{what} {text!r}: the {ordinal} part must be 'neg' ({meaning}) or 'pos', got {flag!r}; "
            f"e.g. {_EXAMPLES[what]}"
        )
    return flag.lower() in _NEGATIVE


def parse_box(text: str) -> tuple[float, float, float, float]:
    """"X1,Y1,X2,Y2" (top-left, bottom-right corners) -> (x_min, y_min, x_max, y_max)."""
    parts = text.split(",")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(
            f"box {text!r}: expected X1,Y1,X2,Y2 (top-left and bottom-right corners in pixels), e.g. {_EXAMPLES['box']}"
        )
    x_min, y_min, x_max, y_max = _numbers(parts, "box", "X1,Y1,X2,Y2", text)
    if x_max <= x_min or y_max <= y_min:
        raise argparse.ArgumentTypeError(f"box {text!r}: X2 must be > X1 and Y2 > Y1, e.g. {_EXAMPLES['box']}")
    return x_min, y_min, x_max, y_max


def parse_exemplar(text: str) -> tuple[float, float, float, float, bool]:
    """"X1,Y1,X2,Y2" or "X1,Y1,X2,Y2,neg" -> (x_min, y_min, x_max, y_max, negative)."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) not in (4, 5):
        raise argparse.ArgumentTypeError(
            f"exemplar {text!r}: expected X1,Y1,X2,Y2 or X1,Y1,X2,Y2,neg (a box in pixels around an example of "
            f"what to find; 'neg' marks a counter-example), e.g. {_EXAMPLES['exemplar']}"
        )
    x_min, y_min, x_max, y_max = _numbers(parts[:4], "exemplar", "X1,Y1,X2,Y2[,neg]", text)
    if x_max <= x_min or y_max <= y_min:
        raise argparse.ArgumentTypeError(f"exemplar {text!r}: X2 must be > X1 and Y2 > Y1, e.g. {_EXAMPLES['exemplar']}")
    negative = len(parts) == 5 and _is_negative(parts[4], "exemplar", text, "fifth", "not like this")
    return x_min, y_min, x_max, y_max, negative


def _mask_id(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("mask id is empty: pass a mask_id printed by an earlier `labelgate segment`")
    return text.strip()


def _image_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"image {text!r}: no such file")
    return path


# --- registration ----------------------------------------------------------------------------


def add_client_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `segment`, `detect` and `models` on the top-level CLI's subparsers."""
    segment = subparsers.add_parser(
        "segment",
        help="SAM 2 masks for clicks, boxes or a text prompt (needs a running server)",
        description=(
            "Send IMAGE to a labelgate server and print one line per object (label, score, area,\n"
            "bbox), or the full result with --json. Give clicks and/or boxes, or a text prompt\n"
            "(Grounding DINO finds the objects, SAM 2 masks them), or with --model naming a concept\n"
            "model (kind sam3) a text prompt and/or exemplar boxes: every instance comes back.\n"
            "Coordinates are pixels of the EXIF-oriented image, origin top-left. Each mask's id is\n"
            "printed: pass it to --refine, with all the clicks, to refine that mask."
        ),
        epilog=(
            "examples:\n"
            "  labelgate segment photo.jpg --point 120,80 --out overlay.png\n"
            "  labelgate segment photo.jpg --point 120,80 --point 40,35,neg --box 10,20,200,180\n"
            "  labelgate segment photo.jpg --box 10,20,200,180 --box 220,40,300,160 --json\n"
            "  labelgate segment photo.jpg --text 'cat . dog .' --out overlay.png\n"
            "  labelgate segment photo.jpg --model sam3 --text 'car . person .' --max-instances 20\n"
            "  labelgate segment photo.jpg --model sam3 --exemplar 10,20,60,80 --exemplar 100,20,150,80,neg\n"
            "  labelgate segment photo.jpg --point 120,80 --point 40,35,neg --refine mask_0123..."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    segment.add_argument("image", type=_image_file, metavar="IMAGE", help="a PNG, JPEG, WebP, BMP or TIFF file")
    segment.add_argument("--point", dest="points", type=parse_point, action="append", default=[], metavar="X,Y[,neg]",
                         help="a click on the object, or with ',neg' a click on what is not the object (repeatable)")
    segment.add_argument("--box", dest="boxes", type=parse_box, action="append", default=[], metavar="X1,Y1,X2,Y2",
                         help="a box around an object (repeatable: several boxes without points give one object each)")
    segment.add_argument("--text", default="", metavar="PROMPT",
                         help="what to find, as Grounding DINO phrases ending in ' .', e.g. 'cat . dog .' "
                              "(not combined with --point/--box)")
    segment.add_argument("--multimask", action="store_true",
                         help="ask SAM 2 for 3 candidate masks per object (the best is shown)")
    segment.add_argument("--model", default="", metavar="NAME",
                         help="the model to use (`labelgate models` lists them): a SAM 2 model for clicks and boxes, "
                              "or a concept model (kind sam3) for --text/--exemplar (default: the server's SAM 2)")
    segment.add_argument("--exemplar", dest="exemplars", type=parse_exemplar, action="append", default=[],
                         metavar="X1,Y1,X2,Y2[,neg]",
                         help="with a concept --model: a box around an example of what to find, or with ',neg' "
                              "around something that is not (repeatable; alone or with --text)")
    segment.add_argument("--max-instances", type=whole("max instances", 1), default=0, metavar="N",
                         help="with a concept --model: at most N instances, the best-scoring (default: the server's, 100)")
    segment.add_argument("--nms-iou", type=fraction("threshold", "0 = the server's default"), default=0.0, metavar="T",
                         help="with a concept --model: instances of one phrase whose masks overlap more than T are "
                              "one (default: the server's, 0.5; 1 keeps all)")
    segment.add_argument("--refine", type=_mask_id, metavar="MASK_ID",
                         help="refine the mask with this id from an earlier call on the same image and model; "
                              "give all the clicks, the earlier ones too")
    _add_threshold_flags(segment, "for --text: ")
    _add_output_flags(segment, "the best mask of each object, with its prompt or detection box")
    _add_connection_flags(segment)
    segment.set_defaults(func=_segment)

    detect = subparsers.add_parser(
        "detect",
        help="Grounding DINO boxes for a text prompt (needs a running server)",
        description="Send IMAGE to a labelgate server and print the boxes Grounding DINO finds for TEXT.",
        epilog="example:\n  labelgate detect street.jpg 'car . person .' --out boxes.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    detect.add_argument("image", type=_image_file, metavar="IMAGE", help="a PNG, JPEG, WebP, BMP or TIFF file")
    detect.add_argument("text", metavar="TEXT", help="what to find, as phrases ending in ' .', e.g. 'car . person .'")
    _add_threshold_flags(detect)
    _add_output_flags(detect, "the boxes with their labels and scores")
    _add_connection_flags(detect)
    detect.set_defaults(func=_detect)

    models = subparsers.add_parser(
        "models",
        help="list the models a running server has loaded",
        description="Print a table of the models a labelgate server has loaded: name, kind, version, device, default.",
    )
    _add_connection_flags(models)
    models.set_defaults(func=_models)
    add_labeling_commands(subparsers)
    from labelgate.client.track_commands import add_track_command  # it imports this module's argument types

    add_track_command(subparsers)


def _add_threshold_flags(parser: argparse.ArgumentParser, note: str = "") -> None:
    """Grounding DINO's two thresholds; 0 sends nothing, so the server's defaults apply."""
    parser.add_argument("--box-threshold", type=fraction("threshold", "0 = the server's default"), default=0.0, metavar="T",
                        help=f"{note}detection score threshold (default: the server's, 0.35)")
    parser.add_argument("--text-threshold", type=fraction("threshold", "0 = the server's default"), default=0.0, metavar="T",
                        help=f"{note}phrase match threshold (default: the server's, 0.25)")


def _add_output_flags(parser: argparse.ArgumentParser, drawn: str) -> None:
    parser.add_argument("--out", type=Path, metavar="OVERLAY.png", help=f"write a PNG of the image with {drawn}")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a summary")


def _add_connection_flags(parser: argparse.ArgumentParser) -> None:
    default = os.environ.get(SERVER_ENV) or DEFAULT_TARGET
    parser.add_argument("--server", default=default, metavar="HOST:PORT",
                        help=f"the labelgate server (default: %(default)s; set ${SERVER_ENV} to change it; "
                             f"${TOKEN_ENV} and ${TLS_CA_ENV} set a bearer token and TLS)")
    parser.add_argument("--timeout", type=positive_seconds, default=30.0, metavar="S",
                        help="seconds to wait for the answer (default: %(default)s)")


# --- handlers --------------------------------------------------------------------------------


def _segment(args: argparse.Namespace) -> int:
    def run(client: Client) -> None:
        result = client.segment(
            args.image, points=args.points, boxes=args.boxes, text=args.text, multimask=args.multimask,
            box_threshold=args.box_threshold, text_threshold=args.text_threshold, model=args.model,
            exemplars=args.exemplars, max_instances=args.max_instances, nms_iou_threshold=args.nms_iou,
            refine=args.refine,
        )
        _print(report.segment_dict(result) if args.json else report.segment_lines(result), args.json)
        if args.out:
            pixels = _load_pixels(args.image, result.width, result.height)
            objects = [obj for obj in result.objects if obj.best is not None]
            canvas = draw_overlay(
                pixels,
                [obj.best.to_numpy() for obj in objects],
                [obj.prompt_box for obj in objects],
                [_object_label(number, obj) for number, obj in enumerate(objects, 1)],
            )
            _draw_points(canvas, args.points)
            _save(canvas, args.out)

    return _with_client(args, run)


def _detect(args: argparse.Namespace) -> int:
    def run(client: Client) -> None:
        result = client.detect(args.image, args.text, box_threshold=args.box_threshold,
                               text_threshold=args.text_threshold)
        _print(report.detect_dict(result) if args.json else report.detect_lines(result), args.json)
        if args.out:
            pixels = _load_pixels(args.image, result.width, result.height)
            canvas = draw_overlay(pixels, [], [d.box for d in result.detections],
                                  [f"{d.label or '?'} {d.score:.2f}" for d in result.detections])
            _save(canvas, args.out)

    return _with_client(args, run)


def _models(args: argparse.Namespace) -> int:
    return _with_client(args, lambda client: _print(report.models_table(client.list_models()), False))


def _with_client(args: argparse.Namespace, run) -> int:
    """Runs `run(client)`; RPC failures become a one-line message on stderr and exit status 1."""
    try:
        with Client.from_env(target=args.server, timeout=args.timeout) as client:  # TLS and token from LABELGATE_*
            run(client)
    except LabelgateClientError as error:
        if error.unreachable:
            print(
                f"error: cannot reach a labelgate server at {args.server} ({error.details}).\n"
                f"Is one running? Start it with `make run` (or `labelgate serve`), or point --server or "
                f"${SERVER_ENV} at it.",
                file=sys.stderr,
            )
        else:
            print(f"error: {error.code.name}: {error.details}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _print(output, as_json: bool) -> None:
    print(json.dumps(output, indent=2) if as_json else "\n".join(output))


def _object_label(number: int, obj) -> str:
    if obj.label:
        return f"{obj.label} {obj.detection_score:.2f}"
    return f"#{number} {obj.best.score:.2f}"


def _load_pixels(path: Path, width: int, height: int) -> np.ndarray:
    """The image as the server saw it: EXIF-oriented RGB."""
    with Image.open(path) as image:
        pixels = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    if pixels.shape[:2] != (height, width):
        raise ValueError(
            f"{path} decodes to {pixels.shape[1]}x{pixels.shape[0]} here but the server saw {width}x{height}; "
            "cannot draw the overlay"
        )
    return pixels


def _draw_points(canvas: Image.Image, points) -> None:
    draw = ImageDraw.Draw(canvas)
    radius = max(3, round(min(canvas.size) / 150))
    for x, y, negative in points:
        colour = (230, 30, 30) if negative else (30, 200, 60)
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour, outline=(255, 255, 255))


def _save(canvas: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format="PNG")
    print(f"overlay written to {path}", file=sys.stderr)  # stderr: stdout may be --json
