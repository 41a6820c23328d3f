"""A caching wrapper around Grounding DINO's BERT text backbone.

Text features depend only on the caption, and annotation tools ask about the same few captions
over and over, so `GroundingDinoModel.forward`'s call

    self.text_backbone(input_ids, text_self_attention_masks, token_type_ids, position_ids, return_dict=...)

is answered from an LRU cache keyed on every tensor that call receives (one row of each). Rows are
always computed one at a time (batch 1), so a cached row is numerically what an unbatched run of
that caption gives.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import torch
from transformers.modeling_outputs import BaseModelOutputWithPoolingAndCrossAttentions

DEFAULT_MAX_ENTRIES = 256


def _row_bytes(tensor: torch.Tensor | None, row: int) -> bytes:
    if tensor is None:
        return b"none"
    part = tensor[row] if tensor.shape[0] > 1 else tensor[0]  # a broadcast batch axis of 1
    part = part.detach().contiguous().cpu()
    header = f"{part.dtype}{tuple(part.shape)}".encode()
    return header + part.numpy().tobytes()


class CachedTextBackbone(torch.nn.Module):
    """Drop-in for `GroundingDinoModel.text_backbone`, with an LRU cache of `last_hidden_state` rows.

    The cache is bypassed (a plain call of the wrapped backbone) when gradients are enabled or
    when the caller asks for anything beyond the last hidden state (extra keyword arguments).
    """

    def __init__(self, backbone: torch.nn.Module, max_entries: int = DEFAULT_MAX_ENTRIES):
        super().__init__()
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.backbone = backbone
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._cache: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def _key(self, row: int, tensors: tuple[torch.Tensor | None, ...], device: torch.device) -> bytes:
        digest = hashlib.sha256()
        # The output depends on where and in what precision it was computed, too.
        param = next(self.backbone.parameters(), None)
        digest.update(f"{device}|{param.dtype if param is not None else None}".encode())
        for tensor in tensors:
            data = _row_bytes(tensor, row)
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
        return digest.digest()

    def _lookup(self, key: bytes) -> torch.Tensor | None:
        with self._lock:
            hidden = self._cache.get(key)
            if hidden is None:
                self.misses += 1
            else:
                self.hits += 1
                self._cache.move_to_end(key)
            return hidden

    def _store(self, key: bytes, hidden: torch.Tensor) -> None:
        with self._lock:
            self._cache[key] = hidden
            self._cache.move_to_end(key)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)

    def _compute_row(self, row, input_ids, attention_mask, token_type_ids, position_ids) -> torch.Tensor:
        def take(tensor):
            if tensor is None:
                return None
            return tensor[row : row + 1] if tensor.shape[0] > 1 else tensor[:1]

        out = self.backbone(
            take(input_ids), take(attention_mask), take(token_type_ids), take(position_ids), return_dict=True
        )
        return out.last_hidden_state  # (1, L, C)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, return_dict=None, **kwargs):
        if kwargs or input_ids is None or torch.is_grad_enabled():
            return self.backbone(input_ids, attention_mask, token_type_ids, position_ids, return_dict=return_dict, **kwargs)
        tensors = (input_ids, attention_mask, token_type_ids, position_ids)
        batch = input_ids.shape[0]
        keys = [self._key(row, tensors, input_ids.device) for row in range(batch)]
        rows: dict[bytes, torch.Tensor] = {}
        for row, key in enumerate(keys):
            if key in rows:
                continue
            hidden = self._lookup(key)
            if hidden is None:
                hidden = self._compute_row(row, *tensors)
                self._store(key, hidden)
            rows[key] = hidden
        if len(rows) == 1:
            last_hidden_state = rows[keys[0]].expand(batch, -1, -1)
        else:
            last_hidden_state = torch.cat([rows[key] for key in keys])
        if return_dict is False:
            return (last_hidden_state,)
        return BaseModelOutputWithPoolingAndCrossAttentions(last_hidden_state=last_hidden_state)


def install_text_cache(model, max_entries: int = DEFAULT_MAX_ENTRIES) -> CachedTextBackbone:
    """Replace `model.model.text_backbone` of a `GroundingDinoForObjectDetection` with a caching
    wrapper (idempotent: an installed cache is returned, resized to `max_entries`)."""
    current = model.model.text_backbone
    if isinstance(current, CachedTextBackbone):
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        with current._lock:
            current.max_entries = max_entries
            while len(current._cache) > max_entries:
                current._cache.popitem(last=False)
        return current
    cached = CachedTextBackbone(current, max_entries=max_entries)
    model.model.text_backbone = cached
    return cached
