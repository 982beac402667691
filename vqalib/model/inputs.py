"""Processor calls -> model inputs, exactly as Qwen2.5-VL expects them, with answer-only labels.

:func:`build_batch` turns pre-sampled clips (:class:`vqalib.video.frames.SampledVideo`: frames plus
``metadata()``) and optional answers into one padded batch:

* each clip goes through the real processor with its ``video_metadata`` (source fps and the
  sampled frame indices), so ``second_per_grid_ts = temporal_patch_size / sampled_fps`` is
  right (without the metadata the processor assumes 24 fps);
* ``mm_token_type_ids`` (2 on ``<|video_pad|>`` tokens) is always returned: without it the
  model silently skips M-RoPE;
* ``pixels="keep"`` (default) keeps the frame size chosen at sampling time (``SamplingConfig``
  ``max_pixels``) by fixing the processor's pixel range to each clip's own H x W;
  ``pixels="processor"`` uses the processor's configured range (``cap_pixels_per_frame`` off);
* answers are tokenised on their own and appended after the generation prompt
  (``<|im_start|>assistant\\n``), followed by ``<|im_end|>``. The Qwen2 pre-tokenizer splits at
  the newline, so this equals tokenising the whole chat text. ``labels`` are -100 everywhere
  except the answer tokens and the closing ``<|im_end|>``;
* padding is on the **left** by default (what ``generate`` needs; training and scoring pass
  explicit masks/positions, so left padding is also right for them). ``padding_side="right"``
  is available.

The result is a :class:`Batch`: a dict of model inputs (``model(**batch)`` works) with extra
attributes: ``score_positions`` (token index of the first digit of each dimension's score in
the answer, -1 where the answer has none), ``prompt_lengths``, ``parses`` and ``sampling``
(fps / frames / pixels per clip, to be saved with checkpoints and predictions).

``schema`` (:mod:`vqalib.schema.rating`; default the paper's): the score positions are those of the
schema's D dimensions ([B, D], found with ``parse_answer(schema=)``: the first token of each level
string, a digit or the first piece of a word such as ``"excellent"``), ``level_ids`` its K level
strings (``level_token_ids(schema=)``) and, without an explicit ``instruction``, the prompt is the
schema's (``prompts.instruction(schema)``). The paper's batch is unchanged.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import torch

from vqalib.method.distributions import level_token_ids
from vqalib.model.family import family_of
from vqalib.schema import prompts, rating

#: Keys of a :class:`Batch` that the model's forward accepts.
MODEL_KEYS = ("input_ids", "attention_mask", "pixel_values_videos", "video_grid_thw",
              "second_per_grid_ts", "mm_token_type_ids", "labels")


class Batch(dict):
    """Model inputs (a plain dict of tensors) plus bookkeeping attributes (see module docstring)."""

    score_positions: torch.Tensor
    prompt_lengths: list[int]
    answers: list[str] | None
    parses: list[prompts.ParseResult] | None
    sampling: list[dict[str, Any]]
    padding_side: str
    level_ids: list[tuple[int, ...]]

    def to(self, device) -> "Batch":
        """Move the tensors to ``device`` (in place) and return self."""
        for k, v in list(self.items()):
            if torch.is_tensor(v):
                self[k] = v.to(device)
        self.score_positions = self.score_positions.to(device)
        return self

    def model_inputs(self, with_labels: bool = True) -> dict[str, torch.Tensor]:
        """The inputs for ``model(**...)`` / ``model.generate(**...)`` (labels optional)."""
        return {k: v for k, v in self.items() if with_labels or k != "labels"}


def _frames_and_metadata(video) -> tuple[Any, dict[str, Any]]:
    """``(frames uint8 [T,H,W,3], video_metadata dict)`` from a SampledVideo-like object."""
    if hasattr(video, "frames") and hasattr(video, "metadata"):
        return video.frames, dict(video.metadata())
    raise TypeError(f"expected a vqalib.video.frames.SampledVideo (frames + metadata()), got {type(video).__name__}; "
                    "sample the clip with vqalib.video.frames.sample_video(path, SamplingConfig(...)) first")


_SECONDS = re.compile(r"<(\d+(?:\.\d+)?) seconds>")


def patch_times(video, temporal_patch_size: int = 2) -> list[float]:
    """The presentation time of each temporal patch of a sampled clip, seconds: the mean of its first and
    last frame's time (the last patch padded with the last frame, as the processor pads). What a Qwen3-VL
    family model must read before each patch's vision tokens (rounded to 0.1 s in the text)."""
    ts = [float(t) for t in getattr(video, "timestamps", [])]
    if not ts:
        return []
    while len(ts) % temporal_patch_size:
        ts.append(ts[-1])
    return [(ts[i] + ts[i + temporal_patch_size - 1]) / 2 for i in range(0, len(ts), temporal_patch_size)]


def times_in_text(tokenizer, ids: Sequence[int]) -> list[float]:
    """The ``<t seconds>`` times written in a tokenised prompt (Qwen3-VL, Qwen3.5), in order."""
    return [float(x) for x in _SECONDS.findall(tokenizer.decode(list(ids)))]


def sampling_record(video, grid_thw: Sequence[int], second_per_grid_t: float | None, patch_size: int) -> dict[str, Any]:
    """What was fed to the model for one clip: fps, frames, pixels (saved with predictions).
    ``second_per_grid_t`` is None for a family that reads frame times as text (``patch_times`` then)."""
    frames, meta = _frames_and_metadata(video)
    t, h, w = (int(x) for x in grid_thw)
    n = len(meta.get("frames_indices") or frames)
    return {
        "path": str(getattr(video, "path", "")),
        "source_fps": meta.get("fps"),
        "n_source_frames": meta.get("total_num_frames"),
        "n_frames": int(n),
        "sampled_fps": (n / meta["total_num_frames"] * meta["fps"]) if meta.get("fps") and meta.get("total_num_frames") else None,
        "frame_height": int(frames.shape[1]), "frame_width": int(frames.shape[2]),
        "model_height": h * patch_size, "model_width": w * patch_size,
        "grid_thw": [t, h, w],
        "second_per_grid_t": float(second_per_grid_t) if second_per_grid_t is not None else None,
        "patch_times": [round(x, 4) for x in patch_times(video)],
        "backend": getattr(video, "backend", None),
        "hdr": getattr(video, "hdr", None),  # "pq" / "hlg": an HDR source, read as its 8-bit RGB (not tone-mapped)
    }


def _token_index_at(offsets: list[tuple[int, int]], char: int) -> int:
    """Index of the token whose span starts at character ``char``; else of the token that holds it (a
    word level tokenised with the space before it, ``" excellent"``); -1 if none does."""
    for i, (a, b) in enumerate(offsets):
        if a == char and b > a:
            return i
    for i, (a, b) in enumerate(offsets):
        if a < char < b:
            return i
    return -1


def build_batch(processor, videos: Sequence, answers: Sequence[str] | None = None, *,
                instruction: str | None = None, padding_side: str = "left", pixels: str = "keep",
                schema: rating.RatingSchema | None = None) -> Batch:
    """Model inputs for ``videos`` (SampledVideo-like) with optional ``answers`` (teacher forcing).

    Returns a :class:`Batch` with ``input_ids, attention_mask, pixel_values_videos,
    video_grid_thw, second_per_grid_ts, mm_token_type_ids`` and, with answers, ``labels``.
    ``score_positions`` [B, D] locate each of ``schema``'s dimensions' score in the answer (found with
    :func:`vqalib.schema.prompts.parse_answer`), -1 where the answer has no parsable score (or, for a
    missing label, no score line).
    """
    sch = rating.resolve(schema)
    skw = {} if sch.is_paper else {"schema": sch}
    keys = sch.keys
    if not instruction and not sch.is_paper:
        instruction = prompts.instruction(schema=sch)
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side={padding_side!r}; use 'left' or 'right'")
    if pixels not in ("keep", "processor"):
        raise ValueError(f"pixels={pixels!r}; use 'keep' (frame size from sampling) or 'processor'")
    if answers is not None and len(answers) != len(videos):
        raise ValueError(f"{len(videos)} videos but {len(answers)} answers; give one answer per video")
    if not len(videos):
        raise ValueError("build_batch: no videos")
    fam = family_of(processor)
    tok = processor.tokenizer
    pad_id = tok.pad_token_id
    end_id = tok.convert_tokens_to_ids("<|im_end|>")
    prompt_text = fam.prompt_text(processor, prompts.build_messages(instruction))
    patch = int(processor.video_processor.patch_size)
    rows, grids, pix, spg, sampling, prompt_lens, parses, positions = [], [], [], [], [], [], [], []
    for i, video in enumerate(videos):
        frames, _ = _frames_and_metadata(video)
        meta = fam.video_metadata(video)
        kw: dict[str, Any] = {"do_sample_frames": False, "cap_pixels_per_frame": False}
        if pixels == "keep":
            kw.update(fam.frame_size_kwargs(frames))
        enc = processor(text=[prompt_text], videos=[frames], video_metadata=[meta], return_tensors="pt", **kw)
        ids = enc["input_ids"][0].tolist()
        mm = enc["mm_token_type_ids"][0].tolist()
        prompt_lens.append(len(ids))
        labels = [-100] * len(ids)
        pos = [-1] * len(keys)
        parse = None
        if answers is not None:
            text = answers[i]
            a = tok(text, add_special_tokens=False, return_offsets_mapping=True)
            parse = prompts.parse_answer(text, **skw)
            for d, key in enumerate(keys):
                span = parse.spans.get(key)
                if span is not None:
                    j = _token_index_at(a["offset_mapping"], span[0])
                    pos[d] = len(ids) + j if j >= 0 else -1
            ids = ids + list(a["input_ids"]) + [end_id]
            mm = mm + [0] * (len(a["input_ids"]) + 1)
            labels = labels + list(a["input_ids"]) + [end_id]
        rows.append((ids, mm, labels))
        positions.append(pos)
        parses.append(parse)
        grids.append(enc["video_grid_thw"])
        pix.append(enc["pixel_values_videos"])
        if "second_per_grid_ts" in enc:
            spg.extend(float(x) for x in enc["second_per_grid_ts"])
        sampling.append(sampling_record(video, enc["video_grid_thw"][0].tolist(),
                                        spg[-1] if "second_per_grid_ts" in enc else None, patch))

    length = max(len(r[0]) for r in rows)
    B = len(rows)
    input_ids = torch.full((B, length), pad_id, dtype=torch.long)
    attention = torch.zeros((B, length), dtype=torch.long)
    mm_types = torch.zeros((B, length), dtype=torch.long)
    labels_t = torch.full((B, length), -100, dtype=torch.long)
    score_pos = torch.full((B, len(keys)), -1, dtype=torch.long)
    for b, (ids, mm, lab) in enumerate(rows):
        off = length - len(ids) if padding_side == "left" else 0
        sl = slice(off, off + len(ids))
        input_ids[b, sl] = torch.tensor(ids)
        attention[b, sl] = 1
        mm_types[b, sl] = torch.tensor(mm)
        labels_t[b, sl] = torch.tensor(lab)
        score_pos[b] = torch.tensor([p + off if p >= 0 else -1 for p in positions[b]])
    batch = Batch(input_ids=input_ids, attention_mask=attention,
                  pixel_values_videos=torch.cat(pix, dim=0), video_grid_thw=torch.cat(grids, dim=0),
                  mm_token_type_ids=mm_types)
    if fam.frame_times == "mrope":
        batch["second_per_grid_ts"] = torch.tensor(spg)
    if answers is not None:
        batch["labels"] = labels_t
    batch.score_positions = score_pos
    batch.prompt_lengths = prompt_lens
    batch.answers = list(answers) if answers is not None else None
    batch.parses = parses if answers is not None else None
    batch.sampling = sampling
    batch.padding_side = padding_side
    batch.level_ids = level_token_ids(tok, **skw)
    return batch
