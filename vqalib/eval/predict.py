"""Prediction loop: sample videos, generate greedily, parse, and read the 9-level distributions.

For every clip: the video is sampled (:func:`vqalib.video.frames.sample_video`); the model writes an
answer greedily (``generate`` gets the video inputs and ``mm_token_type_ids``; vision tokens are
suppressed so the model can never emit ``<|video_pad|>`` and friends; every decoding parameter is
set by :func:`vqalib.model.generation.generate`, none comes from the checkpoint's
``generation_config.json``); the answer is parsed
(:func:`vqalib.schema.prompts.parse_answer`); then each dimension's distribution pi(s|x) over the 9
levels is computed exactly (:func:`vqalib.method.distributions.level_logprobs`, counting a bare integer ``3``
as the level 3.0 as the parser does) by teacher-forcing:

* the model's **own generated text** up to that dimension's score, when all five scores parsed
  (``dist_prefix = "generated"``). The text is re-tokenised; with a digit-splitting tokenizer the
  score tokens are the ones generated, the words before them may be tokenised canonically;
* otherwise a **canonical prefix** (``dist_prefix = "canonical"``): the generated rationale (text
  before the first score match) followed by the strict score lines, where a dimension that parsed
  keeps its parsed value and one that failed gets the argmax level of its own distribution,
  computed dimension by dimension in order. So the distribution of a failed dimension is still
  the model's, while ``parsed_score`` stays null and ``parse_status`` says why.

Videos that fail to decode are listed in ``Predictions.failures`` (video id, path, error), never
substituted; parse failures are counted per dimension in the manifest, never replaced.

Rating schemas (:mod:`vqalib.schema.rating`): the dimensions, the K levels, the parser, the level scorer
and the readouts follow ``schema=`` (:func:`predict`: None takes the dataset's, the paper's for a
DataFrame; :func:`predict_to_file`: the checkpoint's, ``rating.schema_of_folder``). "All five scores"
above is "every dimension of the schema"; the manifest records the schema (``rating_schema``) and the
parse rate of each of its dimensions (``parse_rate``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from vqalib.schema import prompts, rating
from vqalib.schema.rating import RatingSchema
from vqalib.model.generation import SUPPRESSED_TOKENS, GenerationSettings, decode_answers, describe, generate, suppressed_tokens
from vqalib.model.family import family_of
from vqalib.model.inputs import build_batch
from vqalib.method.distributions import level_logprobs, number_continuation_ids

#: Tokens no model generates (vision placeholders and markers): :data:`vqalib.model.generation.SUPPRESSED_TOKENS`;
#: a call suppresses its family's list (:func:`vqalib.model.generation.suppressed_tokens`, with the think tags).
VISION_TOKENS = SUPPRESSED_TOKENS


@dataclass
class Predictions:
    """Prediction rows (one per clip x dimension), decode failures and a manifest dict."""

    rows: pd.DataFrame
    failures: list[dict[str, str]] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)


def data_schema(data, schema: RatingSchema | str | None = None) -> RatingSchema:
    """The dataset's rating schema (``VQADataset.schema``), else ``schema``, else the paper's. Raises
    ``ValueError`` listing the differences when ``schema`` (the model's) writes other answers than the
    dataset's (``RatingSchema.same_answers``)."""
    own = getattr(data, "schema", None)
    if schema is None:
        return rating.resolve(own if isinstance(own, RatingSchema) else None)
    schema = rating.resolve(schema)
    if isinstance(own, RatingSchema):
        if not own.same_answers(schema):
            raise ValueError(f"the data's rating schema {own.name!r} is not the model's {schema.name!r} "
                             f"({'; '.join(own.differences(schema, 'the data', 'the model'))}): evaluate a model on data "
                             "rated on the dimensions and levels it writes")
        return own  # the same answers; the data's raw ranges and direction
    return schema


def items_from(data, split: str | None = "test", *, schema: RatingSchema | str | None = None) -> pd.DataFrame:
    """``video_id, path`` (absolute) and a target column per dimension key of the rating schema (NaN when
    unlabelled; ``schema`` None: the dataset's, else the paper's).

    ``data`` is a :class:`vqalib.data.dataset.VQADataset` (targets = :func:`vqalib.data.dataset.aggregate` of the
    final phase; ``split=None`` takes every video) or a DataFrame with ``video_id, path`` and
    optional target columns named by the dimension keys.
    """
    from vqalib.data.dataset import VQADataset, aggregate, labels_wide

    keys = data_schema(data, schema).keys

    if isinstance(data, VQADataset):
        vids = data.videos if split is None else data.videos[data.videos["split"] == split]
        if vids.empty:
            raise ValueError(f"no videos in split {split!r} of {data!r}; splits present: {sorted(data.videos['split'].unique())}")
        items = pd.DataFrame({"video_id": vids["video_id"].astype(str).tolist(),
                              "path": [str(data.video_path(v)) for v in vids["video_id"]]})
        wide = labels_wide(aggregate(data)) if len(data.ratings) else pd.DataFrame()
        for k in keys:
            items[k] = items["video_id"].map(wide[k]) if k in wide.columns else np.nan
        return items
    if isinstance(data, pd.DataFrame):
        missing = [c for c in ("video_id", "path") if c not in data.columns]
        if missing:
            raise ValueError(f"items frame lacks column(s) {missing}; give video_id and path (and optional targets)")
        items = data.copy()
        for k in keys:
            if k not in items.columns:
                items[k] = np.nan
        return items
    raise TypeError(f"predict: expected a VQADataset or a DataFrame of video_id/path, got {type(data).__name__}")


def generate_ids(model, processor, batch, max_new_tokens: int = 256) -> torch.Tensor:
    """Greedy new token ids [B, n] for a prompt-only batch (left padded), vision tokens suppressed.

    ``generate`` receives the video inputs, ``mm_token_type_ids``, ``video_grid_thw`` and, for a family
    that reads frame times through M-RoPE (Qwen2.5-VL), ``second_per_grid_ts`` (the batch holds what the
    family's model takes, :func:`vqalib.model.inputs.build_batch`); generation stops at ``<|im_end|>``.
    The family's suppressed tokens (vision and grounding markers, think tags) are never generated.
    The decoding parameters are :meth:`vqalib.model.generation.GenerationSettings.greedy` (no repetition
    penalty, one beam), whatever the checkpoint's ``generation_config.json`` says.
    """
    return generate(model, processor, batch.model_inputs(with_labels=False), GenerationSettings.greedy(max_new_tokens))


def generate_answers(model, processor, batch, max_new_tokens: int = 256) -> list[str]:
    """Greedy answer texts for a prompt-only batch (see :func:`generate_ids`), as the parser reads them:
    special tokens dropped and a leading ``<think>...</think>`` block removed by the model's family
    (:func:`vqalib.model.generation.decode_answers`)."""
    return decode_answers(processor, generate_ids(model, processor, batch, max_new_tokens), model)


def _canonical_text(rationale: str, values: list[float | None], upto: int,
                    schema: RatingSchema | None = None) -> str:
    """Rationale + strict lines for dimensions ``0..upto`` (dimension ``upto`` with a placeholder)."""
    schema = rating.resolve(schema)
    kw = {"schema": schema}
    lines = []
    for d in range(upto + 1):
        v = values[d] if d < upto else schema.lo  # only the text before this score is used
        lines.append(prompts.score_line(schema.keys[d], v, **kw))
    body = "\n".join(lines)
    return f"{rationale}\n\n{body}" if rationale else body


def continuation_ids(tokenizer, schema: RatingSchema | None = None) -> tuple[int, ...] | None:
    """The tokens that extend a bare integer to its level (``"3"`` read as 3.0, as the parser does) for
    the schema's level strings: :func:`vqalib.method.distributions.number_continuation_ids` for the paper's
    strings; None for a schema whose strings have no such form."""
    schema = rating.resolve(schema)
    return number_continuation_ids(tokenizer) if schema.strings == rating.PAPER.strings else None


def score_answers(model, processor, videos: Sequence, texts: Sequence[str], instruction: str | None = None, *,
                  schema: RatingSchema | str | None = None
                  ) -> tuple[np.ndarray, np.ndarray, list[str], list[prompts.ParseResult]]:
    """Distributions ``[N, D, K]`` (probabilities over the rating schema's K levels, D dimensions; the
    paper's ``[N, 5, 9]``), outside mass ``[N, D]``, the prefix kind per clip and the parses, for answers
    ``texts`` of ``videos`` (see the module docstring)."""
    schema = rating.resolve(schema)
    keys, levels = schema.keys, schema.levels
    n = len(texts)
    parse_kw = {"schema": schema}
    batch_kw = {"schema": schema}
    lp_kw = {"schema": schema}
    parses = [prompts.parse_answer(t, **parse_kw) for t in texts]
    dist = np.full((n, schema.n_dims, schema.n_levels), np.nan)
    outside = np.full((n, schema.n_dims), np.nan)
    kinds = ["generated" if p.ok else "canonical" for p in parses]
    ok = [i for i in range(n) if parses[i].ok]
    device = next(model.parameters()).device  # the batches are built on the CPU
    cont = continuation_ids(processor.tokenizer, schema)  # a bare "3" counts as 3.0, as the parser reads it
    with torch.no_grad():
        if ok:
            b = build_batch(processor, [videos[i] for i in ok], [texts[i] for i in ok], instruction=instruction,
                            **batch_kw).to(device)
            lp, out = level_logprobs(model, b, continue_ids=cont, **lp_kw)
            dist[ok], outside[ok] = lp.float().exp().cpu().numpy(), out.float().cpu().numpy()
        bad = [i for i in range(n) if not parses[i].ok]
        values = {i: [parses[i].scores[k] if parses[i].status[k] == "ok" else None for k in keys] for i in bad}
        for d in range(schema.n_dims) if bad else ():
            cano = [_canonical_text(parses[i].rationale, values[i], d, schema) for i in bad]
            b = build_batch(processor, [videos[i] for i in bad], cano, instruction=instruction, **batch_kw).to(device)
            sp = torch.full_like(b.score_positions, -1)
            sp[:, d] = b.score_positions[:, d]
            lp, out = level_logprobs(model, b, score_positions=sp, continue_ids=cont, **lp_kw)
            p = lp[:, d].float().exp().cpu().numpy()
            for row, i in enumerate(bad):
                dist[i, d], outside[i, d] = p[row], float(out[row, d])
                if values[i][d] is None:
                    values[i][d] = float(levels[int(np.argmax(p[row]))])
    return dist, outside, kinds, parses


def default_instruction(schema: RatingSchema | str | None = None) -> str:
    """The instruction a model trained on ``schema`` was given: :data:`vqalib.schema.prompts.INSTRUCTION`
    for the paper's, ``prompts.instruction(schema)`` for another (raises ``NotImplementedError`` while
    the prompts layer has none)."""
    schema = rating.resolve(schema)
    if schema.is_paper:
        return prompts.INSTRUCTION
    make = getattr(prompts, "instruction", None)
    if not callable(make):
        raise NotImplementedError(f"vqalib.schema.prompts has no instruction(schema) yet; pass instruction= for the "
                                  f"{schema.name!r} rating schema")
    return make(schema)


def predict(model, processor, data, split: str | None = "test", sampling=None, max_new_tokens: int = 256,
            batch_size: int = 4, instruction: str | None = None, progress: bool = False,
            limit: int | None = None, *, schema: RatingSchema | str | None = None) -> Predictions:
    """Prediction rows for every clip of ``data`` (a VQADataset split or a DataFrame of clips), on the rating
    ``schema`` (None: the dataset's, the paper's for a DataFrame; one given must equal the dataset's).

    Row columns: the INTERFACES.md prediction-row fields (``video_id, dimension, target,
    parsed_score, expected_score, argmax_score, dist, outside_mass, raw_text, parse_status``)
    plus ``raw_value, off_grid, parse_reason`` (why a dimension did not parse, e.g. "score on another
    scale (4/10), not out of 5"; null when it did) and ``dist_prefix``. ``sampling`` is a
    :class:`vqalib.video.frames.SamplingConfig` (default: 2 fps, the config's defaults, frame sides multiples
    of the model family's ``patch_factor``).
    """
    from vqalib.model.loading import describe_model
    from vqalib.video.frames import SamplingConfig, VideoDecodeError, sample_video

    schema = data_schema(data, schema)
    if instruction is None and not schema.is_paper:
        instruction = default_instruction(schema)
    sampling = sampling or SamplingConfig(patch_factor=family_of(processor).patch_factor)
    items = items_from(data, split, schema=schema)
    if limit is not None:
        items = items.head(limit)
    model.eval()
    t0 = time.time()
    rows: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    clip_info: list[dict[str, Any]] = []
    records = items.to_dict("records")
    starts = range(0, len(records), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="predict", unit="batch")
    for s in starts:
        chunk, videos = [], []
        for rec in records[s: s + batch_size]:
            try:
                videos.append(sample_video(rec["path"], sampling))
                chunk.append(rec)
            except (VideoDecodeError, ValueError, OSError) as e:
                failures.append({"video_id": str(rec["video_id"]), "path": str(rec["path"]), "error": str(e)})
        if not chunk:
            continue
        # on the model's device: a model trained on a GPU is evaluated there during training (vqalib.train.budget)
        batch = build_batch(processor, videos, instruction=instruction,
                            schema=schema).to(next(model.parameters()).device)
        texts = generate_answers(model, processor, batch, max_new_tokens)
        dist, outside, kinds, parses = score_answers(model, processor, videos, texts, instruction, schema=schema)
        for j, rec in enumerate(chunk):
            clip_info.append({"video_id": str(rec["video_id"]), **batch.sampling[j]})
            for d, k in enumerate(schema.keys):
                p = dist[j, d]
                target = rec.get(k)
                rows.append({
                    "video_id": str(rec["video_id"]), "dimension": k,
                    "target": None if target is None or pd.isna(target) else float(target),
                    "parsed_score": parses[j].scores[k], "expected_score": float(p @ schema.levels),
                    "argmax_score": float(schema.levels[int(np.argmax(p))]), "dist": p.tolist(),
                    "outside_mass": float(outside[j, d]), "raw_text": texts[j], "parse_status": parses[j].status[k],
                    "raw_value": parses[j].raw_value[k], "off_grid": bool(parses[j].off_grid[k]),
                    "parse_reason": parses[j].reason[k], "dist_prefix": kinds[j],
                })
    df = pd.DataFrame(rows, columns=["video_id", "dimension", "target", "parsed_score", "expected_score",
                                     "argmax_score", "dist", "outside_mass", "raw_text", "parse_status",
                                     "raw_value", "off_grid", "parse_reason", "dist_prefix"])
    df.attrs["rating_schema"] = schema
    counts = {k: {st: int(((df["dimension"] == k) & (df["parse_status"] == st)).sum())
                  for st in (prompts.STATUS_OK, prompts.STATUS_MISSING, prompts.STATUS_UNPARSABLE)}
              for k in schema.keys}
    manifest = {
        "model": describe_model(model), "sampling": sampling.to_dict(), "split": split,
        "parameters": {"max_new_tokens": max_new_tokens, "batch_size": batch_size, "decoding": "greedy",
                       "instruction": instruction or default_instruction(schema), "suppressed_tokens": list(suppressed_tokens(processor, model))},
        "generation": describe(GenerationSettings.greedy(max_new_tokens), processor, model),
        "n_items": len(records), "n_scored": len(clip_info), "n_failed_videos": len(failures),
        "failures": failures, "parse_status_counts": counts, "clips": clip_info,
        "wall_s": round(time.time() - t0, 3),
    }
    manifest["rating_schema"] = schema.to_dict()
    manifest["parse_rate"] = parse_rates(counts)

    return Predictions(df, failures, manifest)



def parse_rates(counts: dict[str, dict[str, int]]) -> dict[str, float | None]:
    """Per dimension, the share of answers whose line parsed (``ok`` over all), from the manifest's
    ``parse_status_counts``; None for a dimension without answers."""
    out = {}
    for k, c in counts.items():
        n = sum(c.values())
        out[k] = c.get(prompts.STATUS_OK, 0) / n if n else None
    return out


def checkpoint_schema(model: Any) -> RatingSchema | None:
    """The rating schema a model was trained on: ``rating_schema.json`` in its checkpoint folder (or the
    folder above an ``adapter/``; :func:`vqalib.schema.rating.schema_of_folder`), else the stage
    manifest's ``rating_schema``; None when it records none (a hub id, ``"tiny"``, a base model's folder,
    a checkpoint written before schemas were saved): then the data's schema is used."""
    from pathlib import Path

    from vqalib.core.runs import read_manifest

    p = Path(str(model))
    if not p.is_dir():
        return None
    for d in (p, p.parent):
        if (d / rating.SCHEMA_FILE).is_file():
            return rating.schema_of_folder(d)
    for d in (p, p.parent):
        saved = (read_manifest(d) or {}).get("rating_schema")
        if saved:
            return rating.schema_from_dict(saved, where=f"{d} manifest: rating_schema")
    return None


def predict_to_file(path, *, model: str = "tiny", data_dir: str = "", sample_size: str = "default", seed: int = 0,
                    split: str | None = "test", device: str = "cpu", max_videos: int = 0, sampling=None,
                    max_new_tokens: int = 96, batch_size: int = 8, progress: bool = True,
                    instruction: str | None = None, extra_manifest: dict[str, Any] | None = None,
                    schema: RatingSchema | str | None = None):
    """Load ``model`` ("tiny", a hub id or a checkpoint folder), predict a dataset split and write
    ``path`` (JSONL rows) plus its manifest with :func:`vqalib.eval.predictions_file.write_predictions`.

    ``data_dir`` empty means the embedded sample dataset (``sample_size``, ``seed``, generated on the model's
    or the given rating schema); ``max_videos``
    > 0 limits the clips (0 = all). ``instruction`` must be the one the model was trained with
    (default: the rating schema's, :func:`default_instruction`). ``schema``: the rating schema (None: the
    checkpoint's saved one, :func:`checkpoint_schema`, else the dataset's); the file's manifest records it.
    Returns the JSONL path. Decode failures and parse failures are
    recorded in the manifest (``predict.failures``, ``predict.parse_status_counts``).
    """
    from vqalib.data.dataset import load_dataset
    from vqalib.model.loading import load_model_and_processor
    from vqalib.eval.predictions_file import make_manifest, write_predictions
    from vqalib.core.runs import resolve_path
    from vqalib.data.synth import dataset_root
    from vqalib.video.frames import SamplingConfig

    model_path = resolve_path(model) if resolve_path(model).exists() else model  # else "tiny" / a hub id
    wanted = schema if schema is not None else checkpoint_schema(model_path)
    # no data_dir: the embedded sample, generated on the model's (or the asked) schema
    root = dataset_root(data_dir, sample_size, seed, schema=None if data_dir else wanted)
    dataset = load_dataset(root)
    schema = data_schema(dataset, wanted)
    net, processor = load_model_and_processor(str(model_path), device_map=None if device == "cpu" else device)
    sampling = sampling or SamplingConfig(patch_factor=family_of(processor).patch_factor)
    res = predict(net, processor, dataset, split=split, sampling=sampling, max_new_tokens=max_new_tokens,
                  batch_size=batch_size, progress=progress, limit=max_videos or None, instruction=instruction,
                  schema=schema)
    params = {"split": split, "max_new_tokens": max_new_tokens, "batch_size": batch_size, "device": device}
    manifest = make_manifest(str(model_path), sampling, params, predict=res.manifest, dataset=str(root),
                             generation=res.manifest["generation"], **(extra_manifest or {}))
    return write_predictions(path, res.rows, manifest, schema=schema)
