"""Label Studio's brush RLE (its `rle` region value), encoded without label_studio_sdk.

The same bit stream as label_studio_sdk.converter.brush.mask2rle (the thi.ng rle-pack format over
the mask's RGBA bytes, 255 where the mask is), which the light client cannot import; the Label
Studio adapter (clients/label_studio) uses the SDK's own encoder.
"""

from __future__ import annotations

import numpy as np

_WORD_BITS = 8
_RUN_BITS = (3, 4, 8, 16)  # the four run-length field sizes the header announces
_MAX_RUN = 1 << _RUN_BITS[-1]


def mask_to_brush_rle(mask: np.ndarray) -> list[int]:
    """An H x W bool mask -> the list of byte values Label Studio stores as a brush region's `rle`."""
    values = np.repeat(np.asarray(mask, dtype=bool).ravel().astype(np.uint8) * 255, 4)
    bits = [f"{len(values):032b}", f"{_WORD_BITS - 1:05b}", "".join(f"{size - 1:04b}" for size in _RUN_BITS)]
    for value, length in _runs(values):
        while length > 0:
            run = min(length, _MAX_RUN)
            bits.append(_run_bits(int(value), run))
            length -= run
    stream = "".join(bits)
    stream += "0" * (8 - len(stream) % 8)  # always some padding, as the SDK does (byte-identical output)
    return [int(stream[i:i + 8], 2) for i in range(0, len(stream), 8)]


def _runs(values: np.ndarray) -> list[tuple[int, int]]:
    if len(values) == 0:
        return []
    ends = np.append(np.flatnonzero(values[1:] != values[:-1]), len(values) - 1)
    lengths = np.diff(np.append(-1, ends))
    return list(zip(values[ends].tolist(), lengths.tolist()))


def _run_bits(value: int, length: int) -> str:
    """One run: a repeat flag, the index of the smallest length field that fits, length - 1, the value."""
    for index, size in enumerate(_RUN_BITS):
        if length - 1 < (1 << size):
            flag = "1" if length > 1 else "0"
            return f"{flag}{index:02b}{length - 1:0{size}b}{value:0{_WORD_BITS}b}"
    raise ValueError(f"run of {length} is longer than {_MAX_RUN}")
