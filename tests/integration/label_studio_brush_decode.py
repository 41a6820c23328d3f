"""Run with the Label Studio venv's Python: decodes brush RLEs with Label Studio's own codec.

stdin: JSON [{rle, height, width}, ...]; stdout: an .npz with one H x W bool array per item
(mask0, mask1, ...).
"""

import json
import sys

import numpy as np
from label_studio_sdk.converter.brush import decode_rle

masks = {}
for index, item in enumerate(json.load(sys.stdin)):
    rgba = decode_rle(item["rle"]).reshape(item["height"], item["width"], 4)
    masks[f"mask{index}"] = rgba[:, :, 3] > 0
np.savez(sys.stdout.buffer, **masks)
