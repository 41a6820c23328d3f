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
# SAM 3 demo (models/sam3/demo.py: width 32, head dim 8, 224 px = 16 x 16 patches).
#   Vision (ViT + FPN; 8 x 8 windows in one block, global in the other): patch embedding 14*14*3 =
#   588, LayerNorm 64; windowed block (T 64): LayerNorm 64, qkv 32, QK 8, softmax + AV 128, projection
#   32, LayerNorm 64, MLP 96: 424; global block (T 256) 808; FPN at 4x (two transposed convs 32 + 16,
#   GELU, 1x1 conv 8, 3x3 conv 288) ~350. About 2,250.
#   Clicks (the tracker on that ViT): its own FPN ~350, conv_s0/s1 32; two-way transformer (depth 2,
#   MLP 64, ~7 tokens, 256 image tokens, cross attention downsampled to 16): per block self attention
#   ~60, token->image 16 + 512, MLP 96, image->token ~60, four LayerNorms 256: ~1,000 (x2); final
#   attention + LayerNorm ~600; upscaling and hypernetwork MLPs ~200; mask product 4; IoU head ~100.
#   Longest path ~6,000.
SAM3_DEMO_VISION_DEPTH = 2_500
SAM3_DEMO_CLICK_DEPTH = 7_000
#   Concepts, query logits, presence and boxes: vision 2,500; CLIP text (one layer, 32 tokens) ~500;
#   geometry encoder ~500; DETR encoder (256 image tokens attend to each other and to the text:
#   softmax + AV 512 + 64, FFN 96, LayerNorms 192, projections) ~1,000; DETR decoder (5 queries; self,
#   text and image attention, FFN) ~1,000; dot-product scoring / box MLP ~200: ~5,700.
SAM3_DEMO_QUERY_DEPTH = 6_000
#   Concept masks: the pixel decoder's GroupNorm(8, 32) normalises 4 channels x H x W per group, mean
#   and variance: 2,048 at 16 x 16, 8,192 at 32 x 32, 32,768 at 64 x 64, one after the other with a
#   3x3 conv (288) each; with the vision 2,500, the prompt cross attention and the query embedding
#   (~6,000 through the DETR path) and the mask product 32: ~50,000.
SAM3_DEMO_MASK_DEPTH = 50_000
# EdgeTAM demo (models/edgetam/demo.py: RepViT channels 16/32/64/128, one block per stage, 256 px;
# width 64): stem convs 27 + 72; per stage depthwise 3x3 (9), squeeze-excitation's mean over H x W
# (4,096, 1,024, 256, 64), 1x1 convs C + 2C, downsampling ~3C: ~7,100; FPN neck ~200; mask decoder
# (two-way transformer width 64, depth 2, MLP 128, head dim 16, cross attention downsampled to 32,
# 256 image tokens): per block ~1,550 (x2), final attention ~750, upscaling, hypernetwork and IoU
# head ~400: ~4,300. Longest path ~11,600.
EDGETAM_DEMO_DEPTH = 12_000
