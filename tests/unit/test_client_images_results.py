"""The light client's pieces that need no server: image encoding, result types, CLI argument
parsing, the overlay, the image_id cache, and its import hygiene."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys

import grpc
import numpy as np
import pycocotools.mask
import pytest
from PIL import Image

from labelgate.client import ImageId, LabelgateClientError, Mask, SegmentedObject, encode_image
from labelgate.client import messages
from labelgate.client.cli import add_client_commands, parse_box, parse_point
from labelgate.client.image_ids import ImageIdCache, digest
from labelgate.client.overlay import draw_overlay
from labelgate.client.results import mask_from_pb, segment_result_from_pb
from labelgate.v1 import labelgate_pb2 as pb


def _rgb(h: int = 30, w: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image)


# --- encode_image ----------------------------------------------------------------------------


def test_numpy_rgb_round_trip_is_lossless_png():
    pixels = _rgb()
    data = encode_image(pixels)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    np.testing.assert_array_equal(_decode(data), pixels)
    assert encode_image(pixels.copy()) == data  # same pixels, same bytes: the image_id reuse relies on it


def test_numpy_non_contiguous_and_greyscale_and_bool():
    pixels = _rgb(30, 80)[:, ::2]
    np.testing.assert_array_equal(_decode(encode_image(pixels)), pixels)
    grey = pixels[:, :, 0].copy()
    np.testing.assert_array_equal(_decode(encode_image(grey)), grey)
    flags = grey > 128
    np.testing.assert_array_equal(_decode(encode_image(flags)), flags.astype(np.uint8) * 255)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((4, 4, 3), np.float32), "uint8"),
        (np.zeros((4, 4, 2), np.uint8), "shape"),
        (np.zeros((4,), np.uint8), "shape"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
    ],
)
def test_numpy_bad_arrays(array, message):
    with pytest.raises(ValueError, match=message):
        encode_image(array)


def test_path_and_bytes_pass_through(tmp_path):
    jpeg = io.BytesIO()
    Image.fromarray(_rgb()).save(jpeg, format="JPEG")
    data = jpeg.getvalue()
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    assert encode_image(path) == data
    assert encode_image(str(path)) == data
    assert encode_image(data) is data
    assert encode_image(bytearray(data)) == data
    assert encode_image(memoryview(data)) == data


def test_pil_images():
    pixels = _rgb()
    np.testing.assert_array_equal(_decode(encode_image(Image.fromarray(pixels))), pixels)
    cmyk = Image.fromarray(pixels).convert("CMYK")  # PNG cannot hold CMYK: sent as RGB
    decoded = _decode(encode_image(cmyk))
    assert decoded.shape == (30, 40, 3)
    np.testing.assert_array_equal(decoded, np.asarray(cmyk.convert("RGB")))


def test_unsupported_inputs():
    with pytest.raises(TypeError, match="file path"):
        encode_image(12)
    with pytest.raises(TypeError, match="ImageId"):
        encode_image(ImageId("img_" + "0" * 32))
    with pytest.raises(FileNotFoundError):
        encode_image("does/not/exist.png")


# --- results -----------------------------------------------------------------------------------


def _random_mask(h: int = 23, w: int = 31, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w)) < 0.4


def test_mask_to_numpy_from_coco_rle():
    mask = _random_mask()
    rle = pycocotools.mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    message = pb.Mask(score=0.9, area=int(mask.sum()), rle=pb.CocoRle(size=rle["size"], counts=rle["counts"].decode()))
    result = mask_from_pb(message, shape=mask.shape)
    assert result.rle == {"size": [23, 31], "counts": rle["counts"].decode()}
    assert result.bbox is None and result.png is None and result.polygons == []
    decoded = result.to_numpy()
    assert decoded.dtype == bool and decoded.shape == (23, 31)
    np.testing.assert_array_equal(decoded, mask)


def test_mask_to_numpy_from_png():
    mask = _random_mask(seed=2)
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buffer, format="PNG")
    result = mask_from_pb(pb.Mask(score=0.5, png=buffer.getvalue(), area=int(mask.sum())))
    assert result.rle is None
    decoded = result.to_numpy()
    assert decoded.dtype == bool
    np.testing.assert_array_equal(decoded, mask)


def test_mask_to_numpy_from_polygons_with_hole():
    """Points are centres of the boundary mask pixels (what the server's cv2 contours give), holes too."""
    expected = np.zeros((120, 160), dtype=bool)
    expected[10:110, 20:140] = True
    expected[30:90, 50:110] = False
    outer = [20, 10, 20, 109, 139, 109, 139, 10]
    hole = [49, 29, 49, 90, 110, 90, 110, 29]  # the ring of mask pixels just around the hole
    message = pb.Mask(score=1, polygons=[pb.Polygon(points=outer), pb.Polygon(points=hole, hole=True)])
    result = mask_from_pb(message, shape=(120, 160))
    assert [p.shape for p, _ in result.polygons] == [(4, 2), (4, 2)]
    assert [h for _, h in result.polygons] == [False, True]
    np.testing.assert_array_equal(result.to_numpy(), expected)


def test_mask_without_pixels_says_what_to_request():
    with pytest.raises(ValueError, match="coco_rle"):
        Mask(score=1.0, bbox=(0, 0, 1, 1), area=1, rle=None, polygons=[], png=None).to_numpy()


def test_segment_result_from_pb():
    response = pb.SegmentResponse(
        image_id="img_" + "a" * 32, width=40, height=30, cache_hit=True,
        objects=[
            pb.ObjectMasks(masks=[pb.Mask(score=0.25, area=3), pb.Mask(score=0.75, area=5, bbox=pb.Box(x_min=1, y_min=2, x_max=3, y_max=4))],
                           label="cat", detection_score=0.5, prompt_box=pb.Box(x_min=0, y_min=0, x_max=10, y_max=10)),
            pb.ObjectMasks(masks=[pb.Mask(score=0.5)]),
        ],
    )
    result = segment_result_from_pb(response)
    assert (result.image_id, result.width, result.height, result.cache_hit) == ("img_" + "a" * 32, 40, 30, True)
    first, second = result.objects
    assert first.best.score == 0.75 and first.best.area == 5 and first.best.bbox == (1, 2, 3, 4)
    assert first.label == "cat" and first.detection_score == 0.5 and first.prompt_box == (0, 0, 10, 10)
    assert second.prompt_box is None and second.label == "" and second.best.bbox is None
    assert SegmentedObject(masks=[]).best is None


# --- request building ----------------------------------------------------------------------------


def test_request_building():
    request = messages.segment_request(points=[(1, 2), (3, 4, True)], boxes=[(0, 0, 5, 6)], formats=("coco_rle", "png"))
    assert [(p.x, p.y, p.negative) for p in request.points] == [(1, 2, False), (3, 4, True)]
    assert (request.boxes[0].x_max, request.boxes[0].y_max) == (5, 6)
    assert list(request.formats) == [pb.COCO_RLE, pb.PNG]
    with_id = messages.with_image(request, pb.Image(image_id="img_x"))
    assert with_id.image.image_id == "img_x" and not request.HasField("image")
    with pytest.raises(ValueError, match="unknown mask format"):
        messages.formats_to_pb(["jpeg"])
    with pytest.raises(ValueError, match="point 0"):
        messages.points_to_pb([(1, 2, 3, 4)])
    with pytest.raises(ValueError, match="list of points"):
        messages.points_to_pb([5])
    with pytest.raises(ValueError, match="box 0"):
        messages.boxes_to_pb([(1, 2, 3)])


# --- CLI arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [("10,20", (10.0, 20.0, False)), ("1.5, 2.5", (1.5, 2.5, False)), ("3,4,neg", (3.0, 4.0, True)),
     ("3,4,NEG", (3.0, 4.0, True)), ("3,4,pos", (3.0, 4.0, False))],
)
def test_parse_point_valid(text, expected):
    assert parse_point(text) == expected


@pytest.mark.parametrize("text", ["10", "1,2,3,4", "a,b", "1,2,yes", "1,nan", "", "1,,2"])
def test_parse_point_invalid(text):
    with pytest.raises(argparse.ArgumentTypeError, match="point"):
        parse_point(text)


def test_parse_box():
    assert parse_box("10,20,30,40.5") == (10.0, 20.0, 30.0, 40.5)
    for bad in ["1,2,3", "1,2,3,x", "5,5,1,1", "0,0,0,10", "0,0,inf,10"]:
        with pytest.raises(argparse.ArgumentTypeError, match="box"):
            parse_box(bad)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labelgate")
    add_client_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_parsing(tmp_path, capsys, monkeypatch):
    image = tmp_path / "a.png"
    Image.fromarray(_rgb()).save(image)
    monkeypatch.setenv("LABELGATE_SERVER", "example.org:1234")
    args = _parser().parse_args(["segment", str(image), "--point", "1,2", "--point", "3,4,neg", "--box", "0,0,5,5"])
    assert args.points == [(1.0, 2.0, False), (3.0, 4.0, True)] and args.boxes == [(0.0, 0.0, 5.0, 5.0)]
    assert args.server == "example.org:1234" and callable(args.func)
    args = _parser().parse_args(["detect", str(image), "cat .", "--box-threshold", "0.3", "--server", "h:1"])
    assert (args.text, args.box_threshold, args.server) == ("cat .", 0.3, "h:1")
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(["segment", str(image), "--point", "1,2,3,4"])
    assert exit_info.value.code == 2
    assert "--point" in capsys.readouterr().err


# --- overlay -----------------------------------------------------------------------------------


def test_overlay_draws_masks_and_boxes():
    image = np.full((60, 80, 3), 100, dtype=np.uint8)
    mask = np.zeros((60, 80), dtype=bool)
    mask[10:30, 20:50] = True
    out = draw_overlay(image, [mask], [(40, 35, 75, 55)], ["cat 0.9"])
    assert isinstance(out, Image.Image) and out.size == (80, 60) and out.mode == "RGB"
    pixels = np.asarray(out)
    assert (pixels[mask] != 100).any(axis=1).all()  # every mask pixel changed
    assert (pixels[0:5, 0:10] == 100).all()  # far from mask and box: untouched
    assert (pixels[55:, 0:10] == 100).all()
    assert (pixels[45, 40] != 100).any()  # the box's left edge


def test_overlay_rejects_mismatched_mask_and_accepts_missing_boxes():
    image = np.zeros((10, 10), dtype=np.uint8)
    assert draw_overlay(image, [np.ones((10, 10), bool)], [None], []).size == (10, 10)
    with pytest.raises(ValueError, match="shape"):
        draw_overlay(image, [np.ones((5, 5), bool)], [], [])


# --- image_id cache and errors -------------------------------------------------------------------


def test_image_id_cache_is_bounded_lru():
    cache = ImageIdCache(capacity=2)
    cache.put(b"a", "img_a")
    cache.put(b"b", "img_b")
    assert cache.get(b"a") == "img_a"  # a is now the most recent
    cache.put(b"c", "img_c")
    assert (cache.get(b"a"), cache.get(b"b"), cache.get(b"c"), len(cache)) == ("img_a", None, "img_c", 2)


def test_image_upload_resends_bytes_once_on_not_found():
    cache = ImageIdCache()
    data = encode_image(_rgb())
    upload = cache.prepare(data)
    assert upload.sends_bytes and upload.message().data == data
    upload.remember("img_1")
    again = cache.prepare(data)
    assert again.message().image_id == "img_1" and not again.sends_bytes
    assert not again.should_resend(LabelgateClientError(grpc.StatusCode.INVALID_ARGUMENT, "bad point"))
    assert again.should_resend(LabelgateClientError(grpc.StatusCode.NOT_FOUND, "unknown image_id"))
    assert again.message().data == data and cache.get(digest(data)) is None
    assert not again.should_resend(LabelgateClientError(grpc.StatusCode.NOT_FOUND, "unknown image_id"))
    explicit = cache.prepare(ImageId("img_2"))
    assert explicit.message().image_id == "img_2"
    assert not explicit.should_resend(LabelgateClientError(grpc.StatusCode.NOT_FOUND, "unknown image_id"))


def test_error_unreachable():
    refused = LabelgateClientError(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses; Connection refused")
    loading = LabelgateClientError(grpc.StatusCode.UNAVAILABLE, "the models are still loading; retry shortly")
    assert refused.unreachable and not loading.unreachable
    assert str(loading) == "UNAVAILABLE: the models are still loading; retry shortly"


def test_client_import_does_not_pull_heavy_dependencies():
    code = (
        "import sys, labelgate.client, labelgate.client.cli, labelgate.client.overlay\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'sam2', 'transformers', 'cv2')"
        " or m.startswith(('labelgate.server', 'labelgate.models'))]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
