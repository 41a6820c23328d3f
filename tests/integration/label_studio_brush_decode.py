"""Run with the Label Studio venv's Python: decodes brush RLEs with Label Studio's own codec.

stdin: JSON [{rle, height, width}, ...]; stdout: JSON [H x W nested lists of 0/1, ...].
"""

import json
import sys

from label_studio_sdk.converter.brush import decode_rle

masks = []
for item in json.load(sys.stdin):
    rgba = decode_rle(item["rle"]).reshape(item["height"], item["width"], 4)
    masks.append((rgba[:, :, 3] > 0).astype(int).tolist())
json.dump(masks, sys.stdout)
