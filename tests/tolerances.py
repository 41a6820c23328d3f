"""Every numeric tolerance the tests use, each derived from floating-point arithmetic, never from the
difference one machine happened to show.

Two kinds of comparison need one:

- Values carried, not computed (a float32 proto field, float16 storage): the rounding of that one
  conversion bounds the difference exactly.
- Two fp32 evaluations of the same network with the same weights and inputs that run other kernels:
  a batch against a single image, ONNX Runtime against PyTorch, a Triton server against the
  in-process model, another `ATEN_CPU_CAPABILITY`. They round differently (other summation orders,
  other vectorised exp/erf), so they agree only to `reordering_tolerance`.

Comparisons with no such cause stay exact: SAM 2 against `SAM2ImagePredictor` with the same batch
shape runs the same kernels on the same inputs and is bit-identical, and a value read back where it
was written is equal.
"""

from __future__ import annotations

import math

import numpy as np

UNIT_ROUNDOFF_FP32 = float(np.finfo(np.float32).eps) / 2  # 2**-24: |fl(x) - x| <= u|x|, round to nearest
UNIT_ROUNDOFF_FP16 = float(np.finfo(np.float16).eps) / 2  # 2**-11

# How many standard deviations of accumulated rounding error a bound allows. The probabilistic model
# (Higham & Mary, "A new approach to probabilistic rounding error analysis", SIAM J. Sci. Comput. 2019)
# treats each rounding as an independent error in [-u, u]; a sum of them exceeds LAMBDA standard
# deviations with probability below 2 exp(-LAMBDA**2 / 2) ~ 2.5e-14 per value, negligible over the
# ~1e6 values a test run compares.
LAMBDA = 8.0


def float32_rounding(magnitude: float) -> float:
    """A float64 value stored once as float32 (a proto `float` field) moves by at most u32 * |value|."""
    return UNIT_ROUNDOFF_FP32 * magnitude


# float32 values stored as float16 and read back, as `np.testing.assert_allclose(rtol=, atol=)` takes
# them: round to nearest moves a normal float16 by at most u16 = 2**-11 relative; below the smallest
# normal (2**-14) the spacing is 2**-24, so the move is at most half of that, absolute.
FP16_STORAGE_RTOL = UNIT_ROUNDOFF_FP16
FP16_STORAGE_ATOL = 2.0**-25


def rounded_inputs_tolerance(magnitude: float, unit_roundoff: float) -> float:
    """How far a result moves when each of its inputs was rounded once, relative by at most
    `unit_roundoff` (features read back from float16). In the model of `reordering_tolerance` these
    are one rounding per input, each reaching the result through the computation: LAMBDA standard
    deviations of u * magnitude, with no growth along the path (nothing is accumulated in the low
    precision, and only one side of the comparison was rounded)."""
    return LAMBDA * unit_roundoff * magnitude


def reordering_tolerance(magnitude: float, depth: float) -> float:
    """The largest |a - b| expected between two fp32 evaluations of one computation that differ only in
    the order (and kernels) of their roundings.

    `depth` is the number of roundings on the longest path from the inputs to the value: the sum of the
    lengths of the reductions (dot products, softmax and normalisation sums) along it, elementwise ops
    counting one each. In the probabilistic model each rounding adds an independent error of at most
    u32 relative to the values it combines; with LayerNorm keeping every layer's activations and gain
    O(1), the errors along the path add in quadrature: standard deviation u32 * sqrt(depth) * magnitude,
    `magnitude` being the largest |value| of the output (an upper bound on the activations feeding it
    in these models: their outputs are the largest values they compute). Two independent evaluations
    differ by sqrt(2) times that, and LAMBDA standard deviations bound it.
    """
    return LAMBDA * math.sqrt(2.0) * UNIT_ROUNDOFF_FP32 * math.sqrt(depth) * magnitude


def through_sigmoid(logit_tolerance: float) -> float:
    """sigmoid' <= 1/4 everywhere: a probability moves by at most a quarter of its logit's move."""
    return logit_tolerance / 4


# --- depths of the demo models (random weights, the real architectures shrunk: models/demo.py) ------
#
# SAM 2 image encoder (Hiera, stages [1, 1, 1, 1], 256 px, head dim 96), per block with input width
# C_in, output width C and T tokens per attention window: LayerNorm 2*C_in, qkv C_in, QK 96,
# softmax + AV 2T, projection C, LayerNorm 2C, MLP C + 4C, i.e. 3*C_in + 8C + 96 + 2T:
#   stage 1 (96 -> 96, T 64) 1280, stage 2 (96 -> 192, T 16) 1952, stage 3 (192 -> 384, T <= 256)
#   4256, stage 4 (384 -> 768, T 49) 7490; patch embedding 7*7*3 = 147; FPN neck 1x1 conv 768 + add.
#   Longest path ~15,900.
SAM2_DEMO_ENCODER_DEPTH = 16_000
# SAM 2 mask decoder (two-way transformer, width 256, depth 2, MLP 2048, ~12 tokens, 16x16 image
# tokens, cross attention downsampled to 128): per block self attention 568, token->image 912,
# MLP 2304, image->token 424, four LayerNorms 2048: 6256 (x2); final attention + LayerNorm 1424;
# upscaling (transposed convs 256 and 64, LayerNorm2d, high-res adds) ~450; hypernetwork MLP 768 and
# the mask product 32. Longest path ~15,200; the 4-tap bilinear upsampling to the image adds 4.
SAM2_DEMO_DECODER_DEPTH = 16_000
SAM2_DEMO_DEPTH = SAM2_DEMO_ENCODER_DEPTH + SAM2_DEMO_DECODER_DEPTH
# Grounding DINO demo (Swin embed 32, one block per stage, window 49; d_model 64; one encoder layer,
# two decoder layers, 30 queries; BERT of one layer, width 64):
#   Swin, per stage of width C: 11C + 130 and patch merging 12C: ~9,100 with patch embedding and
#   norms; input projections: 3x3 conv over 256 (2304) or GroupNorm over 2 channels x 2400 positions
#   (mean and variance, 9600): ~11,700 to the encoder.
#   Encoder: the text features attend over all ~3,200 image tokens (softmax + AV 6,400), plus the
#   text enhancer and FFNs: ~19,200 to the encoder's text memory; enc_output + class dot product
#   (64) give the proposal logits that pick the 30 queries: ~19,300.
#   Decoder: per layer self, text and deformable attention and FFN ~1,500 (x2), reading the text
#   memory; class dot product / box MLP ~200: ~22,500 to the logits and boxes.
GDINO_DEMO_PROPOSAL_DEPTH = 20_000
GDINO_DEMO_DEPTH = 25_000
