"""`labelgate track`: mark objects on a frame or two of a clip, let SAM 2 carry their masks through
it, and get per-frame masks, a COCO-style video JSON and overlays. Registered by
`add_track_command(subparsers)`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from labelgate.client.arg_types import fraction, positive_seconds, whole
from labelgate.client.cli import parse_box, parse_point
from labelgate.client.client import DEFAULT_TARGET
from labelgate.client.fleet_args import fleet_client, run_command
from labelgate.client.track_outputs import TrackWriter, clip_from_argument
from labelgate.client.tracking import DIRECTIONS, ObjectPrompt
from labelgate.client.transport import SERVER_ENV, TLS_CA_ENV, TOKEN_ENV
from labelgate.client.video_session import expected_frames

DEFAULT_OBJECT = 1

DESCRIPTION = """\
Track objects through CLIP (a video file, a folder of frame images, or a quoted glob such as
'frames/*.jpg') with SAM 2's video predictor on a labelgate server, and write to --out:

  masks/<frame>_<object>.png   one black-and-white mask per object per tracked frame (frame: 6 digits)
  annotations.json             COCO-style video JSON: videos, images (frame_index, timestamp),
                               annotations (RLE masks, bbox, score, track_id = the object id)
  contact_sheet.png            overlays of up to --sheet-frames tracked frames, to eyeball the result
  overlay.mp4                  every tracked frame with its masks drawn (with PyAV installed)

Text to tracks: --text "car . person ." adds one object per instance found on --text-frame (default
0), numbered on from the other prompts' ids (the server's concept model --text-model, e.g. sam3, or
its Grounding DINO with SAM 2); with --text, the box and click prompts are optional.

Prompts are read left to right. --object ID starts an object (default 1), --frame N says which frame
the prompts after it are on (default 0); both hold until given again. --box and --point add to the
current object on the current frame: at most one box, any number of clicks (',neg' for a click on
what is not the object). A prompt on a later frame is a correction: SAM 2 follows it from there.
Coordinates are pixels of the frame, origin top-left."""

EPILOG = """\
examples:
  # one object, boxed on the first frame, to the end of the clip
  labelgate track clip.mp4 --box 10,20,200,180 --out tracked/
  # two objects on frame 0; the second one also clicked on frame 40 where it drifted
  labelgate track clip.mp4 --object 1 --box 10,20,200,180 \\
                           --object 2 --point 320,140 --point 300,100,neg --frame 40 --point 330,150 --out tracked/
  # frames in a folder, an object first seen on frame 25, tracked both ways, 50 frames each way
  labelgate track frames/ --frame 25 --box 40,40,90,120 --direction both --max-frames 50 --out tracked/
  # every car and person found on frame 0 (SAM 3 on the server), tracked to the end
  labelgate track clip.mp4 --text "car . person ." --text-model sam3 --out tracked/
  # a fleet: the session stays on the clip's replica and survives losing it
  labelgate track clip.mp4 --box 10,20,200,180 --server 10.0.0.5:50051 --server 10.0.0.6:50051 --out tracked/"""


class _Prompt(argparse.Action):
    """Keeps --object, --frame, --box and --point in the order given, in `namespace.steps`."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.steps = [*(getattr(namespace, "steps", None) or []), (self.dest, values)]


def add_track_command(subparsers: argparse._SubParsersAction) -> None:
    track = subparsers.add_parser(
        "track", help="track objects through a video with SAM 2 (masks, COCO video JSON, overlays)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    track.add_argument("clip", metavar="CLIP", help="a video file (.mp4, .webm, .mov, ...), a folder of frames, or a glob")
    prompts = track.add_argument_group("prompts (in order; see above)")
    prompts.add_argument("--object", dest="object", type=whole("object id", 0), action=_Prompt, metavar="ID",
                         help=f"the object the prompts after it are for (default {DEFAULT_OBJECT})")
    prompts.add_argument("--frame", dest="frame", type=whole("frame", 0), action=_Prompt, metavar="N",
                         help="the frame the prompts after it are on (default 0)")
    prompts.add_argument("--box", dest="box", type=parse_box, action=_Prompt, metavar="X1,Y1,X2,Y2",
                         help="a box around the object (at most one per object and frame)")
    prompts.add_argument("--point", dest="point", type=parse_point, action=_Prompt, metavar="X,Y[,neg]",
                         help="a click on the object, or with ',neg' on what is not it (repeatable)")
    text = track.add_argument_group("text to tracks")
    text.add_argument("--text", default="", metavar="PHRASES",
                      help='every instance of these phrases on --text-frame becomes an object ("car . person .")')
    text.add_argument("--text-frame", type=whole("text frame", 0), default=0, metavar="N",
                      help="the frame --text looks on (default: %(default)s)")
    text.add_argument("--text-model", default="", metavar="NAME",
                      help="a concept model (e.g. sam3) to find the instances (default: the server's Grounding DINO)")
    text.add_argument("--box-threshold", type=fraction("box threshold"), default=0.0, metavar="T",
                      help="detection score threshold for --text (default: the server's)")
    text.add_argument("--text-threshold", type=fraction("text threshold"), default=0.0, metavar="T",
                      help="Grounding DINO's phrase threshold for --text (default: the server's)")
    text.add_argument("--max-objects", type=whole("max objects", 0), default=0, metavar="N",
                      help="at most N objects from --text, the best scores (default: all found)")
    track.add_argument("--direction", choices=tuple(DIRECTIONS), default="forward",
                       help="from the first prompted frame, or --start-frame (default: %(default)s)")
    track.add_argument("--start-frame", type=whole("start frame", 0), metavar="N",
                       help="where to start tracking (default: the first prompted frame)")
    track.add_argument("--max-frames", type=whole("max frames", 0), default=0, metavar="N",
                       help="at most N frames each way, the start frame included (default: to the end)")
    track.add_argument("--model", default="", metavar="NAME", help="a model that tracks video (default: the server's)")
    track.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the masks, JSON and overlays go")
    track.add_argument("--sheet-frames", type=whole("sheet frames", 1), default=16, metavar="N",
                       help="frames on the contact sheet, evenly spaced (default: %(default)s)")
    track.add_argument("--no-overlay", action="store_true", help="write the masks and JSON only")
    track.add_argument("--no-progress", action="store_true", help="no progress bar")
    default = os.environ.get(SERVER_ENV) or DEFAULT_TARGET
    track.add_argument("--server", action="append", default=[], metavar="HOST:PORT",
                       help=f"the labelgate server; repeat (or comma-separate) for a fleet (default: {default}; "
                            f"${TOKEN_ENV} and ${TLS_CA_ENV} set a bearer token and TLS)")
    track.add_argument("--timeout", type=positive_seconds, default=60.0, metavar="S",
                       help="seconds each call may take (default: %(default)s); tracking itself has no deadline")
    track.set_defaults(func=_track, steps=None)


def prompts_from_steps(steps: Sequence[tuple[str, object]] | None) -> list[ObjectPrompt]:
    """The --object/--frame/--box/--point sequence -> one ObjectPrompt per object and frame."""
    object_id, frame = DEFAULT_OBJECT, 0
    grouped: dict[tuple[int, int], dict] = {}
    for kind, value in steps or ():
        if kind == "object":
            object_id = value
        elif kind == "frame":
            frame = value
        else:
            prompt = grouped.setdefault((object_id, frame), {"points": [], "box": None})
            if kind == "point":
                prompt["points"].append(value)
            elif prompt["box"] is not None:
                raise ValueError(f"object {object_id} has two boxes on frame {frame}: give one --box per object and "
                                 "frame (start another object with --object ID)")
            else:
                prompt["box"] = value
    if not grouped:
        raise ValueError("nothing to track: mark an object with --box X1,Y1,X2,Y2 or --point X,Y (see --help)")
    return [ObjectPrompt(object_id, frame=frame, points=tuple(p["points"]), box=p["box"])
            for (object_id, frame), p in grouped.items()]


def _track(args: argparse.Namespace) -> int:
    return run_command(lambda: _track_clip(args), args)


def _track_clip(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    prompts = prompts_from_steps(args.steps) if args.steps or not args.text else []
    clip = clip_from_argument(args.clip)
    with fleet_client(args) as client, client.open_video(clip.source, model=args.model, timeout=args.timeout) as session:
        frame_count, (width, height) = session.frame_count, session.size
        _check_frames(prompts, args.start_frame, frame_count, args.text_frame if args.text else None)
        writer = TrackWriter(args.out, clip, width, height, frame_count)
        session.add_prompts(prompts)
        if args.text:
            _add_text(session, args)
        start = session.log.start_frame(args.start_frame)
        total = len(expected_frames(start, args.direction, args.max_frames, frame_count))
        with tqdm(total=total, unit="frame", disable=args.no_progress) as bar:
            for frame in session.propagate(args.direction, args.start_frame, args.max_frames):
                writer.add(frame)
                bar.update()
    written = writer.finish(args.sheet_frames, overlays=not args.no_overlay)
    objects = sorted({obj for frame in writer.frames.values() for obj in frame.masks})
    print(f"tracked {len(objects)} object(s) over {len(writer.frames)} frame(s) of {frame_count}: "
          f"{writer.masks_dir}/, " + ", ".join(str(path) for path in written))
    if not args.no_overlay and clip.video is not None and len(written) == 1:
        print("no overlays: reading a video file's frames needs PyAV (pip install av)", file=sys.stderr)
    return 0


def _add_text(session, args: argparse.Namespace) -> None:
    added = session.add_text(args.text_frame, args.text, model=args.text_model, box_threshold=args.box_threshold,
                             text_threshold=args.text_threshold, max_objects=args.max_objects)
    if not session.log.object_ids:
        raise ValueError(f"--text {args.text!r} found nothing on frame {args.text_frame}: lower --box-threshold, "
                         "try other words, or mark objects with --box / --point")
    found = ", ".join(f"{obj.object_id}: {obj.label} ({obj.score:.2f})" for obj in added.found) or "nothing"
    print(f"--text found on frame {args.text_frame}: {found}", file=sys.stderr)


def _check_frames(prompts: list[ObjectPrompt], start_frame: int | None, frame_count: int,
                  text_frame: int | None = None) -> None:
    """Frames past the end, said in the CLI's words rather than the server's."""
    given = [("--frame", prompt.frame) for prompt in prompts] + ([("--start-frame", start_frame)] if start_frame is not None else [])
    given += [("--text-frame", text_frame)] if text_frame is not None else []
    for flag, frame in given:
        if frame >= frame_count:
            raise ValueError(f"{flag} {frame} is past the end: the clip has {frame_count} frames (0 to {frame_count - 1})")


