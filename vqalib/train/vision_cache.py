"""Encode each video once per GRPO group and reuse it (issue 19 item 6).

A GRPO step with G completions per prompt repeats the prompt G times (the collator's ``repeat``), so
without this the same clip goes through the vision tower G times in ``generate``, G times in the
policy pass and G times in the reference pass: 3 G encodings per prompt (24 at G = 8), the
largest compute of a step at 7B after the decoder. :func:`reuse_video_features` patches the
model's ``get_video_features`` (the one method through which the ``forward`` and ``generate`` of
Qwen2.5-VL, Qwen3-VL and Qwen3.5 reach the tower, transformers 5.x) for the duration of a ``with`` block:

- **within a call** the distinct videos (equal ``video_grid_thw`` row and equal pixels) are encoded
  once and their features tiled to every copy. The tower treats each video independently, so this
  is the same function; under autograd the tiled copies' gradients add up in the one encoding,
  which equals the sum over separate encodings. Skipped while the tower is in training mode with
  an active dropout (copies would get different masks).
- **across calls** (``generate`` -> policy pass -> reference pass) features are reused only when
  ``share=True``: the caller asserts that the tower is frozen and identical in every model passed
  (:func:`towers_shareable` checks it). Then a prompt's clip is encoded once per step.

What is cached per video is everything the tower hands the language model: the merged features and,
for Qwen3-VL, its deepstack features (the outputs of the ``deepstack_visual_indexes`` blocks, added to
the first decoder layers' hidden states at the video positions); Qwen3.5's tower has no deepstack. A
tower output of another shape is not cached (:func:`_features_output` raises naming the mix).

Pixels are compared exactly (``torch.equal``), never by a fingerprint, so two different clips can
never share features. Results equal the un-optimised path to float rounding
(``tests/unit/test_grpo_compute.py``; Qwen3-VL and Qwen3.5: ``tests/unit/test_family_inputs.py``).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch


def _owner(model: Any) -> Any:
    """The module whose ``get_video_features`` the model's ``forward`` and ``generate`` call (the inner
    ``Qwen2_5_VLModel`` / ``Qwen3VLModel`` / ``Qwen3_5Model``), under DDP and peft wrappers."""
    from vqalib.model.loading import base_model

    m = model
    while hasattr(m, "module") and isinstance(m.module, torch.nn.Module):
        m = m.module
    base = base_model(m)
    for cand in (getattr(base, "model", None), base):
        if cand is not None and hasattr(cand, "get_video_features") and isinstance(getattr(cand, "visual", None), torch.nn.Module):
            return cand
    raise AttributeError(f"{type(base).__name__}: no inner model with get_video_features and a .visual tower "
                         "(reuse_video_features supports the Qwen2.5-VL, Qwen3-VL and Qwen3.5 families; pass "
                         "enabled=False / reuse_vision=False for another model)")


def tower_frozen(model: Any) -> bool:
    """True when no parameter of the model's vision tower requires a gradient."""
    return not any(p.requires_grad for p in _owner(model).visual.parameters())


def towers_shareable(*models: Any) -> bool:
    """Whether video features may be reused across calls of ``models`` (``None`` entries skipped): every
    vision tower is frozen and, when the models hold different towers (a frozen reference copy under
    full fine-tuning), their weights are equal. Compares every tower weight: call once, not per step
    (a frozen tower does not change during training)."""
    towers = []
    for m in models:
        if m is None:
            continue
        if not tower_frozen(m):
            return False
        towers.append(_owner(m).visual)
    first = towers[0] if towers else None
    for t in towers[1:]:
        if t is first:
            continue
        a, b = first.state_dict(), t.state_dict()
        if a.keys() != b.keys() or any(not torch.equal(a[k], b[k].to(a[k].device)) for k in a):
            return False
    return True


def _dropout_active(tower: torch.nn.Module) -> bool:
    return tower.training and any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in tower.modules())


class _FeatureCache:
    """Per-``with``-block store of (grid row, pixels, features) and the counters the tests and the
    benchmark read: ``n_videos`` (videos asked for), ``n_encoded`` (videos that went through a tower).

    A video's features are ``(merged, deepstack)``: the merger's output (``pooler_output``, what replaces
    the video placeholders) and, for Qwen3-VL, the deepstack features of that video (one tensor per
    deepstack layer, added to the hidden states of the first decoder layers; ``None`` for Qwen2.5-VL and
    Qwen3.5, whose towers have none). Both are tiled to every copy, so a Qwen3-VL forward receives exactly
    the tensors the un-patched ``get_video_features`` would return."""

    def __init__(self, share: bool):
        self.share = share
        self.entries: list[tuple[torch.Tensor, torch.Tensor, Any]] = []
        self.n_videos = 0
        self.n_encoded = 0

    def lookup(self, grid: torch.Tensor, pixels: torch.Tensor) -> Any:
        for g, p, f in self.entries:
            if torch.equal(g, grid) and p.shape == pixels.shape and p.device == pixels.device and torch.equal(p, pixels):
                return f
        return None

    def wrap(self, owner: Any, original: Any):
        def get_video_features(pixel_values_videos: torch.Tensor, video_grid_thw: torch.Tensor | None = None,
                               **kwargs: Any):
            if video_grid_thw is None or _dropout_active(owner.visual):
                return original(pixel_values_videos, video_grid_thw, **kwargs)
            return_dict = kwargs.pop("return_dict", True)
            grid = video_grid_thw
            chunks = pixel_values_videos.split(grid.prod(-1).tolist())
            self.n_videos += len(chunks)
            local: list[tuple[torch.Tensor, torch.Tensor]] = []  # distinct videos of this call
            assign: list[int] = []
            for i, c in enumerate(chunks):
                j = next((u for u, (g, p) in enumerate(local)
                          if torch.equal(g, grid[i]) and p.shape == c.shape and torch.equal(p, c)), None)
                if j is None:
                    local.append((grid[i], c))
                    j = len(local) - 1
                assign.append(j)
            feats: list[Any] = [self.lookup(g, p) if self.share else None for g, p in local]
            todo = [u for u, f in enumerate(feats) if f is None]
            if todo:
                out = original(torch.cat([local[u][1] for u in todo]), torch.stack([local[u][0] for u in todo]),
                               return_dict=True, **kwargs)
                self.n_encoded += len(todo)
                deep = getattr(out, "deepstack_features", None)  # Qwen3-VL: [layer][video] tensors
                for n, u in enumerate(todo):
                    f = (out.pooler_output[n], tuple(layer[n] for layer in deep) if deep is not None else None)
                    feats[u] = f
                    if self.share:
                        self.entries.append((local[u][0], local[u][1], f))
            result = _features_output(tuple(feats[j] for j in assign))
            return result if return_dict else result.to_tuple()

        return get_video_features


def _features_output(per_video: tuple[Any, ...]):
    """The model output ``get_video_features`` returns, from each video's ``(merged, deepstack)``:
    ``pooler_output`` a tuple of per-video tensors; with deepstack features (Qwen3-VL) a
    ``BaseModelOutputWithDeepstackFeatures`` whose ``deepstack_features[layer]`` is a per-video tuple too
    (transformers 5.x ``Qwen3VLModel.get_image_features``)."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    pooled = tuple(f[0] for f in per_video)
    deep = [f[1] for f in per_video]
    if all(d is None for d in deep):
        return BaseModelOutputWithPooling(last_hidden_state=None, pooler_output=pooled)
    if any(d is None for d in deep):
        raise RuntimeError("reuse_video_features: some videos' features carry deepstack features and others not; "
                           "one model's tower gives the same kind for every video")
    from transformers.models.qwen3_vl.modeling_qwen3_vl import BaseModelOutputWithDeepstackFeatures

    layers = [tuple(d[k] for d in deep) for k in range(len(deep[0]))]
    return BaseModelOutputWithDeepstackFeatures(last_hidden_state=None, pooler_output=pooled, deepstack_features=layers)


@contextlib.contextmanager
def reuse_video_features(*models: Any, share: bool = False, enabled: bool = True) -> Iterator[_FeatureCache]:
    """Within the block, every distinct video passed to ``models`` (``None`` skipped; a model may be
    given twice) is encoded once per call, and with ``share=True`` once for the whole block (see the
    module docstring; pass ``share=towers_shareable(...)``). Yields the cache, whose ``n_videos`` /
    ``n_encoded`` count the videos asked for and encoded. ``enabled=False`` patches nothing (the
    un-optimised path, for comparisons); the counters then stay 0."""
    cache = _FeatureCache(share)
    if not enabled:
        yield cache
        return
    patched: list[Any] = []
    try:
        for m in models:
            if m is None:
                continue
            owner = _owner(m)
            if any(o is owner for o in patched):
                continue
            owner.get_video_features = cache.wrap(owner, owner.get_video_features)  # instance attribute
            patched.append(owner)
        yield cache
    finally:
        for owner in patched:
            del owner.get_video_features  # back to the class method
