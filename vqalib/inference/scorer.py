"""Score your own videos: ``Scorer(model).score(videos, output)`` and ``python -m vqalib score``.

One row per video (see :data:`columns`): the five expected scores ``sum_s s pi(s)``, the argmax
levels, the 5 x 9 level distributions pi(s | x) (``p_<dimension>_<level>``), the probability mass
outside the nine levels, the parsed scores and rationale (``--mode generate``), status, error and
timing. Two readouts:

- ``mode="fast"`` (default): no generation. Every clip is teacher-forced with the same fixed
  score-only answer (:data:`FAST_ANSWER`: the five score lines, earlier dimensions filled with
  :data:`FAST_FILL`), and the distributions of all five dimensions are read in **one**
  tree-masked forward pass (:func:`vqalib.method.distributions.level_logprobs`). Dimension ``d``'s
  distribution is ``pi(s | video, prompt, "Motion Quality: 3.0 ... <Dimension d>: ")``. Like
  Q-Align's level readout this works zero-shot on a base model: it only needs the model to put
  mass on the level tokens after a score label.
- ``mode="generate"``: greedy answer (rationale + scores, :func:`vqalib.eval.predict.generate_answers`;
  no repetition penalty or other setting from the checkpoint's ``generation_config``, see
  :mod:`vqalib.model.generation`; the settings are in the manifest's ``generation``),
  parsed (:func:`vqalib.schema.prompts.parse_answer`), then the distributions teacher-forced on the
  model's own answer (:func:`vqalib.eval.predict.score_answers`, exactly what ``predict`` does).

Videos are decoded (and run through the processor) in ``torch.utils.data.DataLoader`` workers
(``num_workers``), so that decoding overlaps with the model. A video that fails to decode gets a
row with ``status="decode_error"`` and the error, never a substitute; the run goes on and the
failures are listed at the end. The output is resumable (:mod:`vqalib.inference.store`): rerunning
skips the videos already scored in it and tries the failed ones again (their new row is appended
and is the one :func:`~vqalib.inference.store.read_scores` returns).

Rating schemas (:mod:`vqalib.schema.rating`): the columns follow the schema's dimension keys and level
strings (``p_<dimension>_<level>`` for its K levels), a dimension with a ``raw_range`` adds
``<dim>_expected_raw`` (and ``<dim>_parsed_raw`` in generate mode) on the raters' scale, and the output
manifest records the schema (``rating_schema``): resuming an output written with another schema is
refused (:func:`vqalib.inference.store.manifest_mismatch`). The schema is the checkpoint's
(``rating_schema.json`` beside it, :func:`vqalib.eval.predict.checkpoint_schema`), ``schema=`` otherwise,
the paper's by default; the fast readout's fixed answer is :func:`fast_answer` of it.

Batch invariance: clips are left-padded and every pass uses explicit masks and per-clip M-RoPE
positions, so a clip's distributions (fp32, 1e-5) and greedy text do not depend on the other clips
of its batch (``tests/integration/test_scorer.py``).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from vqalib.schema import prompts, rating
from vqalib.schema.levels import DIMENSION_KEYS
from vqalib.schema.rating import RatingSchema

MODES = ("fast", "generate")
#: The level that fills the earlier dimensions' score lines of the fast readout's fixed answer.
FAST_FILL = 3.0
#: The fixed answer the fast readout teacher-forces (only the text before each score is read).
FAST_ANSWER = "\n".join(prompts.score_line(k, FAST_FILL) for k in DIMENSION_KEYS)


def fast_fill(schema: RatingSchema | str | None = None) -> float:
    """The level filling the earlier score lines of the fast answer: :data:`FAST_FILL` for the paper, the
    level nearest the middle of the scale otherwise."""
    schema = rating.resolve(schema)
    return FAST_FILL if schema.is_paper else float(schema.snap((schema.lo + schema.hi) / 2))


def fast_answer(schema: RatingSchema | str | None = None) -> str:
    """The fixed score-only answer of the fast readout for ``schema`` (:data:`FAST_ANSWER` for the paper)."""
    schema = rating.resolve(schema)
    if schema.is_paper:
        return FAST_ANSWER
    kw = {"schema": schema}
    return "\n".join(prompts.score_line(k, fast_fill(schema), **kw) for k in schema.keys)

STATUS_OK = "ok"
STATUS_DECODE_ERROR = "decode_error"


def dist_column(dim: str, level: str) -> str:
    """``p_<dimension>_<level>``, e.g. ``p_clarity_quality_3.5``."""
    return f"p_{dim}_{level}"


def columns(mode: str, *, schema: RatingSchema | str | None = None) -> list[str]:
    """The output columns of a scorer run in ``mode`` (same order in CSV, JSONL and Parquet) on the rating
    ``schema`` (None: the paper's).

    ``video_id, path, status, error, mode``; per dimension key of the schema ``<dim>_expected``
    (sum_s s pi(s)), ``<dim>_argmax`` (most probable level), ``<dim>_outside`` (mass outside the K
    levels); a dimension with a ``raw_range`` adds ``<dim>_expected_raw`` (the expected score on the
    raters' scale, ``schema.to_raw``); generate mode adds ``<dim>_parsed`` (NaN when that line did not
    parse), ``<dim>_parsed_raw`` (raw range only) and ``<dim>_parse_status``, ``rationale``,
    ``raw_text``, ``dist_prefix``; then the D x K columns ``p_<dim>_<level>`` (45 for the paper); then
    ``n_frames, sampled_fps, frame_height, frame_width, hdr, decode_s, processor_s, model_s`` (seconds
    per clip; model time is the batch's share) and ``batch``.
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}; use one of {MODES}")
    schema = rating.resolve(schema)
    cols = ["video_id", "path", "status", "error", "mode"]
    for k in schema.keys:
        raw = schema.dimension(k).raw_range is not None
        cols += [f"{k}_expected", f"{k}_argmax", f"{k}_outside"] + ([f"{k}_expected_raw"] if raw else [])
        if mode == "generate":
            cols += [f"{k}_parsed"] + ([f"{k}_parsed_raw"] if raw else []) + [f"{k}_parse_status"]
    if mode == "generate":
        cols += ["rationale", "raw_text", "dist_prefix"]
    cols += [dist_column(k, s) for k in schema.keys for s in schema.strings]
    cols += ["n_frames", "sampled_fps", "frame_height", "frame_width", "hdr", "decode_s", "processor_s", "model_s",
             "batch"]
    return cols


def _frame_schema(frame: pd.DataFrame, schema: RatingSchema | str | None) -> RatingSchema:
    from vqalib.eval.predictions_file import schema_of_frame

    return schema_of_frame(frame, schema)


def distributions(frame: pd.DataFrame, *, schema: RatingSchema | str | None = None) -> np.ndarray:
    """The level distributions ``[N, D, K]`` (``[N, 5, 9]`` for the paper) of a scorer output frame (NaN
    rows for failures); ``schema`` None: the frame's (``attrs["rating_schema"]``, set by
    :func:`vqalib.inference.store.read_scores`), else the paper's."""
    schema = _frame_schema(frame, schema)
    cols = [dist_column(k, s) for k in schema.keys for s in schema.strings]
    return frame[cols].to_numpy(float).reshape(len(frame), schema.n_dims, schema.n_levels)


def to_prediction_rows(frame: pd.DataFrame, *, schema: RatingSchema | str | None = None) -> pd.DataFrame:
    """Long prediction rows (``video_id, dimension, expected_score, argmax_score, parsed_score,
    parse_status``) from a scorer output, one per dimension of the schema (None: the frame's, else the
    paper's), for :mod:`vqalib.data.mos` / :mod:`vqalib.eval.tables`. Only rows with ``status == "ok"``;
    the result carries the schema in ``attrs["rating_schema"]``."""
    schema = _frame_schema(frame, schema)
    ok = frame[frame["status"] == STATUS_OK]
    out = []
    for k in schema.keys:
        parsed = ok[f"{k}_parsed"] if f"{k}_parsed" in ok else pd.Series(np.nan, index=ok.index)
        status = ok[f"{k}_parse_status"] if f"{k}_parse_status" in ok else pd.Series("not_generated", index=ok.index)
        out.append(pd.DataFrame({"video_id": ok["video_id"].astype(str), "dimension": k,
                                 "expected_score": ok[f"{k}_expected"].astype(float),
                                 "argmax_score": ok[f"{k}_argmax"].astype(float),
                                 "parsed_score": parsed.astype(float), "parse_status": status}))
    res = pd.concat(out, ignore_index=True) if out else pd.DataFrame()
    res.attrs["rating_schema"] = schema
    return res


# --------------------------------------------------------------------------- device, model, sampling


def default_dtype(device: str) -> str:
    """bfloat16 on a GPU, float32 on the CPU."""
    return "bfloat16" if str(device).startswith("cuda") else "float32"


def _checkpoint_manifest(path: Path) -> dict[str, Any]:
    from vqalib.core.runs import read_manifest

    for d in (path, path.parent):
        m = read_manifest(d)
        if m:
            return m
    return {}


def load_scoring_model(model: str | os.PathLike, device: str = "auto", dtype: str | None = None):
    """``(model, processor, info)`` for a hub id, a local folder, ``"tiny"`` or a run's checkpoint.

    A folder holding ``adapter_config.json`` (a peft LoRA adapter, e.g. ``checkpoints/sft/adapter``
    or a QLoRA checkpoint) is loaded onto its base model (``base_model_name_or_path`` of the adapter,
    else the checkpoint manifest's ``base_model``); a checkpoint folder with both a merged model and
    ``adapter/`` loads the merged model. ``info`` holds the source, the sampling settings saved with
    the checkpoint (if any), the device and dtype.
    """
    from vqalib.model.loading import adapter_folder, load_adapter_checkpoint, load_model_and_processor, resolve_model_path
    from vqalib.model.tiny import is_tiny_preset
    from vqalib.train.common import resolve_device  # one device rule for training and scoring

    from vqalib.inference.shards import world

    device = resolve_device(device)
    if world()[1] > 1:  # a launched run: each rank on its own GPU (cuda:<local rank>), or all on the CPU
        from vqalib.core.distributed import process_device

        device = process_device(device)
    dtype = dtype or default_dtype(device)
    device_map = None if device == "cpu" else device
    src = resolve_model_path(model)
    p = Path(src)
    adapter = adapter_folder(p)  # one adapter rule and loader for the scorer and the trainers
    manifest = _checkpoint_manifest(p) if p.is_dir() else {}
    if adapter is not None:
        net, processor = load_adapter_checkpoint(adapter, dtype=dtype, device_map=device_map)
    else:
        net, processor = load_model_and_processor(src, dtype=dtype, device_map=device_map)
    if device == "cpu":
        net = net.to("cpu")
    net.eval()
    sampling = manifest.get("sampling_config") or None
    if sampling is None and manifest.get("sampling"):
        sampling = {k: v for k, v in manifest["sampling"].items() if k in ("fps", "max_frames", "max_pixels")}
    from vqalib.eval.predict import checkpoint_schema

    saved = checkpoint_schema(adapter) if adapter is not None else None
    saved = saved if saved is not None else (checkpoint_schema(p) if p.is_dir() else None)
    from vqalib.model.family import family_of

    info = {"model": str(model), "resolved": str(src), "adapter": str(adapter) if adapter else None,
            "family": family_of(net).name,
            "device": device, "dtype": dtype, "checkpoint_sampling": sampling, "tiny": is_tiny_preset(model),
            "rating_schema": saved.to_dict() if saved is not None else None}

    net.vqalib_scoring_info = info  # a Scorer given this loaded model records the same source
    return net, processor, info


def default_sampling(info: dict[str, Any]):
    """Sampling for scoring: the checkpoint's own settings when saved with it, the tiny preset's
    frame budget for a tiny preset (``TINY_FRAME_PIXELS``, 112 x 112: 112 x 112 frames for ``tiny``, 96 x 96
    for ``tiny-qwen3-vl`` / ``tiny-qwen3.5``), else :class:`vqalib.video.frames.SamplingConfig` defaults
    (2 fps, <= 32 frames, 200,704 pixels).

    Frame sides are multiples of the model family's ``patch_factor`` (``info["family"]``, set by
    :func:`load_scoring_model`; 28 for Qwen2.5-VL, 32 for Qwen3-VL and Qwen3.5), also for a checkpoint
    whose saved settings predate the field; without ``info["family"]`` the factor stays 28 (Qwen2.5-VL)."""
    from vqalib.model.family import get_family
    from vqalib.model.tiny import TINY_FRAME_PIXELS
    from vqalib.video.frames import SamplingConfig

    fam = get_family(info["family"]) if info.get("family") else None
    factor = {"patch_factor": fam.patch_factor} if fam is not None else {}
    saved = info.get("checkpoint_sampling")
    if saved:
        known = set(SamplingConfig.__dataclass_fields__)
        return SamplingConfig(**{**factor, **{k: v for k, v in saved.items() if k in known}})
    if info.get("tiny"):
        return SamplingConfig(max_pixels=TINY_FRAME_PIXELS, max_frames=8, **factor)
    return SamplingConfig(**factor)


# --------------------------------------------------------------------------- decoding in workers


class _Clips(torch.utils.data.Dataset):
    """Decodes one video per item (runs in DataLoader workers): ``(record, video or None, error, seconds)``."""

    def __init__(self, records: list[dict[str, Any]], sampling):
        self.records = records
        self.sampling = sampling

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        from vqalib.video.frames import VideoDecodeError, sample_video

        rec = self.records[i]
        t0 = time.perf_counter()
        try:
            video = sample_video(rec["path"], self.sampling)
            return rec, video, None, time.perf_counter() - t0
        except (VideoDecodeError, ValueError, OSError) as e:
            return rec, None, f"{type(e).__name__}: {e}", time.perf_counter() - t0


@dataclass
class _Prepared:
    records: list[dict[str, Any]]
    videos: list[Any]
    decode_s: list[float]
    failures: list[tuple[dict[str, Any], str, float]]
    batch: Any = None
    processor_s: float = 0.0


class _Collate:
    """Builds the model inputs of a batch (in the worker): the processor runs beside decoding."""

    def __init__(self, processor, answer: str | None, instruction: str | None, schema: RatingSchema | None = None):
        self.processor = processor
        self.answer = answer
        self.instruction = instruction
        self.schema = rating.resolve(schema)

    def __call__(self, items) -> _Prepared:
        from vqalib.model.inputs import build_batch

        prep = _Prepared([], [], [], [])
        for rec, video, err, sec in items:
            if video is None:
                prep.failures.append((rec, err, sec))
            else:
                prep.records.append(rec)
                prep.videos.append(video)
                prep.decode_s.append(sec)
        if prep.videos:
            t0 = time.perf_counter()
            answers = [self.answer] * len(prep.videos) if self.answer is not None else None
            prep.batch = build_batch(self.processor, prep.videos, answers, instruction=self.instruction,
                                     schema=self.schema)
            prep.processor_s = time.perf_counter() - t0
        return prep


def _die_with_parent(parent: int) -> None:
    """Linux: have the kernel kill this process when its parent dies (``prctl(PR_SET_PDEATHSIG)``),
    so DataLoader workers never outlive a run killed with SIGKILL or stopped by SIGTERM; exit at once
    when the parent is already gone. Elsewhere nothing (the DataLoader's own watchdog remains)."""
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - no prctl
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


class _WorkerInit:
    """``worker_init_fn``: one torch thread per worker, and the worker dies with the scoring process."""

    def __init__(self) -> None:
        self.parent = os.getpid()

    def __call__(self, _: int) -> None:
        import signal

        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the CLI's handler (inherited through fork)
        _die_with_parent(self.parent)
        _quiet_handover_errors()
        torch.set_num_threads(1)


def _quiet_handover_errors() -> None:
    """In a worker: no traceback from multiprocessing's fd hand-over thread (``resource_sharer``)
    when the main process stops while receiving a batch (SIGTERM); a real hand-over failure is
    raised in the main process, which receives the batch."""
    import sys
    import threading
    from multiprocessing import resource_sharer

    hook = sys.excepthook

    def quiet(tp, value, tb):
        if threading.current_thread() is getattr(resource_sharer._resource_sharer, "_thread", None):
            return
        hook(tp, value, tb)

    sys.excepthook = quiet


# --------------------------------------------------------------------------- the scorer


@dataclass
class BatchResult:
    """Model outputs for the clips of one batch."""

    dist: np.ndarray  # [B, D, K] probabilities ([B, 5, 9] for the paper)
    outside: np.ndarray  # [B, D]
    texts: list[str] | None = None
    parses: list[prompts.ParseResult] | None = None
    dist_prefix: list[str] | None = None
    model_s: float = 0.0


@dataclass
class ScoreRun:
    """What :meth:`Scorer.score` returns: all rows of the output (old and new) and the counts."""

    rows: pd.DataFrame
    output: Path | None
    n_listed: int
    n_skipped: int  # already in the output with status ok (resumed)
    n_scored: int
    n_failed: int  # failed in this run (a video that failed before is tried again)
    failures: list[dict[str, str]] = field(default_factory=list)
    wall_s: float = 0.0
    n_retried: int = 0  # of the videos tried in this run, those whose earlier row in the output was a failure

    def summary(self) -> str:
        retried = (f" ({self.n_retried} of the videos tried had failed in an earlier run)" if self.n_retried else "")
        lines = [f"{self.n_listed} videos listed, {self.n_skipped} already in the output, {self.n_scored} scored now"
                 f"{retried}, {self.n_failed} failed to decode" + (f" -> {self.output}" if self.output else "")]
        lines += [f"  FAILED {f['path']}: {f['error']}" for f in self.failures]
        return "\n".join(lines)


class Scorer:
    """Score videos with a video VLM: ``Scorer("tiny").score("clips/", "scores.csv")``.

    ``model``: a hub id, a local folder, ``"tiny"``, a run's checkpoint (LoRA adapters included,
    see :func:`load_scoring_model`) or an already loaded model (then pass ``processor``).
    ``mode``: ``"fast"`` or ``"generate"`` (module docstring). ``sampling``: a
    :class:`vqalib.video.frames.SamplingConfig` (default :func:`default_sampling`). ``device``: ``auto``
    (CUDA if visible), ``cpu``, ``cuda``, ``cuda:1`` ...; ``dtype`` default bfloat16 on a GPU,
    float32 on the CPU. ``num_workers``: DataLoader worker processes that decode videos and run the
    processor while the model works (0 = in the main process, no overlap). ``schema``: the rating schema
    the model writes (None: the checkpoint's saved one, else the paper's; one given that differs from the
    checkpoint's raises ``ValueError``).
    """

    def __init__(self, model: Any = "tiny", *, processor=None, mode: str = "fast", sampling=None,
                 device: str = "auto", dtype: str | None = None, batch_size: int = 4, num_workers: int = 0,
                 max_new_tokens: int = 256, instruction: str | None = None,
                 schema: RatingSchema | str | None = None):
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}; use one of {MODES}")
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}; must be >= 1")
        if isinstance(model, torch.nn.Module):
            if processor is None:
                raise ValueError("Scorer(model=<loaded model>) needs processor=")
            self.model, self.processor = model.eval(), processor
            dev = str(next(model.parameters()).device)
            self.info = dict(getattr(model, "vqalib_scoring_info", None) or {
                "model": getattr(model, "vqalib_source", type(model).__name__), "device": dev,
                "dtype": str(next(model.parameters()).dtype).replace("torch.", ""), "tiny": False})
        else:
            self.model, self.processor, self.info = load_scoring_model(model, device, dtype)
        if not self.info.get("family"):  # a loaded model: its family sets the frame size of the default sampling
            from vqalib.model.family import family_of

            self.info["family"] = family_of(self.model).name
        self.device = torch.device(self.info["device"] if self.info["device"] != "auto" else "cpu")
        self.mode = mode
        self.sampling = sampling or default_sampling(self.info)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.max_new_tokens = max_new_tokens
        saved = self.info.get("rating_schema")
        saved = rating.schema_from_dict(saved, where="checkpoint rating_schema") if saved else None
        if schema is not None and saved is not None and rating.resolve(schema) != saved:
            raise ValueError(f"schema={rating.resolve(schema)!r} but the checkpoint {self.info.get('model')} was trained "
                             f"on {saved!r}; leave schema out to use the checkpoint's")
        self.schema = rating.resolve(schema) if schema is not None else (saved or rating.PAPER)
        if instruction is None and not self.schema.is_paper:
            from vqalib.eval.predict import default_instruction

            instruction = default_instruction(self.schema)
        self.instruction = instruction
        self.answer = fast_answer(self.schema)
        self.columns = columns(mode, schema=self.schema)

    # ---------------------------------------------------------------- model side

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def fast_distributions(self, batch) -> tuple[np.ndarray, np.ndarray]:
        """``(pi [B, D, K], outside [B, D])`` (``[B, 5, 9]`` for the paper) from one tree-masked pass over
        a batch built with :func:`fast_answer` (:func:`vqalib.method.distributions.level_logprobs`)."""
        from vqalib.method.distributions import level_logprobs

        with torch.no_grad():
            lp, out = level_logprobs(self.model, batch.to(self.device), schema=self.schema)
        return lp.float().exp().cpu().numpy().astype(float), out.float().cpu().numpy().astype(float)

    def run_batch(self, videos: Sequence[Any], batch=None) -> BatchResult:
        """Model outputs for sampled clips (:class:`vqalib.video.frames.SampledVideo`); ``batch`` is the
        prebuilt input (from the DataLoader), else built here."""
        from vqalib.model.inputs import build_batch
        from vqalib.eval.predict import generate_answers, score_answers

        if batch is None:
            answers = [self.answer] * len(videos) if self.mode == "fast" else None
            batch = build_batch(self.processor, videos, answers, instruction=self.instruction,
                                schema=self.schema)
        self._sync()
        t0 = time.perf_counter()
        if self.mode == "fast":
            dist, outside = self.fast_distributions(batch)
            self._sync()
            return BatchResult(dist, outside, model_s=time.perf_counter() - t0)
        texts = generate_answers(self.model, self.processor, batch.to(self.device), self.max_new_tokens)
        dist, outside, kinds, parses = score_answers(self.model, self.processor, videos, texts, self.instruction,
                                                     schema=self.schema)
        self._sync()
        return BatchResult(dist, outside, texts, parses, kinds, model_s=time.perf_counter() - t0)

    # ---------------------------------------------------------------- rows

    def _row(self, rec: dict[str, Any], res: BatchResult | None, j: int, *, sampling: dict[str, Any] | None = None,
             error: str | None = None, decode_s: float = math.nan, processor_s: float = math.nan,
             model_s: float = math.nan, batch_no: int = -1) -> dict[str, Any]:
        row: dict[str, Any] = {c: None for c in self.columns}
        row.update(video_id=str(rec["video_id"]), path=str(rec["path"]), mode=self.mode, batch=batch_no,
                   status=STATUS_OK if error is None else STATUS_DECODE_ERROR, error=error,
                   decode_s=decode_s, processor_s=processor_s, model_s=model_s)
        if res is None:
            return row
        schema = self.schema
        for d, k in enumerate(schema.keys):
            p = res.dist[j, d]
            raw = schema.dimension(k).raw_range is not None
            row[f"{k}_expected"] = float(p @ schema.levels)
            row[f"{k}_argmax"] = float(schema.levels[int(np.argmax(p))])
            row[f"{k}_outside"] = float(res.outside[j, d])
            if raw:
                row[f"{k}_expected_raw"] = float(schema.to_raw(row[f"{k}_expected"], k))
            for s, v in zip(schema.strings, p):
                row[dist_column(k, s)] = float(v)
            if res.parses is not None:
                parse = res.parses[j]
                row[f"{k}_parsed"] = parse.scores[k]
                if raw:
                    row[f"{k}_parsed_raw"] = None if parse.scores[k] is None else float(schema.to_raw(parse.scores[k], k))
                row[f"{k}_parse_status"] = parse.status[k]
        if res.parses is not None:
            row["rationale"] = res.parses[j].rationale
            row["raw_text"] = res.texts[j]
            row["dist_prefix"] = res.dist_prefix[j]
        if sampling:
            row.update(n_frames=sampling["n_frames"], sampled_fps=sampling["sampled_fps"],
                       frame_height=sampling["frame_height"], frame_width=sampling["frame_width"],
                       hdr=sampling.get("hdr"))
        return row

    def _generation(self) -> dict[str, Any]:
        from vqalib.model.generation import GenerationSettings, describe

        return describe(GenerationSettings.greedy(self.max_new_tokens), self.processor, self.model)

    def manifest(self) -> dict[str, Any]:
        from vqalib.model.generation import model_family
        from vqalib.model.loading import describe_model
        from vqalib.core.runs import environment_info

        fam = model_family(self.processor, self.model)  # None for a model of no supported family
        return {"model": self.info.get("model"), "mode": self.mode, "sampling": self.sampling.to_dict(),
                # the model family: how frame times reached it, its level pass, its chat-template options
                "model_family": fam.describe() if fam is not None else None,
                "instruction": self.instruction or prompts.INSTRUCTION,
                "max_new_tokens": self.max_new_tokens if self.mode == "generate" else None,
                # every decoding parameter of generate mode, none from the checkpoint (vqalib.model.generation)
                "generation": self._generation() if self.mode == "generate" else None,
                "fast_answer": self.answer if self.mode == "fast" else None,
                "model_info": {**describe_model(self.model),
                               **{k: v for k, v in self.info.items() if k not in ("model", "rating_schema")}},
                "environment": environment_info(), "columns": self.columns,
                "rating_schema": self.schema.to_dict()}

    # ---------------------------------------------------------------- the loop

    def score(self, videos: Any, output: str | os.PathLike | None = None, *, progress: bool = False,
              overwrite: bool = False, limit: int | None = None) -> ScoreRun:
        """Score ``videos`` (a folder, glob, .txt/.csv list, a list of paths or a DataFrame with
        ``video_id, path``) and return all rows; with ``output`` (.csv, .jsonl or .parquet) rows are
        appended after every batch and videos already in it are skipped (resume).

        Checked before anything is scored: the output (:func:`vqalib.inference.store.check_output`:
        ``OutputError`` for a bad suffix or path, ``ResumeMismatch`` for another mode or model,
        ``OutputLocked`` while another run writes into it) and the list (``ValueError`` for an id or
        path used twice). The run holds the output's lock until it returns."""
        from vqalib.inference import shards
        from vqalib.inference.store import acquire_lock, check_output, release_lock

        t_start = time.perf_counter()
        if shards.world()[1] > 1:  # under torchrun / accelerate launch: one shard per rank (vqalib.inference.shards)
            items = self.list_items(videos)
            return shards.score_sharded(self, items.head(limit) if limit else items, output, progress=progress,
                                        overwrite=overwrite, t_start=t_start)
        if output is not None:  # before listing: a wrong output path, mode or a running run fails at once
            check_output(output, self.resume_settings(), overwrite)
        items = self.list_items(videos)
        if limit:
            items = items.head(limit)
        lock = acquire_lock(output) if output is not None else None  # one run per output (store docstring)
        try:
            if output is not None:  # parts a killed sharded run left: into the output first, or gone on overwrite
                shards.remove_parts(output) if overwrite else shards.fold_parts(output, self.columns, self.manifest())
            return self._score(items, output, progress, overwrite, t_start)
        finally:
            release_lock(lock)

    def resume_settings(self) -> dict[str, Any]:
        """The manifest settings known before the sampling is resolved (checked by :func:`check_output`)."""
        return {"model": self.info.get("model"), "mode": self.mode, "rating_schema": self.schema.to_dict()}

    @staticmethod
    def list_items(videos: Any) -> pd.DataFrame:
        """``video_id, path`` of ``videos`` (see :meth:`score`); raises ``ValueError`` naming a video_id
        or path that is used twice (the output keys rows by them)."""
        from vqalib.inference.sources import list_videos

        items = videos.copy() if isinstance(videos, pd.DataFrame) else list_videos(videos)
        for col in ("video_id", "path"):
            if col not in items.columns:
                raise ValueError(f"the videos table has no {col!r} column; give video_id and path columns")
            key = items[col].astype(str)
            dup = key[key.duplicated()]
            if len(dup):
                raise ValueError(f"{col} {dup.iloc[0]!r} is used by {int((key == dup.iloc[0]).sum())} videos; "
                                 "give each video a unique id and path")
        return items

    def _score(self, items: pd.DataFrame, output, progress: bool, overwrite: bool, t_start: float,
               prior: pd.DataFrame | None = None) -> ScoreRun:
        """Score ``items`` into ``output``; ``prior``: rows held elsewhere that count as done too (a sharded
        rank writes its part file and skips what the merged output holds, :mod:`vqalib.inference.shards`)."""
        from vqalib.inference.store import RowStore, last_row_per_video

        store = RowStore(output, self.columns, self.manifest(), overwrite=overwrite) if output else None
        done = store.open() if store else pd.DataFrame(columns=self.columns)
        held = [f for f in (prior, done) if f is not None and len(f)]
        # a video whose row is ok is skipped; one that failed before (decode_error) is tried again, and its
        # new row, appended after the old one, is the one that counts (``drop_duplicates(keep="last")``)
        seen = last_row_per_video(pd.concat(held, ignore_index=True)) if held else done
        ok_paths = set(seen.loc[seen["status"] == STATUS_OK, "path"].astype(str)) if len(seen) else set()
        failed_before = set(seen.loc[seen["status"] != STATUS_OK, "path"].astype(str)) if len(seen) else set()
        todo = [r for r in items[["video_id", "path"]].to_dict("records") if str(r["path"]) not in ok_paths]
        n_retried = sum(str(r["path"]) in failed_before for r in todo)
        loader = torch.utils.data.DataLoader(
            _Clips(todo, self.sampling), batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
            collate_fn=_Collate(self.processor, self.answer if self.mode == "fast" else None, self.instruction,
                                self.schema),
            worker_init_fn=_WorkerInit() if self.num_workers else None,
            persistent_workers=False, prefetch_factor=2 if self.num_workers else None)
        threads = torch.get_num_threads()
        if self.device.type == "cpu" and self.num_workers and todo:
            from vqalib.train.common import free_core_threads  # the trainers' rule: one thread per free core

            torch.set_num_threads(free_core_threads(self.num_workers))
        try:
            new_rows, failures = self._loop(loader, store, done, len(todo), progress)
        finally:
            torch.set_num_threads(threads)
        if store:
            store.close()
        frames = [f for f in (done, pd.DataFrame(new_rows, columns=self.columns)) if len(f)]
        all_rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=self.columns)
        all_rows = last_row_per_video(all_rows)
        return ScoreRun(all_rows, Path(output) if output else None, len(items), len(items) - len(todo),
                        len(new_rows) - len(failures), len(failures), failures, time.perf_counter() - t_start,
                        n_retried=n_retried)

    def _loop(self, loader, store, done: pd.DataFrame, total: int, progress: bool):
        """Score every batch the loader yields, appending rows to ``store`` after each batch."""
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc=f"score ({self.mode})", unit="video")
        new_rows: list[dict[str, Any]] = []
        failures: list[dict[str, str]] = []
        batch_no = int(done["batch"].max()) + 1 if len(done) and done["batch"].notna().any() else 0
        for prep in loader:
            rows = []
            for rec, err, sec in prep.failures:
                rows.append(self._row(rec, None, 0, error=err, decode_s=sec, batch_no=batch_no))
                failures.append({"video_id": str(rec["video_id"]), "path": str(rec["path"]), "error": err})
            if prep.videos:
                res = self.run_batch(prep.videos, prep.batch)
                n = len(prep.videos)
                for j, rec in enumerate(prep.records):
                    rows.append(self._row(rec, res, j, sampling=prep.batch.sampling[j], decode_s=prep.decode_s[j],
                                          processor_s=prep.processor_s / n, model_s=res.model_s / n,
                                          batch_no=batch_no))
            if store:
                store.append(rows)
            new_rows += rows
            batch_no += 1
            if bar is not None:
                bar.update(len(rows))
        if bar is not None:
            bar.close()
        return new_rows, failures
