"""SAM 2 image features <-> compact bytes, for the shared (Redis) feature cache tier.

Layout: b"LGF1" | header length (u32, little endian) | JSON header | raw tensor bytes, in order.
The header carries `orig_hw`, the array kind the writer's backend used ("torch" or "numpy", for
information: the reader asks for its own) and, per tensor, its name, shape and stored dtype. Tensors: `image_embed`, then `high_res_0`,
`high_res_1`, ... (the finest level first, as `ImageFeatures.high_res_feats` keeps them).

Tensors named in FP16_TENSORS are stored as float16, halving the bytes (16 -> 8 MiB per image at
1024 px). `bench/feature_precision.py` measured that this keeps every mask within IoU 0.999 of
fp32 (see docs/operations.md, "Running at scale"). A tensor whose values do not fit float16 is stored as
float32 anyway. Decoding always gives float32 (what an fp32 decoder needs, and what autocast
takes for bf16/fp16 decoders), so `nbytes` matches what the local encoder would have produced
for an fp32 model.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

from labelgate.models.backend import ImageFeatures

MAGIC = b"LGF1"
FP16_TENSORS = frozenset({"image_embed", "high_res_0", "high_res_1"})
_FP16_MAX = float(np.finfo(np.float16).max)
_LENGTH = struct.Struct("<I")


class FeatureFormatError(ValueError):
    """Bytes that are not features this codec wrote (another format version, truncated, ...)."""


@dataclass(frozen=True)
class SharedTierFeatures(ImageFeatures):
    """Features read back from the shared tier rather than computed by this process's encoder."""


def tensor_names(num_high_res: int) -> list[str]:
    return ["image_embed"] + [f"high_res_{level}" for level in range(num_high_res)]


def encode_features(features: ImageFeatures, fp16: frozenset[str] = FP16_TENSORS) -> bytes:
    tensors = [features.image_embed, *features.high_res_feats]
    kind = "numpy" if isinstance(features.image_embed, np.ndarray) else "torch"
    entries, payloads = [], []
    for name, tensor in zip(tensor_names(len(features.high_res_feats)), tensors):
        array = _to_float32_numpy(tensor)
        if name in fp16 and (array.size == 0 or float(np.abs(array).max()) <= _FP16_MAX):
            array = array.astype(np.float16)
        entries.append({"name": name, "shape": list(array.shape), "dtype": array.dtype.name})
        payloads.append(np.ascontiguousarray(array).tobytes())
    header = json.dumps({"orig_hw": [int(v) for v in features.orig_hw], "kind": kind, "tensors": entries}).encode()
    return b"".join([MAGIC, _LENGTH.pack(len(header)), header, *payloads])


def decode_features(data: bytes, kind: str = "numpy", device: str = "cpu") -> SharedTierFeatures:
    """float32 features as numpy arrays, or with kind "torch" as torch tensors on `device`."""
    if data[:4] != MAGIC or len(data) < 8:
        raise FeatureFormatError("not labelgate features (bad magic)")
    (header_length,) = _LENGTH.unpack_from(data, 4)
    try:
        header = json.loads(data[8:8 + header_length])
    except ValueError as error:
        raise FeatureFormatError(f"unreadable header: {error}") from None
    offset = 8 + header_length
    arrays = []
    for entry in header["tensors"]:
        dtype = np.dtype(entry["dtype"])
        count = int(np.prod(entry["shape"], dtype=np.int64))
        end = offset + count * dtype.itemsize
        if end > len(data):
            raise FeatureFormatError("truncated tensor data")
        arrays.append(np.frombuffer(data, dtype, count, offset).reshape(entry["shape"]).astype(np.float32))
        offset = end
    if offset != len(data):
        raise FeatureFormatError("trailing bytes after the tensors")
    nbytes = sum(array.nbytes for array in arrays)
    if kind == "torch":
        arrays = _to_torch(arrays, device)
    return SharedTierFeatures(
        image_embed=arrays[0], high_res_feats=tuple(arrays[1:]), orig_hw=tuple(header["orig_hw"]), nbytes=nbytes
    )


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
