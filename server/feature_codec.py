"""Image features <-> compact bytes, for the shared (Redis) feature cache tier: SAM 2's `ImageFeatures`
(SAM 2, EdgeTAM) and SAM 3's `ConceptImageFeatures`.

Layout: b"LGF1" | header length (u32, little endian) | JSON header | raw tensor bytes, in order.
The header carries `format` ("sam2", or "sam3"; absent in entries of earlier versions: "sam2"),
`orig_hw`, the array kind the writer's backend used ("torch" or "numpy", for information: the
reader asks for its own) and, per tensor, its name, shape and stored dtype.

SAM 2 tensors: `image_embed`, then `high_res_0`, `high_res_1`, ... (the finest level first, as
`ImageFeatures.high_res_feats` keeps them). Tensors named in FP16_TENSORS are stored as float16,
halving the bytes (16 -> 8 MiB per image at 1024 px). `bench/feature_precision.py` measured that
this keeps every mask within IoU 0.999 of fp32 (see docs/operations.md, "Running at scale"). A
tensor whose values do not fit float16 is stored as float32 anyway. Decoding always gives float32
(what an fp32 decoder needs, and what autocast takes for bf16/fp16 decoders), so `nbytes` matches
what the local encoder would have produced for an fp32 model.

SAM 3 tensors: `fpn_0`, `fpn_1`, ... (the FPN levels, batch axis of 1), then, where the weights have
a tracker, `tracker_image_embed`, `tracker_high_res_0`, ... (its SAM 2-shaped click features). They
are stored losslessly (float32, cast back to the model's dtype, `torch_dtype` in the header), so
that restored features give exactly the concepts and masks of computed ones. The FPN position
encodings are not stored: they depend on the shape alone, and the reading backend supplies them
(`position_encodings`, its shared copy per shape). SAM 3 features are always torch tensors.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from labelgate.models.backend import ImageFeatures
from labelgate.models.sam3.concepts import ConceptImageFeatures

MAGIC = b"LGF1"
FP16_TENSORS = frozenset({"image_embed", "high_res_0", "high_res_1"})
_FP16_MAX = float(np.finfo(np.float16).max)
_LENGTH = struct.Struct("<I")
# The ConceptImageFeatures fields this codec stores (the position encodings by their shapes): a
# field added later must be given a place here before such features are shared.
_CONCEPT_FIELDS = frozenset({"fpn_hidden_states", "fpn_position_encoding", "orig_hw", "nbytes", "tracker"})

PositionEncodings = Callable[[Sequence], Sequence]  # FPN levels -> their position encodings


class FeatureFormatError(ValueError):
    """Bytes that are not features this codec wrote (another format version, truncated, ...)."""


class UnshareableFeatures(TypeError):
    """Features of a type (or with fields) this codec cannot store."""


@dataclass(frozen=True)
class SharedTierFeatures(ImageFeatures):
    """Features read back from the shared tier rather than computed by this process's encoder."""


@dataclass(frozen=True)
class SharedTierConceptFeatures(ConceptImageFeatures):
    """SAM 3 features read back from the shared tier."""


def from_shared_tier(features) -> bool:
    return isinstance(features, (SharedTierFeatures, SharedTierConceptFeatures))


def tensor_names(num_high_res: int, prefix: str = "") -> list[str]:
    return [f"{prefix}image_embed"] + [f"{prefix}high_res_{level}" for level in range(num_high_res)]


def encode_features(features: ImageFeatures | ConceptImageFeatures, fp16: frozenset[str] = FP16_TENSORS) -> bytes:
    """The bytes of SAM 2 features (`fp16`: the tensors stored as float16) or of SAM 3 features
    (always lossless). UnshareableFeatures for anything else."""
    if isinstance(features, ConceptImageFeatures):
        return _encode_concepts(features)
    if not isinstance(features, ImageFeatures):
        raise UnshareableFeatures(f"the shared tier cannot store {type(features).__name__}")
    tensors = [features.image_embed, *features.high_res_feats]
    kind = "numpy" if isinstance(features.image_embed, np.ndarray) else "torch"
    names = tensor_names(len(features.high_res_feats))
    return _pack({"format": "sam2", "orig_hw": _hw(features.orig_hw), "kind": kind}, zip(names, tensors), fp16)


def decode_features(data: bytes, kind: str = "numpy", device: str = "cpu",
                    position_encodings: PositionEncodings | None = None) -> SharedTierFeatures | SharedTierConceptFeatures:
    """SAM 2 features, float32, as numpy arrays or with kind "torch" as torch tensors on `device`; or
    SAM 3 features (torch on `device`), whose position encodings `position_encodings` gives."""
    header, arrays = _unpack(data)
    form = header.get("format", "sam2")
    if form == "sam3":
        return _decode_concepts(header, arrays, device, position_encodings)
    if form != "sam2":
        raise FeatureFormatError(f"unknown feature format {form!r}")
    nbytes = sum(array.nbytes for array in arrays.values())
    values = list(arrays.values())
    if kind == "torch":
        values = _to_torch(values, device)
    return SharedTierFeatures(
        image_embed=values[0], high_res_feats=tuple(values[1:]), orig_hw=tuple(header["orig_hw"]), nbytes=nbytes
    )


# --- SAM 3 ---------------------------------------------------------------------------------------


def _encode_concepts(features: ConceptImageFeatures) -> bytes:
    extra = {field.name for field in dataclasses.fields(features)} - _CONCEPT_FIELDS
    if extra:
        raise UnshareableFeatures(f"the shared tier does not store the SAM 3 feature field(s) {', '.join(sorted(extra))}")
    named = [(f"fpn_{level}", tensor) for level, tensor in enumerate(features.fpn_hidden_states)]
    tracker = features.tracker
    if tracker is not None:
        named += zip(tensor_names(len(tracker.high_res_feats), "tracker_"), [tracker.image_embed, *tracker.high_res_feats])
    dtype = str(features.fpn_hidden_states[0].dtype).removeprefix("torch.")
    header = {"format": "sam3", "orig_hw": _hw(features.orig_hw), "kind": "torch", "torch_dtype": dtype,
              "tracker_orig_hw": _hw(tracker.orig_hw) if tracker is not None else None}
    return _pack(header, named, frozenset())


def _decode_concepts(header: dict, arrays: dict[str, np.ndarray], device: str,
                     position_encodings: PositionEncodings | None) -> SharedTierConceptFeatures:
    import torch

    if position_encodings is None:
        raise FeatureFormatError("SAM 3 features need the position encodings of a SAM 3 backend")
    dtype = getattr(torch, str(header.get("torch_dtype", "float32")), None)
    if not isinstance(dtype, torch.dtype):
        raise FeatureFormatError(f"unknown torch dtype {header.get('torch_dtype')!r}")
    tensors = dict(zip(arrays, (tensor.to(dtype) for tensor in _to_torch(list(arrays.values()), device))))
    levels = tuple(tensors.pop(f"fpn_{level}") for level in range(sum(name.startswith("fpn_") for name in arrays)))
    if not levels:
        raise FeatureFormatError("SAM 3 features without FPN levels")
    tracker = None
    if "tracker_image_embed" in tensors:
        embed = tensors.pop("tracker_image_embed")
        count = sum(name.startswith("tracker_high_res_") for name in tensors)
        high_res = tuple(tensors.pop(name) for name in tensor_names(count, "tracker_")[1:])
        tracker = ImageFeatures(embed, high_res, tuple(header["tracker_orig_hw"]), _nbytes((embed, *high_res)))
    if tensors:
        raise FeatureFormatError(f"unexpected SAM 3 tensors {', '.join(tensors)}")
    nbytes = _nbytes(levels) + (tracker.nbytes if tracker is not None else 0)
    return SharedTierConceptFeatures(levels, tuple(position_encodings(levels)), tuple(header["orig_hw"]), nbytes, tracker)


# --- bytes ---------------------------------------------------------------------------------------


def _pack(header: dict, named_tensors, fp16: frozenset[str]) -> bytes:
    entries, payloads = [], []
    for name, tensor in named_tensors:
        array = _to_float32_numpy(tensor)
        if name in fp16 and (array.size == 0 or float(np.abs(array).max()) <= _FP16_MAX):
            array = array.astype(np.float16)
        entries.append({"name": name, "shape": list(array.shape), "dtype": array.dtype.name})
        payloads.append(np.ascontiguousarray(array).tobytes())
    encoded = json.dumps({**header, "tensors": entries}).encode()
    return b"".join([MAGIC, _LENGTH.pack(len(encoded)), encoded, *payloads])


def _unpack(data: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and the tensors by name, as float32 numpy arrays, in the order written."""
    if data[:4] != MAGIC or len(data) < 8:
        raise FeatureFormatError("not labelgate features (bad magic)")
    (header_length,) = _LENGTH.unpack_from(data, 4)
    try:
        header = json.loads(data[8:8 + header_length])
    except ValueError as error:
        raise FeatureFormatError(f"unreadable header: {error}") from None
    offset = 8 + header_length
    arrays = {}
    for entry in header["tensors"]:
        dtype = np.dtype(entry["dtype"])
        count = int(np.prod(entry["shape"], dtype=np.int64))
        end = offset + count * dtype.itemsize
        if end > len(data):
            raise FeatureFormatError("truncated tensor data")
        arrays[entry["name"]] = np.frombuffer(data, dtype, count, offset).reshape(entry["shape"]).astype(np.float32)
        offset = end
    if offset != len(data):
        raise FeatureFormatError("trailing bytes after the tensors")
    return header, arrays


def _hw(orig_hw) -> list[int]:
    return [int(v) for v in orig_hw]


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _to_float32_numpy(tensor) -> np.ndarray:
    if isinstance(tensor, np.ndarray):
        return tensor.astype(np.float32, copy=False)
    return tensor.detach().float().cpu().numpy()


def _to_torch(arrays: list[np.ndarray], device: str) -> list:
    import torch

    try:
        target = torch.device(device)
    except RuntimeError:  # a backend whose device is not a torch device name
        target = torch.device("cpu")
    return [torch.from_numpy(array).to(target) for array in arrays]
