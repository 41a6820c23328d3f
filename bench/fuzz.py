"""Property-based fuzz cases for every RPC of labelgate.v1.Labelgate, each with the status codes
the contract allows for it.

A case is the serialized request (or raw bytes) for one method path, and a verdict built while it
was drawn: a code for every mistake surely in it (the server may report any of them first),
codes that may come for things that may or may not be mistakes (a corrupted byte the decoder may
never read), and OK only when there is no sure mistake. The verdicts state the contract
(docs/api.md, "Errors"); the checks behind them live in the server, not here.

`labelgate.bench.fuzz_runner` sends the cases; tests/integration/test_fuzz.py runs it.
"""

from __future__ import annotations

import functools
import math
import string
from dataclasses import dataclass

import grpc
import numpy as np
from google.protobuf.message import DecodeError
from hypothesis import strategies as st

from labelgate.bench.fuzz_images import FuzzImage, images, supported_images
from labelgate.v1 import labelgate_pb2 as pb

Code = grpc.StatusCode
SERVICE = "labelgate.v1.Labelgate"
REQUESTS = {"Embed": pb.EmbedRequest, "Segment": pb.SegmentRequest, "Detect": pb.DetectRequest,
            "ListModels": pb.ListModelsRequest}
RESPONSES = {"Embed": pb.EmbedResponse, "Segment": pb.SegmentResponse, "Detect": pb.DetectResponse,
             "ListModels": pb.ListModelsResponse}
# Grounding DINO proposes at most this many boxes: the most objects a text prompt can give.
MAX_DETECTIONS = 900
# Names longer than this, or with control characters, may also be refused as malformed.
PLAIN_NAME_CHARS = 256


@dataclass(frozen=True)
class ServerFacts:
    """What the fuzzer needs to know about the server under test to say what is a mistake."""

    sam2_models: tuple[str, ...]
    detector_models: tuple[str, ...]
    known_images: tuple[tuple[str, int, int], ...]  # (image_id, width, height) the server has seen
    max_image_pixels: int
    max_message_bytes: int
    max_points: int
    max_boxes: int
    max_text_chars: int


@dataclass(frozen=True)
class Verdict:
    refused: frozenset = frozenset()  # one code per mistake surely in the request
    possible: frozenset = frozenset()  # codes for what may or may not be a mistake
    labels: tuple[str, ...] = ()

    def __add__(self, other: "Verdict") -> "Verdict":
        return Verdict(self.refused | other.refused, self.possible | other.possible, self.labels + other.labels)

    @property
    def allowed(self) -> frozenset:
        return self.refused | self.possible if self.refused else self.possible | {Code.OK}


FINE = Verdict()


def mistake(label: str, *codes: Code) -> Verdict:
    return Verdict(refused=frozenset(codes or (Code.INVALID_ARGUMENT,)), labels=(label,))


def perhaps(label: str, *codes: Code) -> Verdict:
    return Verdict(possible=frozenset(codes or (Code.INVALID_ARGUMENT,)), labels=(label,))


def note(label: str) -> Verdict:
    return Verdict(labels=(label,))


@dataclass(frozen=True)
class Case:
    method: str  # the last part of the method path; not always one the service has
    payload: bytes
    verdict: Verdict
    size: tuple[int, int] | None = None  # (width, height) an OK answer must report
    timeout: float = 60.0
    service: str = SERVICE

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method}"

    @property
    def allowed(self) -> frozenset:
        return self.verdict.allowed

    @property
    def label(self) -> str:
        return "; ".join(self.verdict.labels) or "valid"


def make_case(facts: ServerFacts, method: str, payload: bytes, verdict: Verdict, size=None, timeout: float = 60.0,
              service: str = SERVICE) -> Case:
    """A message over the server's limit to one of its methods is refused by gRPC before anything reads it."""
    if len(payload) > facts.max_message_bytes and service == SERVICE and method in REQUESTS:
        verdict = Verdict(frozenset({Code.RESOURCE_EXHAUSTED}), labels=verdict.labels + (
            f"{len(payload)} bytes, over the {facts.max_message_bytes} byte message limit",))
    if timeout < 1 and Code.DEADLINE_EXCEEDED not in verdict.possible:
        verdict += perhaps(f"{timeout * 1000:g} ms deadline", Code.DEADLINE_EXCEEDED)
    return Case(method, payload, verdict, size if Code.OK in verdict.allowed else None, timeout, service)


# --- numbers and strings --------------------------------------------------------------------------


def _f32(value: float) -> float:
    """What the server reads back from a proto float."""
    with np.errstate(over="ignore"):
        return float(np.float32(value))


_NASTY_FLOATS = (0.0, -0.0, 1e-45, -1e-45, 0.5, 1.0, -1.0, 1e38, -1e38, 3.4028234663852886e38, math.nan, math.inf,
                 -math.inf)


@functools.lru_cache(maxsize=None)
def inside(extent: int) -> st.SearchStrategy[float]:
    return st.floats(0, extent, width=32)


@functools.lru_cache(maxsize=None)
def coordinates(extent: int) -> st.SearchStrategy[float]:
    return st.one_of(
        inside(extent),
        st.sampled_from(_NASTY_FLOATS + (float(extent), extent + 0.5, extent + 1e-3, -1e-3)),
        st.floats(width=32),
    ).map(_f32)


valid_thresholds = st.just(0.0) | st.floats(0, 1, width=32)
thresholds = st.one_of(
    valid_thresholds,
    st.sampled_from(_NASTY_FLOATS + (1.0000001, -1e-7, 2.0)),
    st.floats(width=32),
).map(_f32)

_SCRIPTS = {
    "ascii": st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    "latin": st.characters(min_codepoint=0xA0, max_codepoint=0x24F),
    "cyrillic": st.characters(min_codepoint=0x400, max_codepoint=0x4FF),
    "arabic": st.characters(min_codepoint=0x600, max_codepoint=0x6FF),
    "cjk": st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
    "emoji": st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),
    "combining": st.characters(min_codepoint=0x300, max_codepoint=0x36F),
    "control": st.characters(max_codepoint=0x1F) | st.characters(min_codepoint=0x7F, max_codepoint=0x9F),
    "spaces": st.sampled_from(" \t\n\r\x0b\x0c\x1c\x85\xa0\u2000\u2028\u3000\ufeff."),
    "any": st.characters(codec="utf-8"),
}
_PATTERNS = st.sampled_from(sorted(_SCRIPTS)).flatmap(lambda script: st.text(_SCRIPTS[script], min_size=1, max_size=8))
STRING_LENGTHS = (1, 2, 8, 40, 255, 256, 1999, 2000, 2001, 10_000, 100_000)


@st.composite
def strings(draw, lengths: tuple[int, ...] = STRING_LENGTHS) -> str:
    """A short drawn pattern in one script, repeated to one of `lengths` code points (100 k at most)."""
    pattern, length = draw(_PATTERNS), draw(st.sampled_from(lengths))
    return (pattern * math.ceil(length / len(pattern)))[:length]


def _plain(name: str) -> bool:
    return len(name) <= PLAIN_NAME_CHARS and name.isprintable()


def _unknown(what: str, name: str) -> Verdict:
    label = f"unknown {what} ({len(name)} chars: {name[:20]!r})"
    return mistake(label, Code.NOT_FOUND) if _plain(name) else mistake(label, Code.NOT_FOUND, Code.INVALID_ARGUMENT)


_TIMEOUTS = st.sampled_from((60.0,) * 38 + (0.001, 0.05))


class Fuzzer:
    """Draws the fields of one request: each is valid, or fuzzed with the case's chance (0 to 100 %),
    so that some cases are entirely valid and the rest carry one or many mistakes."""

    def __init__(self, draw, facts: ServerFacts):
        self.draw, self.facts = draw, facts
        self.chance = draw(st.sampled_from((0, 15, 30, 60, 100)))

    def fuzzed(self) -> bool:
        return self.draw(st.integers(0, 99)) < self.chance

    def timeout(self) -> float:
        """Now and then a deadline too short for the work (the answer may still make it)."""
        return self.draw(_TIMEOUTS)

    # --- names -----------------------------------------------------------------------------------

    def model(self, own: tuple[str, ...], others: tuple[str, ...], what: str) -> tuple[str, Verdict]:
        """'' (the default) or a loaded name; fuzzed: another kind's name, a near miss, any string."""
        draw = self.draw
        if not self.fuzzed() or not own:
            return draw(st.sampled_from(("",) + own)), FINE
        kind = draw(st.sampled_from(("other kind", "near miss", "any")))
        if kind == "other kind" and others:
            name = draw(st.sampled_from(others))
            label = f"{what} named {name!r}, a model of another kind"
            return name, mistake(label, Code.NOT_FOUND, Code.INVALID_ARGUMENT)
        if kind == "near miss":
            base = draw(st.sampled_from(own))
            name = draw(st.sampled_from((base + " ", " " + base, base.upper(), base + "\x00", base[:-1], base + "/1")))
        else:
            name = draw(strings())
        return name, (FINE if name in own + ("",) else _unknown(what, name))

    # --- images ----------------------------------------------------------------------------------

    def image(self) -> "ImagePart":
        """Valid: a known id (cheap: cached) or a supported upload; fuzzed: anything."""
        draw, facts = self.draw, self.facts
        if not self.fuzzed():
            if facts.known_images and draw(st.integers(0, 2)) > 0:
                return _known(draw(st.sampled_from(facts.known_images)))
            return _from_upload(draw(supported_images(facts.max_image_pixels)))
        kind = draw(st.sampled_from(("upload",) * 4 + ("unknown id", "malformed id", "none", "empty")))
        if kind == "upload":
            return _from_upload(draw(images(facts.max_image_pixels)))
        if kind == "unknown id":
            image_id = "img_" + draw(st.binary(min_size=16, max_size=16)).hex()
            return ImagePart(pb.Image(image_id=image_id), None, mistake("unknown image_id", Code.NOT_FOUND))
        if kind == "malformed id":
            known = [image_id for image_id, _, _ in facts.known_images] or ["img_" + "0" * 32]
            base = draw(st.sampled_from(known))
            near_misses = (base.upper(), base + "\n", base[:-1], base + "0", " " + base, "img_" + "g" * 32, base[4:])
            image_id = draw(st.sampled_from(near_misses) | strings())
            label = f"malformed image_id ({len(image_id)} chars)"
            return ImagePart(pb.Image(image_id=image_id), None, mistake(label, Code.NOT_FOUND, Code.INVALID_ARGUMENT))
        if kind == "empty":
            image = draw(st.sampled_from((pb.Image(data=b""), pb.Image(image_id=""))))
            return ImagePart(image, None, mistake(f"empty Image.{image.WhichOneof('source')}"))
        return ImagePart(None, None, mistake("no image"))

    # --- geometry --------------------------------------------------------------------------------

    def count(self, limit: int, valid: tuple[int, ...]) -> int:
        if not self.fuzzed():
            return self.draw(st.sampled_from(valid))
        return self.draw(st.sampled_from((1, 2, 3, limit, limit + 1, 1_000, 100_000)))

    def points(self, image: "ImagePart") -> tuple[bytes, int, Verdict]:
        """Encoded `points` fields (field 2 of SegmentRequest), their count and verdict."""
        width, height = image.size or (64, 64)
        if self.fuzzed():
            one = st.tuples(coordinates(width), coordinates(height), st.booleans())
        else:
            one = st.tuples(inside(width), inside(height), st.booleans())
        template = self.draw(st.lists(one, min_size=1, max_size=3))
        count = self.count(self.facts.max_points, (1, 1, 2, 3, self.facts.max_points))
        verdict = note(f"{count} points")
        if count > self.facts.max_points:
            verdict += mistake(f"{count} points over the limit of {self.facts.max_points}")
        verdict += _first_flaw(_point_verdict(x, y, image, i) for i, (x, y, _) in enumerate(template[:count]))
        encoded = [pb.Point(x=x, y=y, negative=negative).SerializeToString() for x, y, negative in template]
        return _repeated(2, encoded, count), count, verdict

    def boxes(self, image: "ImagePart", count: int | None = None) -> tuple[bytes, int, Verdict]:
        """Encoded `boxes` fields (field 3 of SegmentRequest), their count and verdict."""
        width, height = image.size or (64, 64)
        ordered = st.tuples(inside(width), inside(width), inside(height), inside(height)).map(
            lambda v: (min(v[0], v[1]), min(v[2], v[3]), max(v[0], v[1]), max(v[2], v[3])))
        one = ordered
        if self.fuzzed():
            one = ordered | st.tuples(coordinates(width), coordinates(height), coordinates(width), coordinates(height))
        template = self.draw(st.lists(one, min_size=1, max_size=3))
        count = count if count is not None else self.count(self.facts.max_boxes, (1, 1, 2, 3, self.facts.max_boxes))
        verdict = note(f"{count} boxes")
        if count > self.facts.max_boxes:
            verdict += mistake(f"{count} boxes over the limit of {self.facts.max_boxes}")
        verdict += _first_flaw(_box_verdict(box, image, i) for i, box in enumerate(template[:count]))
        encoded = [pb.Box(x_min=a, y_min=b, x_max=c, y_max=d).SerializeToString() for a, b, c, d in template]
        return _repeated(3, encoded, count), count, verdict

    # --- the rest --------------------------------------------------------------------------------

    def text(self) -> tuple[str, Verdict]:
        text = self.draw(texts if self.fuzzed() else st.sampled_from(GOOD_CAPTIONS))
        return text, text_verdict(text, self.facts)

    def thresholds(self) -> tuple[float, float, Verdict]:
        box = self.draw(thresholds if self.fuzzed() else valid_thresholds)
        text = self.draw(thresholds if self.fuzzed() else valid_thresholds)
        return box, text, _threshold_verdict(box, "box_threshold") + _threshold_verdict(text, "text_threshold")

    def formats(self) -> tuple[list[int], Verdict]:
        if not self.fuzzed():
            return self.draw(st.lists(st.sampled_from((pb.COCO_RLE, pb.POLYGONS, pb.PNG)), max_size=3)), FINE
        values = self.draw(st.one_of(
            st.lists(st.sampled_from(_FORMAT_VALUES), max_size=4),
            st.sampled_from(([pb.PNG] * 50_000, [pb.POLYGONS, pb.COCO_RLE] * 10_000, [7] * 1000)),
        ))
        unknown = [v for v in values if v not in (pb.COCO_RLE, pb.POLYGONS, pb.PNG)]
        return values, (mistake(f"unknown mask format {unknown[0]}") if unknown else FINE)


def _repeated(number: int, encoded: list[bytes], count: int) -> bytes:
    """`count` entries of a repeated message field cycling through `encoded`, built as bytes:
    100 000 points cost a join, not 100 000 messages."""
    entries = [_field(number, 2, _varint(len(item)) + item) for item in encoded]
    whole, rest = divmod(count, len(entries))
    return b"".join(entries) * whole + b"".join(entries[:rest])


# --- images ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImagePart:
    image: pb.Image | None
    size: tuple[int, int] | None  # upright (width, height) when it surely resolves
    verdict: Verdict


def _known(known: tuple[str, int, int]) -> ImagePart:
    image_id, width, height = known
    return ImagePart(pb.Image(image_id=image_id), (width, height), note(f"known image_id {width}x{height}"))


def _from_upload(sample: FuzzImage) -> ImagePart:
    image = pb.Image(data=sample.data)
    if sample.decodes is True:
        return ImagePart(image, sample.size, note(sample.label))
    if sample.decodes is False:
        return ImagePart(image, None, mistake(f"bad image: {sample.label}"))
    return ImagePart(image, None, perhaps(f"doubtful image: {sample.label}"))


def _point_verdict(x: float, y: float, image: ImagePart, index: int) -> Verdict:
    if not (math.isfinite(x) and math.isfinite(y)):
        return mistake(f"point {index} non-finite ({x}, {y})")
    return _inside(image, f"point {index} ({x}, {y})", lambda w, h: 0 <= x <= w and 0 <= y <= h)


def _box_verdict(box: tuple[float, float, float, float], image: ImagePart, index: int) -> Verdict:
    x_min, y_min, x_max, y_max = box
    if not all(math.isfinite(v) for v in box):
        return mistake(f"box {index} non-finite {box}")
    if x_max <= x_min or y_max <= y_min:
        return mistake(f"box {index} empty or inverted {box}")
    return _inside(image, f"box {index} {box}", lambda w, h: 0 <= x_min and 0 <= y_min and x_max <= w and y_max <= h)


def _inside(image: ImagePart, what: str, rule) -> Verdict:
    """Whether coordinates fit the image is only checked once the image resolves."""
    if image.verdict.refused:
        return FINE
    if image.size is None:
        return perhaps(f"{what} on an image of unknown size")
    return FINE if rule(*image.size) else mistake(f"{what} outside {image.size[0]}x{image.size[1]}")


def _first_flaw(verdicts) -> Verdict:
    """One verdict per repeated item would bury the label: keep the first flaw of each kind."""
    total = FINE
    for verdict in verdicts:
        if verdict.refused - total.refused or verdict.possible - total.possible:
            total += verdict
    return total


# --- text prompts ---------------------------------------------------------------------------------

# The last is within the 2,000 characters allowed but more tokens than Grounding DINO reads (256).
GOOD_CAPTIONS = ("cat .", "car . person . dog .", "red car", "CAT . Dog", "a big tree", "cat . dog . " * 166)
texts = st.one_of(st.sampled_from(GOOD_CAPTIONS + (" . ", "...", ". . .", "\t\n", "cat.dog.", "仟" * 300)), strings())


def text_verdict(text: str, facts: ServerFacts) -> Verdict:
    if not text.replace(".", " ").strip():
        return mistake(f"empty text prompt {text[:12]!r}")
    if len(text) > facts.max_text_chars:
        return mistake(f"text of {len(text)} characters over {facts.max_text_chars}")
    # No word the tokenizer knows, or more tokens than the detector reads: refusing it is fair too.
    if not any(c.isascii() and c.isalnum() for c in text) or len(text) > 256:
        return perhaps(f"odd text ({len(text)} chars: {text[:20]!r})")
    return note(f"text {text[:20]!r}")


def _threshold_verdict(value: float, name: str) -> Verdict:
    if value == 0 or (math.isfinite(value) and 0 <= value <= 1):
        return FINE
    return mistake(f"{name} {value}")


# --- one strategy per RPC -------------------------------------------------------------------------

_FORMAT_VALUES = (pb.COCO_RLE, pb.POLYGONS, pb.PNG) * 2 + (3, 7, -1, 2**31 - 1, -(2**31))


@st.composite
def embed_cases(draw, facts: ServerFacts) -> Case:
    fuzzer = Fuzzer(draw, facts)
    image = fuzzer.image()
    model, model_verdict = fuzzer.model(facts.sam2_models, facts.detector_models, "SAM 2 model")
    request = pb.EmbedRequest(image=image.image, model=model)
    return make_case(facts, "Embed", request.SerializeToString(), image.verdict + model_verdict, image.size,
                     fuzzer.timeout())


_PROMPTS = ("points", "boxes", "points+box", "text")


@st.composite
def segment_cases(draw, facts: ServerFacts) -> Case:
    fuzzer = Fuzzer(draw, facts)
    image = fuzzer.image()
    prompt = draw(st.sampled_from(_PROMPTS + (("nothing", "text+points", "text+boxes") if fuzzer.fuzzed() else ())))
    verdict, geometry, point_count, box_count = FINE, b"", 0, 0
    if "points" in prompt:
        geometry, point_count, verdict = fuzzer.points(image)
    if "box" in prompt:
        one_box = prompt == "points+box" and not fuzzer.fuzzed()
        encoded, box_count, box_verdict = fuzzer.boxes(image, 1 if one_box else None)
        geometry, verdict = geometry + encoded, verdict + box_verdict
    text = ""
    if "text" in prompt:
        text, text_part = fuzzer.text()
        verdict += text_part
    elif fuzzer.fuzzed():
        text = draw(st.sampled_from((" ", "\t")))
        verdict += text_verdict(text, facts)
    if text.strip() and geometry:
        verdict += mistake("text with points or boxes")
    if not text.strip() and not geometry:
        verdict += mistake("empty prompt")
    if point_count and box_count > 1:
        verdict += mistake("points with several boxes")
    formats, format_verdict = fuzzer.formats()
    box_threshold, text_threshold, threshold_verdict = fuzzer.thresholds()
    model, model_verdict = fuzzer.model(facts.sam2_models, facts.detector_models, "SAM 2 model")
    detector, detector_verdict = fuzzer.model(facts.detector_models, facts.sam2_models, "Grounding DINO model")
    multimask = draw(st.booleans())
    verdict += image.verdict + format_verdict + threshold_verdict + model_verdict
    if text.strip():
        verdict += detector_verdict
    elif not _plain(detector):  # unused without a text prompt; refusing it as malformed is fair too
        verdict += perhaps(f"unused detector_model of {len(detector)} chars")
    if not verdict.refused:
        objects = MAX_DETECTIONS if text.strip() else max(1, box_count)
        verdict += _big_answer(facts, image, objects * (3 if multimask else 1))
    request = pb.SegmentRequest(
        image=image.image, text=text, multimask_output=multimask, formats=formats, box_threshold=box_threshold,
        text_threshold=text_threshold, model=model, detector_model=detector,
    )
    return make_case(facts, "Segment", request.SerializeToString() + geometry, verdict, image.size, fuzzer.timeout())


def _big_answer(facts: ServerFacts, image: ImagePart, masks: int) -> Verdict:
    """Masks of random-weight models are noise: a polygon can take ~16 bytes a pixel. An answer
    over the message limit cannot be sent, and RESOURCE_EXHAUSTED says so."""
    width, height = image.size or (1000, 1000)
    if masks * width * height * 16 > facts.max_message_bytes:
        return perhaps(f"{masks} masks of {width}x{height} may exceed the message limit", Code.RESOURCE_EXHAUSTED)
    return FINE


@st.composite
def detect_cases(draw, facts: ServerFacts) -> Case:
    fuzzer = Fuzzer(draw, facts)
    image = fuzzer.image()
    text, verdict = fuzzer.text()
    box_threshold, text_threshold, threshold_verdict = fuzzer.thresholds()
    model, model_verdict = fuzzer.model(facts.detector_models, facts.sam2_models, "Grounding DINO model")
    verdict += image.verdict + threshold_verdict + model_verdict
    if not verdict.refused and MAX_DETECTIONS * len(text.encode()) > facts.max_message_bytes:
        verdict += perhaps("labels may exceed the message limit", Code.RESOURCE_EXHAUSTED)
    request = pb.DetectRequest(image=image.image, text=text, box_threshold=box_threshold, text_threshold=text_threshold,
                               model=model)
    return make_case(facts, "Detect", request.SerializeToString(), verdict, image.size, fuzzer.timeout())


@st.composite
def list_models_cases(draw, facts: ServerFacts) -> Case:
    return make_case(facts, "ListModels", b"", FINE, None, Fuzzer(draw, facts).timeout())


# --- bytes on the wire ----------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, wire_type: int, body: bytes) -> bytes:
    return _varint(number << 3 | wire_type) + body


@st.composite
def unknown_fields(draw) -> bytes:
    # Numbers no request uses (SegmentRequest has grown to 12): one-byte tags up to 15, longer ones above.
    number = draw(st.sampled_from((15, 16, 100, 2047, 2048, 2**29 - 1)))
    wire_type = draw(st.sampled_from((0, 1, 2, 5, 3)))
    if wire_type == 0:
        return _field(number, 0, _varint(draw(st.integers(0, 2**64 - 1))))
    if wire_type == 1:
        return _field(number, 1, draw(st.binary(min_size=8, max_size=8)))
    if wire_type == 5:
        return _field(number, 5, draw(st.binary(min_size=4, max_size=4)))
    if wire_type == 3:  # a group: start, one varint inside, end
        return _field(number, 3, b"") + _field(1, 0, b"\x01") + _field(number, 4, b"")
    body = draw(st.binary(max_size=64)) if draw(st.booleans()) else bytes(draw(st.sampled_from((1_000, 100_000))))
    return _field(number, 2, _varint(len(body)) + body)


def parsed_verdict(method: str, raw: bytes) -> Verdict:
    """Bytes that do not parse are the caller's mistake; bytes that do make some request, whose
    mistakes (if any) are the caller's too."""
    try:
        REQUESTS[method].FromString(raw)
    except DecodeError:
        return mistake(f"{len(raw)} bytes that are not a {REQUESTS[method].__name__}")
    if method == "ListModels":
        return note("bytes that parse as a ListModelsRequest")
    return perhaps(f"{len(raw)} raw bytes that parse", Code.INVALID_ARGUMENT, Code.NOT_FOUND)


# Field numbers of a string in each request, for invalid UTF-8.
_STRING_FIELDS = {"Embed": (2,), "Segment": (4, 9, 10, 11), "Detect": (2, 5)}
_METHOD_NAMES = st.text(st.sampled_from(string.ascii_letters + string.digits + "_.-"), max_size=40)
_random_bytes = st.binary(min_size=1, max_size=200) | st.builds(
    lambda size, seed: np.random.default_rng(seed).bytes(size), st.sampled_from((1_000, 100_000)), st.integers(0, 3))


@st.composite
def wire_cases(draw, facts: ServerFacts, typed: st.SearchStrategy[Case]) -> Case:
    kind = draw(st.sampled_from(("random bytes", "unknown fields", "oversized", "truncated", "bad utf-8",
                                 "other method's message", "unknown method", "unknown service")))
    method = draw(st.sampled_from(sorted(REQUESTS)))
    timeout = Fuzzer(draw, facts).timeout()
    if kind == "random bytes":
        raw = draw(_random_bytes)
        return make_case(facts, method, raw, parsed_verdict(method, raw), timeout=timeout)
    base = draw(typed)
    if kind == "unknown fields":
        extra = b"".join(draw(st.lists(unknown_fields(), min_size=1, max_size=3)))
        return make_case(facts, base.method, base.payload + extra,
                         base.verdict + note(f"+{len(extra)} bytes of unknown fields"), base.size, base.timeout)
    if kind == "oversized":  # one unknown field that takes the message just past the limit
        padding = bytes(max(0, facts.max_message_bytes - len(base.payload)))
        return make_case(facts, base.method, base.payload + _field(100, 2, _varint(len(padding)) + padding),
                         base.verdict, base.size, base.timeout, base.service)
    if kind == "truncated" and base.payload:
        raw = base.payload[: draw(st.integers(0, len(base.payload) - 1))]
        return make_case(facts, base.method, raw, parsed_verdict(base.method, raw) + note("truncated message"),
                         timeout=timeout)
    if kind == "bad utf-8" and base.method in _STRING_FIELDS:
        bad = draw(st.sampled_from((b"\xc3\x28", b"\xff", b"\xed\xa0\x80", b"ok\x80", b"\xf4\x90\x80\x80")))
        raw = base.payload + _field(draw(st.sampled_from(_STRING_FIELDS[base.method])), 2, _varint(len(bad)) + bad)
        return make_case(facts, base.method, raw, parsed_verdict(base.method, raw), timeout=timeout)
    if kind == "other method's message":
        return make_case(facts, method, base.payload, parsed_verdict(method, base.payload) +
                         note(f"a {base.method} request"), timeout=timeout)
    if kind == "unknown service":
        service = draw(st.sampled_from(("labelgate.v2.Labelgate", "labelgate.v1.labelgate", "Labelgate", "x")))
        return make_case(facts, method, base.payload, mistake(f"service {service}", Code.UNIMPLEMENTED),
                         timeout=timeout, service=service)
    name = draw(_METHOD_NAMES.filter(lambda n: n not in REQUESTS))
    return make_case(facts, name, base.payload, mistake(f"unknown method {name!r}", Code.UNIMPLEMENTED),
                     timeout=timeout)


def cases(facts: ServerFacts) -> st.SearchStrategy[Case]:
    """Any request to any method: typed requests with their mistakes, and raw bytes. (A method is
    drawn first, then its request: hypothesis's one_of would favour the branch with most room.)"""
    typed = {"Embed": embed_cases(facts), "Segment": segment_cases(facts), "Detect": detect_cases(facts),
             "ListModels": list_models_cases(facts)}
    typed_any = st.sampled_from(sorted(typed)).flatmap(typed.get)
    every = dict(typed, wire=wire_cases(facts, typed_any))
    return st.sampled_from(("Embed", "Segment", "Segment", "Detect", "ListModels", "wire", "wire")).flatmap(every.get)
