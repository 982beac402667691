"""Stage III (the method): Analytic Score Optimization.

For every training clip and dimension d, with the SFT model as reference:

    pi_ref(s | x)   the SFT model's distribution over the 9 levels at d's score position
                    (``vqalib.scoring.level_logprobs``), PRECOMPUTED ONCE over the training set and
                    cached (``<output_dir>/pi_ref.pt``), so no reference model is held in memory;
    pi*(s | x)      = pi_ref(s|x) exp(R(s, s*)/lambda) / Z(x),  R = -beta |s - s*|   (vqalib.aso, A3)
    L_score         = - mean_{clips, dims} sum_s pi*(s) log pi_theta(s | x)          (A6; grad = pi_theta - pi*)
    L               = L_score + w * L_rationale

``rationale_loss``: ``ce`` - cross-entropy on the reference answer's other tokens (rationale and
the "Motion Quality:" scaffolding; the score tokens are left to L_score); ``kl`` - KL(pi_theta || pi_ref)
on those tokens (needs the reference policy: LoRA adapter disabled, or a frozen copy under full
fine-tuning); ``none``.

On-policy variant (``on_policy: true``): the rationale is sampled from the current policy (video
passed, vision tokens suppressed), the score lines are appended with the ground-truth levels as
teacher-forced prefixes, and both pi_theta and pi_ref are read at the score positions *after the
sampled rationale*. pi_ref then depends on the sample, so it cannot be precomputed: the reference
policy is kept (adapter disabled under LoRA, a frozen copy under full fine-tuning).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from vqalib.levels import DIMENSION_KEYS
from vqalib.runs import resolve_path
from vqalib.train.base import VQATrainer, make_reference, reference_mode, run_stage
from vqalib.train.collator import ClipExample, FrameCache, VideoCollator, model_inputs
from vqalib.train.common import ASOConfig, TrainResult, read_manifest


def level_logprobs(model: Any, batch: dict[str, Any], tokenizer: Any, return_logits: bool = False):
    """log pi over the 9 levels at each dimension's score position: ([B, 5, 9], outside mass [B, 5]).

    Thin wrapper over :func:`vqalib.scoring.level_logprobs` (one tree-masked pass) taking a collated batch;
    ``return_logits=True`` adds the sequence's teacher-forced logits [B, L, V] from the same pass."""
    from vqalib.scoring import level_logprobs as _llp
    from vqalib.scoring import level_token_ids

    return _llp(model, model_inputs(batch), level_token_ids(tokenizer), batch["score_positions"],
                return_logits=return_logits)


def score_token_mask(labels: torch.Tensor, score_positions: torch.Tensor, n_tokens: int = 3) -> torch.Tensor:
    """True on the label positions that are score-level tokens (``"3"``, ``"."``, ``"5"``: ``n_tokens``
    tokens from each dimension's first digit); those are trained by the soft-target term instead."""
    mask = torch.zeros_like(labels, dtype=torch.bool)
    for b in range(labels.shape[0]):
        for p in score_positions[b].tolist():
            if p >= 0:
                mask[b, p:p + n_tokens] = True
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


def pi_ref_key(cfg: ASOConfig, video_ids: Sequence[str]) -> str:
    """Cache key of the precomputed pi_ref: the reference checkpoint, its manifest time, answers, sampling."""
    ref = resolve_path(cfg.init_from) if cfg.init_from else cfg.model
    man = read_manifest(ref) if cfg.init_from else {}
    blob = json.dumps({"ref": str(ref), "written_at": man.get("written_at"), "rationale": cfg.rationale,
                       "instruction": cfg.instruction,
                       "fps": cfg.fps, "frames": cfg.max_frames, "pixels": cfg.max_pixels,
                       "ids": hashlib.sha1("|".join(video_ids).encode()).hexdigest()}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


@torch.no_grad()
def precompute_pi_ref(model: Any, processor: Any, examples: Sequence[ClipExample], cache: FrameCache,
                      rationale: str = "short", batch_size: int = 32, device: str = "cpu",
                      progress: bool = True, instruction: str = "") -> dict[str, torch.Tensor]:
    """pi_ref (log-probs [5, 9]) of each clip under ``model`` with the reference answer teacher-forced.

    Runs once before training (no augmentation). A clip whose answer has no score position raises.
    Under several processes each rank scores its shard (``examples[rank::world]``,
    :func:`vqalib.train.distributed.shard`) and the shards are gathered, so every rank returns the
    whole mapping for 1/world of the work (the caller writes it once, on the main process)."""
    from tqdm.auto import tqdm

    from vqalib.train.distributed import gather_dict, is_main_process, num_processes, process_index, shard

    collator = VideoCollator(processor, cache, with_answers=True, augment=False, rationale=rationale,
                             instruction=instruction)
    was = model.training
    model.eval()
    out: dict[str, torch.Tensor] = {}
    try:
        mine = shard(examples)
        if num_processes() > 1:
            print(f"pi_ref: rank {process_index()} of {num_processes()} scores {len(mine)} of {len(examples)} clips",
                  flush=True)
        for i in tqdm(range(0, len(mine), batch_size), desc="pi_ref (SFT model)", disable=not (progress and is_main_process())):
            batch = collator(mine[i:i + batch_size])
            bad = (batch["score_positions"] < 0).any(1)
            if bad.any():
                vid = batch["video_ids"][int(bad.nonzero()[0])]
                raise ValueError(f"clip {vid!r}: its reference answer has no score position; check prompts.format_answer")
            batch = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
            logp, _ = level_logprobs(model, batch, processor.tokenizer)
            for vid, lp in zip(batch["video_ids"], logp.float().cpu()):
                out[vid] = lp
    finally:
        model.train(was)
    return gather_dict(out)


class ASOTrainer(VQATrainer):
    """ASO: soft-target cross-entropy against pi* on the score positions + a rationale term."""

    def __init__(self, *args: Any, pi_ref: dict[str, torch.Tensor] | None = None,
                 ref_model: torch.nn.Module | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.pi_ref = pi_ref
        self.ref_model = ref_model
        if ref_model is not None:
            ref_model.to(self.args.device)

    def _targets(self, logp_ref: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        from vqalib.aso import optimal_policy, reward_abs

        cfg: ASOConfig = self.cfg  # type: ignore[assignment]
        R = reward_abs(scores.double(), beta=cfg.beta)
        return optimal_policy(logp_ref.double(), R, cfg.lam).float()

    def _on_policy_batch(self, model, inputs: dict[str, Any]) -> dict[str, Any]:
        """Sample rationales with the current policy and rebuild the batch with them teacher-forced."""
        from vqalib.inputs import build_batch
        from vqalib.prompts import format_answer, parse_answer
        from vqalib.train.grpo import sample_completions

        cfg: ASOConfig = self.cfg  # type: ignore[assignment]
        examples: list[ClipExample] = inputs["examples"]
        prompt_batch = inputs["prompt"]
        roll = sample_completions(self.accelerator.unwrap_model(model), self.processing_class,
                                  {k: v.to(self.args.device) for k, v in prompt_batch.items()},
                                  max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature)
        rationales = [parse_answer(t).rationale for t in roll["texts"]]
        answers = [format_answer(ex.scores, r or None) for ex, r in zip(examples, rationales)]
        built = build_batch(self.processing_class, inputs["videos"], answers, instruction=cfg.instruction or None)
        batch = {k: v.to(self.args.device) for k, v in built.items()}
        batch["score_positions"] = built.score_positions.to(self.args.device)
        batch["targets"] = inputs["targets"]
        batch["video_ids"] = inputs["video_ids"]
        self.record(sampled_rationale_len=float(sum(len(r) for r in rationales) / max(len(rationales), 1)))
        return batch

    def compute_loss(self, model, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch=None):
        from vqalib.aso import aso_loss

        cfg: ASOConfig = self.cfg  # type: ignore[assignment]
        batch = self._on_policy_batch(model, inputs) if cfg.on_policy else inputs
        targets_scores = batch["targets"]
        need_ref_logits = cfg.rationale_loss == "kl"
        tok = self.processing_class.tokenizer
        # one tree-masked pass gives both the level distributions and, when the rationale term needs
        # them, the sequence's teacher-forced logits (no second forward)
        if cfg.rationale_loss != "none" and cfg.rationale_weight:
            logp_theta, outside, seq_logits = level_logprobs(model, batch, tok, return_logits=True)
        else:
            (logp_theta, outside), seq_logits = level_logprobs(model, batch, tok), None
        ref_logits = None
        if need_ref_logits or cfg.on_policy:
            unwrapped = self.accelerator.unwrap_model(model)
            with torch.no_grad(), reference_mode(unwrapped, self.ref_model) as ref:
                if need_ref_logits:
                    ref_logits = ref(**model_inputs(batch)).logits
                if cfg.on_policy:
                    logp_ref, _ = level_logprobs(ref, batch, tok)
        if not cfg.on_policy:
            missing = [v for v in batch["video_ids"] if v not in self.pi_ref]
            if missing:
                raise KeyError(f"no cached pi_ref for clips {missing[:3]}; delete pi_ref.pt in {cfg.output_dir} to recompute")
            logp_ref = torch.stack([self.pi_ref[v] for v in batch["video_ids"]]).to(logp_theta.device)
        target = self._targets(logp_ref, targets_scores)
        loss_score = aso_loss(logp_theta, target)
        loss = loss_score
        smask = score_token_mask(batch["labels"], batch["score_positions"])
        if cfg.rationale_loss == "ce" and cfg.rationale_weight:
            l_rat = rationale_ce(seq_logits, batch["labels"], smask)
            loss = loss + cfg.rationale_weight * l_rat
            self.record(loss_rationale=float(l_rat.detach()))
        elif cfg.rationale_loss == "kl" and cfg.rationale_weight:
            l_rat = rationale_kl(seq_logits, ref_logits, batch["labels"], smask)
            loss = loss + cfg.rationale_weight * l_rat
            self.record(loss_rationale=float(l_rat.detach()))
        with torch.no_grad():
            p_theta = logp_theta.exp()
            levels = torch.linspace(1.0, 5.0, 9, device=p_theta.device)
            self.record(loss_score=float(loss_score), outside_mass=float(outside.mean()),
                        mae_expected=float(((p_theta * levels).sum(-1) - targets_scores).abs().mean()))
        return (loss, {"logits": seq_logits}) if return_outputs else loss


class OnPolicyCollator:
    """Collator for on-policy ASO: prompt-only batch + the clips' frames, so the trainer can sample
    a rationale and rebuild the teacher-forced batch around it."""

    def __init__(self, processor: Any, cache: FrameCache, augment: bool = False, seed: int = 0, instruction: str = ""):
        self.inner = VideoCollator(processor, cache, with_answers=False, augment=False, seed=seed,
                                   instruction=instruction)
        self.cache = cache

    def __call__(self, examples: Sequence[ClipExample]) -> dict[str, Any]:
        prompt = self.inner(examples)
        return {"prompt": {k: v for k, v in prompt.items() if k not in ("targets", "video_ids", "score_positions")},
                "videos": [self.cache.get(ex.path) for ex in examples], "examples": list(examples),
                "targets": prompt["targets"], "video_ids": prompt["video_ids"]}


def train_aso(cfg: ASOConfig, progress: bool = True, on_step=None) -> TrainResult:
    """Run Stage III from a config (the CLI and notebook 06 both call this). Starts from ``init_from``."""
    from vqalib.train.common import resolve_device
    from vqalib.train.distributed import is_main_process, process_device

    def prepare(model, processor, examples, cache):
        extra: dict[str, Any] = {}
        if cfg.on_policy or cfg.rationale_loss == "kl":
            extra["ref_model"] = make_reference(model)
        if not cfg.on_policy:
            out = resolve_path(cfg.output_dir)
            key = pi_ref_key(cfg, [e.video_id for e in examples])
            path = out / "pi_ref.pt"
            if path.is_file():
                saved = torch.load(path, weights_only=True)
                if saved.get("key") == key:
                    extra["pi_ref"] = saved["pi_ref"]
            if "pi_ref" not in extra:
                device = process_device(resolve_device(cfg.device))
                model.to(device)
                pi = precompute_pi_ref(model, processor, examples, cache, cfg.rationale, device=device,
                                       progress=progress, instruction=cfg.instruction)
                if is_main_process():  # every rank holds the gathered pi_ref; one writes it
                    out.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_name(path.name + ".tmp")
                    torch.save({"key": key, "pi_ref": pi}, tmp)
                    tmp.replace(path)
                extra["pi_ref"] = pi
        return extra

    collator_factory = None
    if cfg.on_policy:
        def collator_factory(processor, cache):  # noqa: E306
            return OnPolicyCollator(processor, cache, seed=cfg.seed, instruction=cfg.instruction)

    return run_stage(cfg, ASOTrainer, with_answers=True, progress=progress, on_step=on_step, prepare=prepare,
                     collator_factory=collator_factory)
