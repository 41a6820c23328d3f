"""`labelgate bench` measures the main table unless asked for the (slow) concept section too."""

from __future__ import annotations

import argparse

import pytest

from labelgate.bench.cli import add_parser


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["bench", *argv])


def test_the_default_run_leaves_out_the_concept_section():
    assert _parse().sections == ["main"]


def test_sections_can_be_chosen_and_unknown_ones_are_refused(capsys):
    assert _parse("--sections", "concepts").sections == ["concepts"]
    assert _parse("--sections", "main", "concepts").sections == ["main", "concepts"]
    with pytest.raises(SystemExit):
        _parse("--sections", "sam3")
    assert "invalid choice: 'sam3'" in capsys.readouterr().err


def test_the_labeling_and_video_sections_take_their_sizes():
    args = _parse("--sections", "labeling", "video", "--labeling-images", "12", "--video-frames", "50")
    assert (args.sections, args.labeling_images, args.video_frames) == (["labeling", "video"], 12, 50)
    assert (_parse().labeling_images, _parse().video_frames) == (None, None)  # the plans' own sizes
