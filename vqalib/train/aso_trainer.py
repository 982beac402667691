"""Stage III (the method): Analytic Score Optimization.

For every training clip and dimension d, with the SFT model as reference:

    pi_ref(s | x)   the SFT model's distribution over the 9 levels at d's score position
                    (``vqalib.method.distributions.level_logprobs``), PRECOMPUTED ONCE over the training set and
                    cached (``<output_dir>/pi_ref.pt`` or ``pi_ref_path``, keyed by :func:`pi_ref_key`), so no reference
                    model is held in memory for it;
    pi*(s | x)      = pi_ref(s|x) exp(R(s, s*)/lambda) / Z(x),  R = -beta |s - s*|   (vqalib.method.aso, A3)
                    (``eps > 0``: pi_ref floored to (1 - 9 eps) pi_ref + eps first, so pi* > 0 on
                    every level; ``eps: 0`` is the paper, where a level with pi_ref = 0 keeps pi* = 0)
                    (``reward: multi_rater``: R = -beta mean_r |s - s_r| over the raters' own scores)
    L_score         = - mean_{clips, dims} sum_s pi*(s) log pi_theta(s | x)          (A6; grad = pi_theta - pi*)
                    on the UNNORMALISED level log-probs (``penalise_outside: true``), i.e. the 9-level
                    cross-entropy plus -log(1 - mass off the 9 levels)
    L               = L_score + w * L_rationale

What pi_ref is conditioned on (issue 9). The answer puts the rationale before the score lines, and
the dataset's rationales name the level ("Overall, the clarity quality is good."), as the paper's
rationale prompts require. Read after such text, pi_ref and pi_theta are ~one-hot on the label, so
pi* ~ the label and ASO degenerates to SFT on the score tokens. So pi_ref (and pi_theta for L_score)
are only ever read after a rationale that does not name the score: ``rationale: scrubbed`` (the
dataset's rationales with every sentence naming a level removed, ``collator.scrub_rationale``),
``short`` (the ticked defects) or ``none``; ``rationale: full`` is refused for teacher-forced ASO
(``common.validate_config``), and on-policy samples are scrubbed the same way before the score lines
are appended. :func:`pi_ref_sharpness` measures how peaked pi_ref is under each mode.

``rationale_loss`` (the paper: the KL term "regularises the entire sequence"): ``kl`` (default) -
full-vocabulary KL(pi_theta || pi_ref) on the answer's other tokens (rationale and "Motion Quality:"
scaffolding), with the reference policy = the LoRA adapter disabled (free) or a frozen copy under
full fine-tuning (a second set of weights); ``ce`` - cross-entropy on the reference rationale (no
reference policy held; refused with ``on_policy``, where it would be self-training on the model's own
samples); ``none``.

On-policy variant (``on_policy: true``): the rationale is sampled from the current policy (video
passed, vision tokens suppressed), scrubbed of score words, the score lines are appended with the
ground-truth levels as teacher-forced prefixes, and both pi_theta and pi_ref are read at the score
positions *after the sampled rationale*. pi_ref then depends on the sample, so it cannot be
precomputed: the reference policy is kept (adapter disabled under LoRA, a frozen copy under full
fine-tuning).

Rating schema (issue 23; ``vqalib.schema.rating``, the stage's from its dataset): pi over the schema's K
levels at each of its D dimensions, R on its level values. A dimension a clip has no label for
(``label_mask`` False, target NaN) is left out of pi*, of the score loss and of every logged mean, and
counted (``n_dims_masked``). Under a ``gaussian``/``histogram`` schema the reward is the soft label's
expected distance, ``R(s) = -beta sum_j t_j |s - v_j|`` (t: the clip's target over the levels, v: the
level values; ``vqalib.method.aso.reward_abs(target=t)``), so pi* leans towards where the raters put their
mass, not only their mean; SFT's text target stays the nearest level (a text answer names one level).
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from vqalib.core.runs import resolve_path
from vqalib.schema import rating
from vqalib.train.base import VQATrainer, make_reference, reference_mode, run_stage
from vqalib.train.collator import ClipExample, FrameCache, VideoCollator, model_inputs, schema_kw
from vqalib.train.common import ASOConfig, TrainResult
from vqalib.train.token_logits import answer_logit_positions, rationale_ce_at, rationale_kl_at


def level_logprobs(model: Any, batch: dict[str, Any], tokenizer: Any, return_logits: bool = False,
                   schema: rating.RatingSchema | None = None):
    """log pi over the K levels of ``schema`` (the paper's 9) at each dimension's score position:
    ([B, D, K], outside mass [B, D]).

    Thin wrapper over :func:`vqalib.method.distributions.level_logprobs` taking a collated batch: one pass of the
    model family's kind (tree-masked; one batched pass over the trie's branches for Qwen3.5's recurrent
    layers, :attr:`vqalib.model.family.ModelFamily.tree_mask`). ``return_logits=True`` adds the sequence's
    teacher-forced logits [B, L, V] (from the same pass, or one more plain pass for the branch pass)."""
    from vqalib.method.distributions import level_logprobs as _llp
    from vqalib.method.distributions import level_token_ids

    return _llp(model, model_inputs(batch), level_token_ids(tokenizer, **schema_kw(schema)), batch["score_positions"],
                return_logits=return_logits, schema=schema)


def keyword_logprobs_raw(model: Any, batch: dict[str, Any], tokenizer: Any,
                         return_logits: bool | torch.Tensor = False, schema: rating.RatingSchema | None = None):
    """Unnormalised log pi over the nine evaluation keywords at each dimension's keyword position
    (``batch["keyword_positions"]`` [B, 5], from ``VideoCollator(keywords=True)``): [B, 5, 9], NaN where a
    dimension has no keyword; the keywords are a level set scored like the level strings
    (``vqalib.method.distributions.level_logprobs_raw``, shared-prefix tree). A batch with capitalised keywords takes a
    second pass for them. ``return_logits=True`` adds the sequence's teacher-forced logits [B, L, V]; a [B, K]
    position tensor adds only those positions' logits [B, K, V] (as ``level_logprobs_raw``)."""
    from vqalib.method.distributions import level_logprobs_raw
    from vqalib.train.collator import keyword_token_ids

    pos, cap = batch["keyword_positions"], batch["keyword_capitalised"].to(batch["keyword_positions"].device)
    lower = pos.masked_fill(cap, -1)
    res = level_logprobs_raw(model, model_inputs(batch), keyword_token_ids(tokenizer, schema=schema), lower,
                             return_logits=return_logits)
    want_logits = torch.is_tensor(return_logits) or bool(return_logits)
    raw, logits = res if want_logits else (res, None)
    if bool((cap & (pos > 0)).any()):
        raw_cap = level_logprobs_raw(model, model_inputs(batch), keyword_token_ids(tokenizer, True, schema=schema),
                                     pos.masked_fill(~cap, -1))
        raw = torch.where(cap[..., None], raw_cap, raw)
    return (raw, logits) if want_logits else raw


def keyword_token_mask(labels: torch.Tensor, positions: torch.Tensor, tokenizer: Any,
                       schema: rating.RatingSchema | None = None) -> torch.Tensor:
    """True on the label positions of each dimension's teacher-forced keyword (the tokens of whichever of
    the schema's keywords is written there); those are trained by the soft-target term instead."""
    from vqalib.train.collator import keyword_token_ids

    cands = keyword_token_ids(tokenizer, schema=schema) + keyword_token_ids(tokenizer, True, schema=schema)
    mask = torch.zeros_like(labels, dtype=torch.bool)
    for b in range(labels.shape[0]):
        for p in positions[b].tolist():
            if p < 0:
                continue
            n = max((len(c) for c in cands if labels[b, p:p + len(c)].tolist() == list(c)), default=1)
            mask[b, p:p + n] = True
    return mask


def score_token_mask(labels: torch.Tensor, score_positions: torch.Tensor, n_tokens: int = 3,
                     level_ids: Sequence[Sequence[int]] | None = None) -> torch.Tensor:
    """True on the label positions that are score-level tokens (``"3"``, ``"."``, ``"5"``: ``n_tokens``
    tokens from each dimension's first digit); those are trained by the soft-target term instead.
    ``level_ids`` (the schema's level strings as token ids, ``level_token_ids(tokenizer, schema=)``): the
    tokens of the longest level written at each position instead (``"10"`` is two tokens, ``"1"`` one,
    ``" excellent"`` one)."""
    mask = torch.zeros_like(labels, dtype=torch.bool)
    for b in range(labels.shape[0]):
        for p in score_positions[b].tolist():
            if p < 0:
                continue
            n = n_tokens
            if level_ids is not None:
                n = max((len(c) for c in level_ids if labels[b, p:p + len(c)].tolist() == list(c)), default=1)
            mask[b, p:p + n] = True
    return mask


def rationale_ce(logits: torch.Tensor, labels: torch.Tensor, score_mask: torch.Tensor) -> torch.Tensor:
    """Next-token CE over answer tokens that are not score tokens (mean over those tokens)."""
    lab = labels.masked_fill(score_mask, -100)[:, 1:]
    lg = logits[:, :-1].float()
    n = (lab != -100).sum().clamp(min=1)
    return F.cross_entropy(lg.reshape(-1, lg.shape[-1]), lab.reshape(-1), ignore_index=-100, reduction="sum") / n


def rationale_kl(logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor,
                 score_mask: torch.Tensor) -> torch.Tensor:
    """Full-vocabulary KL(pi_theta || pi_ref) at the positions predicting non-score answer tokens."""
    sel = (labels.masked_fill(score_mask, -100)[:, 1:] != -100)
    lp = F.log_softmax(logits[:, :-1].float(), -1)
    lq = F.log_softmax(ref_logits[:, :-1].float(), -1)
    kl = (lp.exp() * (lp - lq)).sum(-1)
    return (kl * sel).sum() / sel.sum().clamp(min=1)


def checkpoint_fingerprint(folder: str | Path) -> str:
    """SHA-1 over the contents of a checkpoint's weight and config files (``*.safetensors``, ``*.bin``,
    ``*.pt``, ``config.json``, ``adapter_config.json``), in name order: changes whenever the weights do,
    even if a folder is overwritten in place. Reads every byte (≈ 15 s for a 16 GB 7B checkpoint
    on a fast disk); ``""`` for a folder without such files (e.g. a hub id)."""
    root = Path(folder)
    if not root.is_dir():
        return ""
    files = sorted(p for pat in ("*.safetensors", "*.bin", "*.pt", "config.json", "adapter_config.json")
                   for p in root.rglob(pat) if p.is_file() and p.name != "pi_ref.pt" and "checkpoint-" not in str(p))
    h = hashlib.sha1()
    for p in files:
        h.update(str(p.relative_to(root)).encode())
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest() if files else ""


def pi_ref_key(cfg: ASOConfig, examples: Sequence[ClipExample], schema: rating.RatingSchema | None = None) -> str:
    """Cache key of the precomputed pi_ref: everything that changes it.

    The reference checkpoint (path and a hash of its weights, :func:`checkpoint_fingerprint`), how it
    is loaded (``finetune`` - LoRA wraps it, QLoRA quantises it to 4 bit -, ``bf16``, the LoRA
    settings), the seed (the ``tiny`` preset's random weights), what is teacher-forced (the exact answer
    text of every clip under ``rationale``, so labels and rationales count, and the instruction), the
    video sampling and augmentation, the clips themselves and the rating schema (levels and dimensions
    read; the paper's adds nothing, so its keys are those written before schemas existed)."""
    from vqalib.train.collator import answer_text

    sch = rating.resolve(schema)
    ref = resolve_path(cfg.init_from) if cfg.init_from else cfg.model
    answers = hashlib.sha1()
    for ex in examples:
        answers.update(f"{ex.video_id}\x00{ex.path}\x00{answer_text(ex, cfg.rationale, sch)}\x01".encode())
    extra = {} if sch.is_paper else {"rating_schema": sch.fingerprint()}
    blob = json.dumps({**extra, "ref": str(ref), "weights": checkpoint_fingerprint(ref) if cfg.init_from else "",
                       "model": cfg.model, "seed": cfg.seed if not cfg.init_from else None,
                       "finetune": cfg.finetune, "bf16": cfg.bf16,
                       "lora": [cfg.lora_r, cfg.lora_alpha] if cfg.finetune != "full" else None,
                       "rationale": cfg.rationale, "instruction": cfg.instruction,
                       "fps": cfg.fps, "frames": cfg.max_frames, "pixels": cfg.max_pixels, "augment": cfg.augment,
                       "answers": answers.hexdigest(), "cache_format": 2,
                       "target_position": cfg.target_position}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def revealing_answers(examples: Sequence[ClipExample], rationale: str,
                      schema: rating.RatingSchema | None = None) -> list[tuple[str, list[str]]]:
    """The clips whose teacher-forced rationale under ``rationale`` names the score: ``[(video_id, words)]``.

    Only the rationale part is checked (the score lines themselves are what pi is read at)."""
    from vqalib.schema.prompts import parse_answer
    from vqalib.train.collator import answer_text, reveals_score

    out = []
    for ex in examples:
        words = reveals_score(parse_answer(answer_text(ex, rationale, schema), **schema_kw(schema)).rationale, schema)
        if words:
            out.append((ex.video_id, words))
    return out


def pi_ref_collator(processor: Any, cache: FrameCache, rationale: str, instruction: str = "",
                    keywords: bool = False, schema: rating.RatingSchema | None = None) -> VideoCollator:
    """The collator pi_ref is read with: the reference answer teacher-forced under ``rationale``, no
    augmentation. Warns (``UserWarning``) when ``rationale`` is not one of the score-free modes
    (``collator.SCORE_FREE_MODES``): pi_ref read after text that names the score is ~one-hot on it."""
    import warnings

    from vqalib.train.collator import SCORE_FREE_MODES

    if rationale not in SCORE_FREE_MODES and not keywords:
        warnings.warn(f"pi_ref read with rationale={rationale!r}: the teacher-forced rationales may name the score, "
                      f"so pi_ref would be ~one-hot on the label and pi* ~ the label; use one of "
                      f"{list(SCORE_FREE_MODES)} for ASO", UserWarning, stacklevel=3)
    return VideoCollator(processor, cache, with_answers=True, augment=False, rationale=rationale,
                         instruction=instruction, keywords=keywords, schema=schema)


@torch.no_grad()
def precompute_pi_ref(model: Any, processor: Any, examples: Sequence[ClipExample], cache: FrameCache,
                      rationale: str = "short", batch_size: int = 32, device: str = "cpu",
                      progress: bool = True, instruction: str = "", with_outside: bool = False,
                      target_position: str = "score", schema: rating.RatingSchema | None = None):
    """pi_ref (log-probs [5, 9], renormalised over the nine levels) of each clip under ``model`` with the
    reference answer teacher-forced: ``{video_id: [5, 9]}``; ``with_outside=True`` returns
    ``(pi_ref, outside)`` with ``outside[video_id]`` [5] the mass the model put off the nine level strings
    at each score position (kept beside the renormalised pi_ref for the health report, issue 20).
    ``target_position="keyword"``: pi_ref over the nine evaluation keywords at each dimension's keyword
    in the full rationale (:func:`keyword_logprobs_raw`) instead of the score lines. ``schema``: [D, K] of
    its dimensions and levels (the paper's [5, 9]); a dimension the clip has no label for is NaN.

    Runs once before training (no augmentation). A clip whose answer has no score position raises.
    Under several processes each rank scores its shard (``examples[rank::world]``,
    :func:`vqalib.core.distributed.shard`) and the shards are gathered, so every rank returns the
    whole mapping for 1/world of the work (the caller writes it once, on the main process)."""
    from tqdm.auto import tqdm

    from vqalib.core.distributed import gather_dict, is_main_process, num_processes, process_index, shard

    keywords = target_position == "keyword"
    sch = rating.resolve(schema)
    collator = pi_ref_collator(processor, cache, rationale, instruction, keywords=keywords, schema=sch)
    was = model.training
    model.eval()
    out: dict[str, torch.Tensor] = {}
    off: dict[str, torch.Tensor] = {}
    try:
        mine = shard(examples)
        if num_processes() > 1:
            print(f"pi_ref: rank {process_index()} of {num_processes()} scores {len(mine)} of {len(examples)} clips",
                  flush=True)
        for i in tqdm(range(0, len(mine), batch_size), desc="pi_ref (SFT model)", disable=not (progress and is_main_process())):
            batch = collator(mine[i:i + batch_size])
            bad = ((batch["score_positions"] < 0) & batch["label_mask"]).any(1)
            if bad.any():
                vid = batch["video_ids"][int(bad.nonzero()[0])]
                raise ValueError(f"clip {vid!r}: its reference answer has no score position; check prompts.format_answer")
            if keywords:
                bad = ((batch["keyword_positions"] < 0) & batch["label_mask"]).any(1)
                if bad.any():
                    b = int(bad.nonzero()[0])
                    dims = [sch.keys[d] for d in range(sch.n_dims)
                            if batch["keyword_positions"][b, d] < 0 and batch["label_mask"][b, d]]
                    raise ValueError(f"clip {batch['video_ids'][b]!r}: the rationale of {dims} holds no evaluation "
                                     f"keyword (Abysmal ... Perfect), so target_position=keyword has nothing to train "
                                     f"there; fix rationales.jsonl or use target_position=score")
            batch = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
            if keywords:
                from vqalib.method.distributions import normalise

                logp, outside = normalise(keyword_logprobs_raw(model, batch, processor.tokenizer, schema=sch))
            else:
                logp, outside = level_logprobs(model, batch, processor.tokenizer, schema=sch)
            for vid, lp, o in zip(batch["video_ids"], logp.float().cpu(), outside.float().cpu()):
                out[vid] = lp
                off[vid] = o
    finally:
        model.train(was)
    return (gather_dict(out), gather_dict(off)) if with_outside else gather_dict(out)


def pi_ref_sharpness(model: Any, processor: Any, examples: Sequence[ClipExample], cache: FrameCache,
                     modes: Sequence[str] = ("full", "scrubbed", "short", "none"), batch_size: int = 16,
                     device: str = "cpu", instruction: str = "", progress: bool = False,
                     schema: rating.RatingSchema | None = None):
    """How peaked pi_ref is when read after each rationale mode: one row per mode with the means over
    clips x dimensions of ``max_prob`` (max_s pi_ref(s)), ``entropy`` (nats; uniform over 9 = 2.197),
    ``p_label`` (pi_ref(s*)) and ``pistar_label`` (pi*(s*) at lambda = beta = 1), plus ``n_revealing``
    (clips whose teacher-forced rationale names the score, :func:`revealing_answers`) and ``n_clips``.

    A mode that teacher-forces the score shows max_prob ~ p_label ~ 1 and entropy ~ 0: pi* is then
    the label. Modes a clip cannot be built for (``full``/``scrubbed`` without rationales) are skipped
    with their reason in ``skipped``. Returns a ``pandas.DataFrame``."""
    import warnings

    import pandas as pd

    from vqalib.method.aso import entropy, optimal_policy, reward_abs

    sch = rating.resolve(schema)
    rows = []
    targets = torch.tensor([ex.targets(sch) for ex in examples], dtype=torch.float64)  # [N, D]
    valid = torch.isfinite(targets)
    if sch.is_paper:
        k_label = ((targets - 1.0) * 2).round().long()
    else:
        k_label = torch.as_tensor(sch.index(sch.snap(targets.nan_to_num(sch.lo).numpy())), dtype=torch.long)
    k_label = k_label.masked_fill(~valid, 0)
    t_filled = targets.masked_fill(~valid, sch.lo)

    def mean(x: torch.Tensor) -> float:  # over the labelled (clip, dimension) pairs
        return float(x.mean()) if bool(valid.all()) else float(x[valid].mean())

    for mode in modes:
        try:
            revealing = revealing_answers(examples, mode, sch)
        except ValueError as e:
            rows.append({"rationale": mode, "skipped": str(e)})
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            pi = precompute_pi_ref(model, processor, examples, cache, rationale=mode, batch_size=batch_size,
                                   device=device, progress=progress, instruction=instruction, schema=sch)
        lp = torch.stack([pi[ex.video_id] for ex in examples]).double()  # [N, D, K]
        p = lp.exp()
        star = optimal_policy(lp, reward_abs(t_filled, 1.0, **schema_kw(sch)), 1.0, **schema_kw(sch))
        rows.append({"rationale": mode, "max_prob": mean(p.max(-1).values),
                     "entropy": mean(entropy(p)),
                     "p_label": mean(p.gather(-1, k_label[..., None]).squeeze(-1)),
                     "pistar_label": mean(star.gather(-1, k_label[..., None]).squeeze(-1)),
                     "n_revealing": len(revealing), "n_clips": len(examples), "skipped": ""})
    return pd.DataFrame(rows)


def score_loss(logp_raw: torch.Tensor, target: torch.Tensor, penalise_outside: bool = True,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """ASO's score term from the model's unnormalised level log-probs ``logp_raw`` [B, 5, 9] and π* [B, 5, 9].

    ``penalise_outside=True``: ``−Σ π* log π_θ(s)`` on the raw log-probs, i.e. the 9-level soft-target
    CE plus ``−log(1 − outside)`` (``vqalib.method.aso.outside_penalty``), so moving mass off the nine levels
    raises the loss. ``False``: the CE on the distribution renormalised over the 9 levels, which is
    blind to that mass (the score tokens are also masked out of the rationale term). ``mask`` [B, D] (True =
    counts): the mean over the labelled dimensions only (missing labels left out)."""
    from vqalib.method.aso import aso_loss
    from vqalib.method.distributions import normalise

    if mask is None:
        return aso_loss(logp_raw if penalise_outside else normalise(logp_raw)[0], target)
    return aso_loss(logp_raw if penalise_outside else normalise(logp_raw)[0], target, mask=mask)


def aso_target(cfg: ASOConfig, logp_ref: torch.Tensor, scores: torch.Tensor,
               raters: torch.Tensor | None = None, schema: rating.RatingSchema | None = None,
               soft: torch.Tensor | None = None) -> torch.Tensor:
    """The soft target pi* [B, 5, 9] (float32) the ASO trainer fits, from log pi_ref [B, 5, 9] and the labels.

    ``pi* = pi_ref exp(R/lambda) / Z`` (paper Eq. 8, ``vqalib.method.aso.optimal_policy``, computed in float64)
    with ``R = -beta |s - s*|`` on the mean labels ``scores`` [B, 5] (``reward: abs``) or
    ``-beta mean_r |s - s_r|`` on the raters' scores ``raters`` [B, 5, R] (``reward: multi_rater``; a
    batch without them raises ``KeyError``). ``cfg.eps > 0`` floors pi_ref first
    (``(1 - 9 eps) pi_ref + eps``, ``vqalib.method.aso.as_log_probs``), so the target has mass on levels
    where pi_ref has none; ``eps = 0`` is the paper's target, which keeps them at exactly 0.

    ``schema`` (default the paper's): [B, D, K] over its levels, R on its level values. ``soft`` [B, D, K]
    (a ``gaussian``/``histogram`` schema's soft labels, ``reward: abs``): ``R = -beta sum_j t_j |s - v_j|``
    (``vqalib.method.aso.reward_abs(target=)``). A dimension whose label is missing (``scores`` NaN) gets a NaN target row: the
    loss leaves it out."""
    from vqalib.method.aso import optimal_policy, reward_abs, reward_multi_rater

    sch = rating.resolve(schema)
    skw = schema_kw(sch)
    scores = scores.to(logp_ref.device)
    valid = torch.isfinite(scores)
    masked = not bool(valid.all())
    if masked:  # missing labels: any finite stand-in, the rows are set to NaN below
        scores = scores.masked_fill(~valid, sch.lo)
        logp_ref = logp_ref.masked_fill(~valid[..., None], -math.log(sch.n_levels))
    if cfg.reward == "multi_rater":
        if raters is None:
            raise KeyError("reward=multi_rater but the batch has no rater_scores; build it with with_raters=True")
        raters = raters.double().to(logp_ref.device)
        if masked:
            raters = torch.where(valid[..., None], raters, torch.full_like(raters, sch.lo))
        R = reward_multi_rater(raters, beta=cfg.beta, **skw)
    elif soft is not None:
        R = reward_abs(target=soft.double().to(logp_ref.device).masked_fill(~valid[..., None], 1.0 / sch.n_levels),
                       beta=cfg.beta, **skw)
    else:
        R = reward_abs(scores.double(), beta=cfg.beta, **skw)
    target = optimal_policy(logp_ref.double(), R, cfg.lam, eps=cfg.eps, **skw).float()
    return target.masked_fill(~valid[..., None], float("nan")) if masked else target


class ASOTrainer(VQATrainer):
    """ASO: soft-target cross-entropy against pi* on the score positions + a rationale term."""

    def __init__(self, *args: Any, pi_ref: dict[str, torch.Tensor] | None = None,
                 ref_model: torch.nn.Module | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.pi_ref = pi_ref
        self.ref_model = ref_model
        if ref_model is not None:
            ref_model.to(self.args.device)

    def _targets(self, logp_ref: torch.Tensor, scores: torch.Tensor, raters: torch.Tensor | None = None,
                 soft: torch.Tensor | None = None) -> torch.Tensor:
        if self.schema.is_paper and soft is None:
            return aso_target(self.cfg, logp_ref, scores, raters)  # type: ignore[arg-type]
        return aso_target(self.cfg, logp_ref, scores, raters, schema=self.schema, soft=soft)  # type: ignore[arg-type]

    def _on_policy_batch(self, model, inputs: dict[str, Any]) -> dict[str, Any]:
        """Sample rationales with the current policy and rebuild the batch with them teacher-forced."""
        from vqalib.model.inputs import build_batch
        from vqalib.schema.prompts import parse_answer
        from vqalib.train.collator import format_scores, scrub_rationale
        from vqalib.train.grpo import sample_completions

        cfg: ASOConfig = self.cfg  # type: ignore[assignment]
        examples: list[ClipExample] = inputs["examples"]
        prompt_batch = inputs["prompt"]
        roll = sample_completions(self.accelerator.unwrap_model(model), self.processing_class,
                                  {k: v.to(self.args.device) for k, v in prompt_batch.items()},
                                  max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature)
        # the sample may name its own level ("... is good"): scrubbed, so pi is never read after score words
        skw = schema_kw(self.schema)
        rationales = [scrub_rationale(parse_answer(t, **skw).rationale, self.schema) for t in roll["texts"]]
        answers = [format_scores(ex.scores, r or None, self.schema) for ex, r in zip(examples, rationales)]
        built = build_batch(self.processing_class, inputs["videos"], answers, instruction=cfg.instruction or None,
                            **skw)
        batch = {k: v.to(self.args.device) for k, v in built.items()}
        batch["score_positions"] = built.score_positions.to(self.args.device)
        batch["targets"] = inputs["targets"]
        batch["video_ids"] = inputs["video_ids"]
        for key in ("rater_scores", "label_mask", "soft_targets"):
            if key in inputs:
                batch[key] = inputs[key]
        self.record(sampled_rationale_len=float(sum(len(r) for r in rationales) / max(len(rationales), 1)))
        return batch

    def compute_loss(self, model, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch=None):
        from vqalib.method.distributions import level_logprobs_raw, level_token_ids, normalise

        cfg: ASOConfig = self.cfg  # type: ignore[assignment]
        batch = self._on_policy_batch(model, inputs) if cfg.on_policy else inputs
        targets_scores = batch["targets"]
        need_ref_logits = cfg.rationale_loss == "kl" and cfg.rationale_weight
        tok = self.processing_class.tokenizer
        sch = self.schema
        skw = schema_kw(sch)
        level_ids = level_token_ids(tok, **skw)
        # one tree-masked pass gives both the (unnormalised) level log-probs and, when the rationale term
        # needs them, the sequence's teacher-forced logits (no second forward)
        raw_args = (model_inputs(batch), level_ids, batch["score_positions"])
        if cfg.target_position == "keyword":  # the keyword tokens get the soft target; the score lines the rationale term
            smask = keyword_token_mask(batch["labels"], batch["keyword_positions"], tok, schema=sch)
        elif sch.is_paper:
            smask = score_token_mask(batch["labels"], batch["score_positions"])
        else:
            smask = score_token_mask(batch["labels"], batch["score_positions"], level_ids=level_ids)
        want_logits = cfg.rationale_loss != "none" and bool(cfg.rationale_weight)
        if want_logits:
            # logits only at the positions the rationale term reads (not the video / prompt / target tokens)
            rat_pos, rat_valid = answer_logit_positions(batch["labels"], smask)
        if cfg.target_position == "keyword":  # issue 20: the soft target where the model commits to the level
            raw_theta, seq_logits = keyword_logprobs_raw(model, batch, tok, return_logits=rat_pos, schema=sch) \
                if want_logits else (keyword_logprobs_raw(model, batch, tok, schema=sch), None)
        elif want_logits:
            raw_theta, seq_logits = level_logprobs_raw(model, *raw_args, return_logits=rat_pos)
        else:
            raw_theta, seq_logits = level_logprobs_raw(model, *raw_args), None
        # missing labels (label_mask False; no score line, NaN target): out of the loss and of every mean
        lmask = batch.get("label_mask")
        masked = lmask is not None and not bool(lmask.all())
        if masked:
            lmask = lmask.to(raw_theta.device)
            raw_theta = raw_theta.masked_fill(~lmask[..., None], 0.0)
        logp_theta, outside = normalise(raw_theta)
        ref_logits = None
        if need_ref_logits or cfg.on_policy:
            unwrapped = self.accelerator.unwrap_model(model)
            with torch.no_grad(), reference_mode(unwrapped, self.ref_model) as ref:
                if need_ref_logits:
                    ref_logits = ref(**model_inputs(batch), logits_to_keep=rat_pos).logits
                if cfg.on_policy:
                    logp_ref, _ = level_logprobs(ref, batch, tok, schema=sch)
        if not cfg.on_policy:
            missing = [v for v in batch["video_ids"] if v not in self.pi_ref]
            if missing:
                raise KeyError(f"no cached pi_ref for clips {missing[:3]}; delete {pi_ref_file(cfg)} to recompute")
            logp_ref = torch.stack([self.pi_ref[v] for v in batch["video_ids"]]).to(logp_theta.device)
        target = self._targets(logp_ref, targets_scores, batch.get("rater_scores"), batch.get("soft_targets"))
        if masked:
            target = target.nan_to_num(0.0)
            loss_score = score_loss(raw_theta, target, cfg.penalise_outside, mask=lmask)
        else:
            loss_score = score_loss(raw_theta, target, cfg.penalise_outside)
        loss = loss_score
        if cfg.rationale_loss == "ce" and cfg.rationale_weight:
            l_rat = rationale_ce_at(seq_logits, batch["labels"].gather(1, rat_pos + 1), rat_valid)
            loss = loss + cfg.rationale_weight * l_rat
            self.record(loss_rationale=float(l_rat.detach()))
        elif cfg.rationale_loss == "kl" and cfg.rationale_weight:
            l_rat = rationale_kl_at(seq_logits, ref_logits, rat_valid)
            loss = loss + cfg.rationale_weight * l_rat
            self.record(loss_rationale=float(l_rat.detach()))
        with torch.no_grad():
            p_theta = logp_theta.exp()
            if sch.is_paper:
                levels = torch.linspace(1.0, 5.0, 9, device=p_theta.device)
            else:
                levels = torch.as_tensor(sch.values, dtype=p_theta.dtype, device=p_theta.device)
            from vqalib.method.aso import aso_loss, entropy

            def mean(x: torch.Tensor) -> float:  # over the labelled (clip, dimension) pairs
                return float(x[lmask].mean()) if masked else float(x.mean())

            # the two parts of the score term: K-level soft-target CE and the outside-mass penalty; the CE is
            # H(pi*) + KL(pi* || pi_theta), and H(pi*) is fixed by the labels and pi_ref: the floor of the CE
            levels_part = float(aso_loss(logp_theta, target, mask=lmask if masked else None))
            h_target = mean(entropy(target.double()))
            err = (p_theta * levels).sum(-1) - targets_scores.to(p_theta.device)
            self.record(loss_score=float(loss_score), loss_score_levels=levels_part, target_entropy=h_target,
                        kl_to_target=levels_part - h_target,
                        loss_outside=float(loss_score) - levels_part if cfg.penalise_outside else 0.0,
                        outside_mass=mean(outside), mae_expected=mean(err.abs()))
            if masked:  # (clip, dimension) pairs without a label: out of pi*, the loss and the means
                self.record(n_dims_masked=int((~lmask).sum()))
        return (loss, {"logits": seq_logits}) if return_outputs else loss


class OnPolicyCollator:
    """Collator for on-policy ASO: prompt-only batch + the clips' frames, so the trainer can sample
    a rationale and rebuild the teacher-forced batch around it."""

    def __init__(self, processor: Any, cache: FrameCache, augment: bool = False, seed: int = 0, instruction: str = "",
                 with_raters: bool = False, schema: rating.RatingSchema | None = None):
        self.inner = VideoCollator(processor, cache, with_answers=False, augment=False, seed=seed,
                                   instruction=instruction, with_raters=with_raters, schema=schema)
        self.cache = cache

    def __call__(self, examples: Sequence[ClipExample]) -> dict[str, Any]:
        from vqalib.train.collator import NON_MODEL_KEYS

        prompt = self.inner(examples)
        out = {"prompt": {k: v for k, v in prompt.items() if k not in NON_MODEL_KEYS},
               "videos": [self.cache.get(ex.path) for ex in examples], "examples": list(examples),
               "targets": prompt["targets"], "video_ids": prompt["video_ids"]}
        for key in ("rater_scores", "label_mask", "soft_targets"):
            if key in prompt:
                out[key] = prompt[key]
        return out


def cached_pi_ref_health(cfg: ASOConfig, examples: Sequence[ClipExample], pi_ref: dict[str, torch.Tensor],
                         outside: dict[str, torch.Tensor] | None = None,
                         schema: rating.RatingSchema | None = None) -> dict[str, Any]:
    """:func:`vqalib.method.aso.pi_ref_health` of a cached pi_ref over ``examples`` under the config's lambda and
    beta (issue 20): off-level mass (``outside``; NaN for a cache written before it was kept), entropy,
    pi_ref(s*) quantiles, and how far lambda and beta move it (KL(pi*||pi_ref), argmax flips, mean change
    of the expected score). ``schema``: its dimensions and levels; the (clip, dimension) pairs without a label
    (NaN targets) are left out of every number and counted (``n_unlabelled``)."""
    from vqalib.method.aso import pi_ref_health

    sch = rating.resolve(schema)
    lp = torch.stack([pi_ref[ex.video_id] for ex in examples])
    off = torch.stack([outside[ex.video_id] for ex in examples]) if outside else None
    targets = torch.tensor([ex.targets(sch) for ex in examples], dtype=torch.float64)
    return pi_ref_health(lp, targets, cfg.lam, cfg.beta, outside=off, **schema_kw(sch))


def check_pi_ref_health(cfg: ASOConfig, health: dict[str, Any], announce: bool = True,
                        schema: rating.RatingSchema | None = None) -> list[str]:
    """Print the health report (``announce``) and act on its problems (:func:`vqalib.method.aso.pi_ref_health_problems`)
    as ``cfg.pi_ref_health`` says: ``warn`` (a ``UserWarning`` per problem), ``refuse`` (``ValueError`` with
    the fixes) or ``off``. Returns the problems."""
    import warnings

    from vqalib.method.aso import HealthThresholds, format_health, pi_ref_health_problems

    if cfg.pi_ref_health == "off":
        return []
    if announce:
        print(format_health(health, **schema_kw(schema)), flush=True)
    problems = pi_ref_health_problems(health, HealthThresholds(), **schema_kw(schema))
    if problems and cfg.pi_ref_health == "refuse":
        raise ValueError("the cached pi_ref is unfit for ASO (pi_ref_health: refuse; set it to warn to train anyway):\n- "
                         + "\n- ".join(problems))
    for p in problems:
        warnings.warn(p, UserWarning, stacklevel=2)
    return problems


def pi_ref_file(cfg: ASOConfig) -> Path:
    """Where the cached pi_ref of ``cfg`` lives: ``pi_ref_path`` when set (several seeds of one SFT
    checkpoint share one file: its key, :func:`pi_ref_key`, leaves the training seed out), else
    ``<output_dir>/pi_ref.pt``."""
    return resolve_path(cfg.pi_ref_path) if cfg.pi_ref_path else resolve_path(cfg.output_dir) / "pi_ref.pt"


def refuse_revealing_rationales(cfg: ASOConfig, examples: Sequence[ClipExample],
                                schema: rating.RatingSchema | None = None) -> None:
    """Raise ``ValueError`` when pi_ref would be read at the score positions after teacher-forced rationales that
    name the score (:func:`revealing_answers`): the answer would be given away."""
    leaks = revealing_answers(examples, cfg.rationale, schema) if cfg.target_position == "score" else []
    if leaks:
        vid, words = leaks[0]
        raise ValueError(f"rationale={cfg.rationale!r}: {len(leaks)} of {len(examples)} teacher-forced rationales "
                         f"name the score (e.g. clip {vid!r}: {words[:3]}), so pi_ref would be read after the "
                         f"answer is given away; use rationale=scrubbed, short or none")


def load_pi_ref(path: Path, key: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None] | None:
    """``(pi_ref, outside)`` from the cache file ``path`` when it holds ``key`` (:func:`pi_ref_key`), else None."""
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        if saved.get("key") == key:
            return saved["pi_ref"], saved.get("outside")
    return None


def compute_pi_ref(cfg: ASOConfig, model: Any, processor: Any, examples: Sequence[ClipExample], cache: FrameCache,
                   key: str, path: Path, progress: bool = True, schema: rating.RatingSchema | None = None):
    """:func:`precompute_pi_ref` on this process's device, then the main process writes ``{key, pi_ref, outside,
    health}`` to ``path`` (through a temporary file). Returns ``(pi_ref, outside)``."""
    from vqalib.core.distributed import is_main_process, process_device
    from vqalib.train.common import resolve_device

    device = process_device(resolve_device(cfg.device))
    model.to(device)
    pi, outside = precompute_pi_ref(model, processor, examples, cache, cfg.rationale, device=device,
                                    progress=progress, instruction=cfg.instruction, with_outside=True,
                                    target_position=cfg.target_position, schema=schema)
    health = cached_pi_ref_health(cfg, examples, pi, outside, schema)
    if is_main_process():  # every rank holds the gathered pi_ref; one writes it
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save({"key": key, "pi_ref": pi, "outside": outside, "health": health}, tmp)
        tmp.replace(path)
    return pi, outside


def prepare_aso(cfg: ASOConfig, model: Any, processor: Any, examples: Sequence[ClipExample], cache: FrameCache,
                progress: bool = True) -> dict[str, Any]:
    """The extra keyword arguments of :class:`ASOTrainer` (``run_stage``'s ``prepare``): the reference model when
    the rationale or on-policy training needs one, and, teacher-forced, the cached pi_ref (loaded when the cache
    holds this config's key, else computed and saved), checked by :func:`check_pi_ref_health`."""
    from vqalib.core.distributed import is_main_process

    schema = getattr(examples, "schema", None)  # the dataset's (collator.Examples); None: the paper's
    k = rating.resolve(schema).n_levels
    if not 0 <= cfg.eps < 1 / k:  # the config check knows the paper's 9 levels only
        raise ValueError(f"eps={cfg.eps}: the floor under pi_ref must satisfy 0 <= eps < 1/K = 1/{k} for the "
                         f"{rating.resolve(schema).name!r} rating schema's {k} levels")
    extra: dict[str, Any] = {}
    if cfg.on_policy or cfg.rationale_loss == "kl":
        extra["ref_model"] = make_reference(model)
    if cfg.on_policy:
        return extra
    refuse_revealing_rationales(cfg, examples, schema)
    key, path = pi_ref_key(cfg, examples, schema), pi_ref_file(cfg)
    cached = load_pi_ref(path, key)
    pi, outside = cached if cached is not None else compute_pi_ref(cfg, model, processor, examples, cache, key, path,
                                                                   progress, schema=schema)
    extra["pi_ref"] = pi
    check_pi_ref_health(cfg, cached_pi_ref_health(cfg, examples, pi, outside, schema),
                        announce=progress and is_main_process(), schema=schema)
    return extra


def aso_collator(cfg: ASOConfig, processor: Any, cache: FrameCache, schema: rating.RatingSchema | None = None):
    """The stage's collator (``run_stage``'s ``collator_factory``): :class:`OnPolicyCollator` (prompts only) or a
    teacher-forced :class:`VideoCollator` with answers (keyword positions marked when pi* sits there), both
    under the stage's rating ``schema``."""
    raters = cfg.reward == "multi_rater"
    if cfg.on_policy:
        return OnPolicyCollator(processor, cache, seed=cfg.seed, instruction=cfg.instruction, with_raters=raters,
                                schema=schema)
    return VideoCollator(processor, cache, with_answers=True, augment=cfg.augment, rationale=cfg.rationale,
                         seed=cfg.seed, instruction=cfg.instruction, with_raters=raters,
                         keywords=cfg.target_position == "keyword", schema=schema)


def train_aso(cfg: ASOConfig, progress: bool = True, on_step=None) -> TrainResult:
    """Run Stage III from a config (the CLI and notebook 06 both call this). Starts from ``init_from``;
    setup in :func:`prepare_aso` (reference model, cached pi_ref) and :func:`aso_collator`."""
    return run_stage(cfg, ASOTrainer, with_answers=True, progress=progress, on_step=on_step,
                     prepare=partial(prepare_aso, cfg, progress=progress), collator_factory=partial(aso_collator, cfg))
