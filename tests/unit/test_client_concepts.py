"""segment(..., exemplars=, nms_iou_threshold=, max_instances=, model=) for a concept model (sam3) in
Client, AsyncClient and AffinityClient, and the `labelgate segment` flags that send them: each travels
in its SegmentRequest field; malformed values fail before any call."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from fake_labelgate import FAKE_MASK_ID, serve_fake

from labelgate.client import AffinityClient, AsyncClient, Client, messages
from labelgate.client.cli import add_client_commands, parse_exemplar
from labelgate.client.report import segment_dict, segment_lines
from labelgate.client.results import segment_result_from_pb
from labelgate.v1 import labelgate_pb2 as pb

IMAGE = np.arange(36, dtype=np.uint8).reshape(3, 4, 3)
EXEMPLARS = [(0, 0, 2, 2), (1, 1, 3, 3, "neg"), (0, 1, 4, 3, True), (1, 0, 2, 1, "pos")]
CONCEPT_ARGS = dict(text="car . person .", model="sam3", exemplars=EXEMPLARS, nms_iou_threshold=0.25, max_instances=7)


def _exemplars(request: pb.SegmentRequest) -> list[tuple]:
    return [(e.box.x_min, e.box.y_min, e.box.x_max, e.box.y_max, e.negative) for e in request.exemplars]


def _assert_concept_request(request: pb.SegmentRequest) -> None:
    assert (request.text, request.model, request.max_instances) == ("car . person .", "sam3", 7)
    assert request.nms_iou_threshold == np.float32(0.25)
    assert _exemplars(request) == [(0, 0, 2, 2, False), (1, 1, 3, 3, True), (0, 1, 4, 3, True), (1, 0, 2, 1, False)]


def test_client_sends_the_concept_fields():
    with serve_fake() as (servicer, address):
        with Client(address, timeout=10) as client:
            client.segment(IMAGE, **CONCEPT_ARGS)
            client.segment(IMAGE, points=[(3, 2)])
    _assert_concept_request(servicer.requests[0])
    plain = servicer.requests[1]
    assert (list(plain.exemplars), plain.nms_iou_threshold, plain.max_instances, plain.model) == ([], 0.0, 0, "")


async def test_async_client_sends_the_concept_fields():
    with serve_fake() as (servicer, address):
        async with AsyncClient(address, timeout=10) as client:
            await client.segment(IMAGE, **CONCEPT_ARGS)
    _assert_concept_request(servicer.requests[0])


def test_affinity_client_passes_concept_fields_and_refine_through():
    with serve_fake() as (servicer, address):
        with AffinityClient([address], timeout=10) as client:
            first = client.segment(IMAGE, **CONCEPT_ARGS)
            client.segment(IMAGE, points=[(3, 2)], refine=first.objects[0].best)
    _assert_concept_request(servicer.requests[0])
    assert servicer.requests[1].refine_mask_id == FAKE_MASK_ID


@pytest.mark.parametrize("fields, phrase", [
    ({"exemplars": [(0, 0, 2)]}, "exemplar 0: expected"),
    ({"exemplars": [(0, 0, 2, 2), (0, 0, 2, 2, "maybe")]}, "exemplar 1: the fifth item"),
    ({"exemplars": [(0, 0, 2, 2, 2)]}, "exemplar 0: the fifth item"),
    ({"exemplars": [5]}, "list of exemplars"),
    ({"max_instances": -1}, "max_instances must be"),
    ({"max_instances": 2.5}, "max_instances must be"),
])
def test_malformed_concept_arguments_fail_before_any_call(fields, phrase):
    with serve_fake() as (servicer, address):
        with Client(address, timeout=10) as client:
            with pytest.raises(ValueError, match=phrase):
                client.segment(IMAGE, text="car", model="sam3", **fields)
    assert servicer.requests == []


def test_segment_request_exemplars_alone():
    request = messages.segment_request(exemplars=[(1, 2, 3, 4)], model="sam3")
    assert _exemplars(request) == [(1, 2, 3, 4, False)] and request.text == ""


# --- CLI ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("10,20,30,40", (10.0, 20.0, 30.0, 40.0, False)),
    ("10, 20, 30, 40, neg", (10.0, 20.0, 30.0, 40.0, True)),
    ("1,2,3,4,POS", (1.0, 2.0, 3.0, 4.0, False)),
])
def test_parse_exemplar_valid(text, expected):
    assert parse_exemplar(text) == expected


@pytest.mark.parametrize("text, phrase", [
    ("1,2,3", "expected X1,Y1,X2,Y2"), ("1,2,3,4,5,6", "expected X1,Y1,X2,Y2"), ("a,2,3,4", "with numbers"),
    ("5,5,1,1", "X2 must be > X1"), ("1,2,3,4,yes", "fifth part must be 'neg'"), ("0,0,inf,4", "finite"),
])
def test_parse_exemplar_invalid(text, phrase):
    with pytest.raises(argparse.ArgumentTypeError, match=phrase):
        parse_exemplar(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labelgate")
    add_client_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_concept_and_refine_flags(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(b"not read while parsing")
    args = _parser().parse_args(["segment", str(image), "--model", "sam3", "--text", "car .", "--exemplar", "1,2,3,4",
                                 "--exemplar", "5,6,7,8,neg", "--max-instances", "20", "--nms-iou", "0.3"])
    assert (args.model, args.max_instances, args.nms_iou, args.refine) == ("sam3", 20, 0.3, None)
    assert args.exemplars == [(1.0, 2.0, 3.0, 4.0, False), (5.0, 6.0, 7.0, 8.0, True)]
    args = _parser().parse_args(["segment", str(image), "--point", "1,2", "--refine", FAKE_MASK_ID])
    assert (args.refine, args.model, args.exemplars, args.max_instances, args.nms_iou) == (FAKE_MASK_ID, "", [], 0, 0.0)


@pytest.mark.parametrize("flags, phrase", [
    (["--exemplar", "1,2,3"], "argument --exemplar: exemplar '1,2,3': expected X1,Y1,X2,Y2"),
    (["--max-instances", "0"], "argument --max-instances: max instances '0': must be at least 1"),
    (["--max-instances", "many"], "argument --max-instances: max instances 'many': expected a whole number"),
    (["--nms-iou", "1.5"], "argument --nms-iou: threshold '1.5': must be between 0 and 1"),
    (["--refine", " "], "argument --refine: mask id is empty"),
])
def test_cli_bad_concept_flags_are_usage_errors(tmp_path, capsys, flags, phrase):
    image = tmp_path / "a.png"
    image.write_bytes(b"x")
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(["segment", str(image), *flags])
    assert exit_info.value.code == 2 and phrase in capsys.readouterr().err


def test_report_prints_mask_ids_for_refine():
    mask = pb.Mask(score=0.5, area=1, mask_id=FAKE_MASK_ID)
    result = segment_result_from_pb(pb.SegmentResponse(image_id="img_a", width=4, height=3, objects=[
        pb.ObjectMasks(masks=[mask]), pb.ObjectMasks(masks=[pb.Mask(score=0.4, area=2)], label="car")]))
    lines = segment_lines(result)
    assert lines[1].endswith(f"mask_id {FAKE_MASK_ID}") and "mask_id" not in lines[2]
    assert [obj["masks"][0]["mask_id"] for obj in segment_dict(result)["objects"]] == [FAKE_MASK_ID, ""]
