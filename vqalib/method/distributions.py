"""Exact score distributions over the 9 levels, sharing the prefix across the candidates.

For a dimension whose score starts at token position ``p`` of a teacher-forced answer, the
prefix ``x`` is everything before ``p`` (video, prompt, rationale, earlier score lines and
``"Clarity Quality: "``). A level ``s`` is a string of several tokens (``3``, ``.``, ``5``), so

    log pi(s | x) = sum_k log p(s_k | x, s_<k)          (sum of the level's token log-probs)
    pi_9(s | x)   = pi(s | x) / sum_s' pi(s' | x)        (renormalised over the 9 levels)
    outside(x)    = 1 - sum_s pi(s | x)                  (mass on any other continuation)

The 9 levels share their token prefixes (``3`` is the first token of ``3.0`` and ``3.5``), so the
contexts needed are the nodes of a trie: the root (next token after ``x``), ``3``, ``3.`` ...
(10 nodes for Qwen's digit tokens). Instead of nine full passes per dimension,
:func:`level_logprobs` runs **one** forward pass per batch: the teacher-forced sequence followed,
for each of the five dimensions, by a small block of tree tokens (a copy of the last prefix token
and the trie nodes) with a 4-D attention mask that lets each tree token see only the sequence
before its dimension's score position and its own trie ancestors, and with the positions
(M-RoPE: all three axes) that the token would have in a plain pass. Causal attention makes the
prefix's keys/values identical to those of a pass over the prefix alone, so the result equals
nine independent teacher-forced passes (tested to 1e-5 in float32). The copy of the last prefix
token sees exactly the keys the original sees (the original's key is its own), so all needed
logits sit in the last ``5 * (1 + nodes)`` positions and ``logits_to_keep`` avoids the full
vocabulary projection of the whole sequence.

**Bare integers.** The parser reads ``Motion Quality: 3`` as 3.0 (:mod:`vqalib.schema.prompts`). With
``continue_ids=number_continuation_ids(tokenizer)`` the distribution counts that form too:
``pi(X.0 | x) = p(X) [p(. | X) p(0 | X.) + 1 - sum_{t in 0-9, .} p(t | X)]``, i.e. the first digit
followed by anything that does not continue the number, read from the same pass (the context
``X`` is a trie node already). Prediction uses it, so a model that writes ``3`` gets the same 3.0 from
the parser and from the distribution; training targets (ASO) keep the strict level strings
(``continue_ids=None``, the default).

The pass is differentiable (the ASO trainer backpropagates through it). It needs an attention
implementation that takes a 4-D mask: ``sdpa`` or ``eager`` (not ``flash_attention_2``) in the
language model; the vision tower may use any (``vqalib.model.loading.attention_implementation``).

The readouts of these distributions (expected score, argmax level) are :mod:`vqalib.method.readout`'s:
``expected_score_np(logp.exp())``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from vqalib.schema.levels import DIMENSION_KEYS, LEVEL_STRINGS

N_DIMS = len(DIMENSION_KEYS)


def level_token_ids(tokenizer) -> list[tuple[int, ...]]:
    """Token ids of each of the 9 level strings, as they are tokenised after ``": "``.

    Checks that each level tokenises the same standalone and inside a score line (true for
    tokenizers that split digits, like Qwen's); raises naming the level otherwise.
    """
    out = []
    for s in LEVEL_STRINGS:
        alone = tuple(tokenizer.encode(s, add_special_tokens=False))
        ctx = tokenizer.encode(f"Motion Quality: {s}\n", add_special_tokens=False)
        pre = tokenizer.encode("Motion Quality: ", add_special_tokens=False)
        inside = tuple(ctx[len(pre): len(pre) + len(alone)])
        if ctx[: len(pre)] != pre or inside != alone:
            raise ValueError(f"level {s!r} tokenises as {alone} alone but differently inside a score line; "
                             "the tokenizer must split digits (Qwen-style) for exact level scoring")
        out.append(alone)
    return out


def number_continuation_ids(tokenizer) -> tuple[int, ...]:
    """Ids of the tokens that continue a number after a digit: ``"0"``-``"9"`` and ``"."``.

    Each must be one token (true for digit-splitting tokenizers such as Qwen's, which exact level
    scoring needs anyway); raises naming the character otherwise."""
    out = []
    for ch in "0123456789.":
        ids = tokenizer.encode(ch, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"{ch!r} is {len(ids)} tokens; bare-integer scoring needs one token per digit and '.'")
        out.append(ids[0])
    return tuple(out)


def _add_integer_form(raw: torch.Tensor, logp_tok: torch.Tensor, trie: "LevelTrie", level_ids, continue_ids) -> torch.Tensor:
    """``raw`` [B, 5, 9] with the bare-integer form of each ``X.0`` level added (module docstring):
    ``log(exp(raw) + p(X) (1 - sum_{t in continue_ids} p(t | X)))``. ``logp_tok`` [B, 5, blocks, V]."""
    cont = torch.as_tensor(list(continue_ids), device=logp_tok.device)
    out = raw.clone()
    for s, (text, seq) in enumerate(zip(LEVEL_STRINGS, level_ids)):
        if not text.endswith(".0") or len(seq) < 2:
            continue
        node = trie.steps[s][1][0]  # context of the level's second token: the trie node of its first digit
        p_cont = logp_tok[:, :, node + 1, cont].exp().sum(-1)
        log_end = torch.log1p(-p_cont.clamp(max=1.0 - 1e-12))
        out[..., s] = torch.logaddexp(raw[..., s], logp_tok[:, :, 0, seq[0]] + log_end)
    return out


@dataclass(frozen=True)
class LevelTrie:
    """The proper prefixes of the level token sequences, as trie nodes.

    ``node_tokens[n]`` is the last token of node ``n``'s path, ``node_parent[n]`` its parent (-1 =
    root), ``node_depth[n]`` the path length; ``steps[s]`` lists, for level ``s``, the pairs
    ``(context node, next token)`` whose log-probs sum to ``log pi(s | x)`` (context -1 = root).
    """

    node_tokens: tuple[int, ...]
    node_parent: tuple[int, ...]
    node_depth: tuple[int, ...]
    steps: tuple[tuple[tuple[int, int], ...], ...]

    @classmethod
    def build(cls, level_ids: Sequence[Sequence[int]]) -> "LevelTrie":
        index: dict[tuple[int, ...], int] = {}
        tokens, parents, depths = [], [], []
        for seq in level_ids:
            for k in range(1, len(seq)):
                path = tuple(seq[:k])
                if path not in index:
                    index[path] = len(tokens)
                    tokens.append(path[-1])
                    parents.append(index.get(path[:-1], -1))
                    depths.append(k)
        steps = tuple(tuple((index.get(tuple(seq[:k]), -1), seq[k]) for k in range(len(seq))) for seq in level_ids)
        return cls(tuple(tokens), tuple(parents), tuple(depths), steps)

    @property
    def n_nodes(self) -> int:
        return len(self.node_tokens)

    def ancestors(self, n: int) -> list[int]:
        """Nodes on the path from the root to ``n`` (inclusive), root excluded."""
        out = []
        while n >= 0:
            out.append(n)
            n = self.node_parent[n]
        return out[::-1]


def _unwrap(model):
    """The transformers model under DDP / peft wrappers."""
    m = model
    while hasattr(m, "module") and isinstance(m.module, torch.nn.Module):
        m = m.module
    return m.get_base_model() if hasattr(m, "get_base_model") else m


def position_ids(model, batch) -> torch.Tensor:
    """The position ids the model uses for ``batch``: M-RoPE ``[3, B, L]`` for Qwen2-VL-family
    models (from the model's own ``get_rope_index``), else 1-D ``[B, L]`` from the mask."""
    base = _unwrap(model)
    owner = next((m for m in (getattr(base, "model", None), base) if hasattr(m, "get_rope_index")), None)
    if owner is not None:
        pos, _ = owner.get_rope_index(
            batch["input_ids"], mm_token_type_ids=batch["mm_token_type_ids"],
            video_grid_thw=batch.get("video_grid_thw"), second_per_grid_ts=batch.get("second_per_grid_ts"),
            attention_mask=batch["attention_mask"])
        return pos
    am = batch["attention_mask"].long()
    return (am.cumsum(-1) - 1).clamp(min=0)


def _tree_inputs(batch, positions: torch.Tensor, score_positions: torch.Tensor, trie: LevelTrie, dtype):
    """Token ids, positions, mm types and the additive 4-D mask of the sequence + tree blocks."""
    ids, am = batch["input_ids"], batch["attention_mask"].bool()
    B, L = ids.shape
    dev = ids.device
    blk = 1 + trie.n_nodes
    E = N_DIMS * blk
    T = L + E
    allow = torch.zeros(B, T, T, dtype=torch.bool, device=dev)
    causal = torch.tril(torch.ones(L, L, dtype=torch.bool, device=dev))
    allow[:, :L, :L] = causal[None] & am[:, None, :]
    idx = torch.arange(T, device=dev)
    allow[:, idx, idx] = True  # every token sees itself (keeps padded rows finite)
    ext_ids = torch.full((B, E), 0, dtype=ids.dtype, device=dev)
    node_tok = torch.tensor(trie.node_tokens, dtype=ids.dtype, device=dev)
    node_depth = torch.tensor(trie.node_depth, dtype=positions.dtype, device=dev)
    three_d = positions.ndim == 3
    ext_pos = torch.zeros(*(positions.shape[:-1]), E, dtype=positions.dtype, device=dev)
    ar = torch.arange(L, device=dev)
    inner = torch.zeros(blk, blk, dtype=torch.bool, device=dev)  # tree token -> its trie ancestors
    for n in range(trie.n_nodes):
        for a in trie.ancestors(n):
            inner[1 + n, 1 + a] = True
    inner |= torch.eye(blk, dtype=torch.bool, device=dev)
    for d in range(N_DIMS):
        base = L + d * blk
        for b in range(B):
            p = int(score_positions[b, d])
            if p <= 0:
                continue
            seen = am[b] & (ar < p)
            ext_ids[b, d * blk] = ids[b, p - 1]
            ext_ids[b, d * blk + 1: (d + 1) * blk] = node_tok
            allow[b, base, :L] = seen & (ar < p - 1)
            allow[b, base + 1: base + blk, :L] = seen[None, :]
            allow[b, base: base + blk, base: base + blk] = inner
            if three_d:
                last = positions[:, b, p - 1]
                ext_pos[:, b, d * blk] = last
                ext_pos[:, b, d * blk + 1: (d + 1) * blk] = last[:, None] + node_depth[None, :]
            else:
                last = positions[b, p - 1]
                ext_pos[b, d * blk] = last
                ext_pos[b, d * blk + 1: (d + 1) * blk] = last + node_depth
    mask = torch.zeros(B, 1, T, T, dtype=dtype, device=dev)
    mask.masked_fill_(~allow[:, None], torch.finfo(dtype).min)
    all_ids = torch.cat([ids, ext_ids], dim=1)
    all_pos = torch.cat([positions, ext_pos], dim=-1)
    mm = torch.cat([batch["mm_token_type_ids"], torch.zeros(B, E, dtype=batch["mm_token_type_ids"].dtype, device=dev)], 1)
    return all_ids, all_pos, mm, mask, E


def _levels_and_positions(batch, level_ids, score_positions) -> tuple[list[tuple[int, ...]], torch.Tensor]:
    """Level token ids and score positions: explicit arguments, else the batch's attributes
    (:class:`vqalib.model.inputs.Batch`), else its ``"level_ids"`` / ``"score_positions"`` keys."""
    if level_ids is None:
        level_ids = getattr(batch, "level_ids", None) or batch.get("level_ids")
    if level_ids is None:
        raise ValueError("no level token ids: pass level_ids=vqalib.method.distributions.level_token_ids(processor.tokenizer) "
                         "(a plain dict batch does not carry them)")
    sp = score_positions
    if sp is None:
        sp = getattr(batch, "score_positions", None)
    if sp is None:
        sp = batch.get("score_positions")
    if sp is None:
        raise ValueError("no score positions: build the batch with answers (vqalib.model.inputs.build_batch) or pass "
                         "score_positions [B, 5] (token index of each dimension's first score token)")
    return [tuple(int(t) for t in s) for s in level_ids], torch.as_tensor(sp).to(batch["input_ids"].device)


def _model_dtype(model) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def level_logprobs_raw(model, batch, level_ids: Sequence[Sequence[int]] | None = None,
                       score_positions: torch.Tensor | None = None, return_logits: bool = False,
                       continue_ids: Sequence[int] | None = None):
    """Unnormalised ``log pi(s | x)`` [B, 5, 9] in one tree-masked pass (NaN where no position).

    ``score_positions`` [B, 5] default to ``batch.score_positions`` (from :func:`vqalib.model.inputs.build_batch`);
    ``level_ids`` default to ``batch.level_ids``. With ``return_logits=True`` also returns the
    teacher-forced logits of the sequence itself [B, L, V] from the same pass (the sequence's
    tokens attend causally, exactly as in a plain forward), for a loss on the other answer tokens;
    ``return_logits`` a ``[B, K]`` integer tensor of sequence positions returns only those logits
    [B, K, V] (``vqalib.train.token_logits.answer_logit_positions``), so the vocabulary projection
    skips the video and prompt positions.
    ``continue_ids`` (:func:`number_continuation_ids`) adds the bare-integer form of the ``X.0``
    levels (module docstring); ``None`` scores the strict level strings only.
    """
    level_ids, sp = _levels_and_positions(batch, level_ids, score_positions)
    cfg = _unwrap(model).config  # the language model reads the tree mask: its sub-config decides (issue 19)
    attns = [getattr(c, "_attn_implementation", "sdpa") or "sdpa" for c in (cfg, getattr(cfg, "text_config", None)) if c is not None]
    attn = next((a for a in attns if a not in ("sdpa", "eager")), "sdpa")
    if attn not in ("sdpa", "eager"):
        raise ValueError(f"level_logprobs needs attn_implementation 'sdpa' or 'eager' (a 4-D tree mask); the model "
                         f"uses {attn!r}. Reload with load_model_and_processor(..., attn_implementation='sdpa').")
    trie = LevelTrie.build(level_ids)
    dtype = _model_dtype(model)
    pos = position_ids(model, batch)
    ids, pos_all, mm, mask, E = _tree_inputs(batch, pos, sp, trie, dtype)
    L = batch["input_ids"].shape[1]
    seq_pos = return_logits if torch.is_tensor(return_logits) else None
    if seq_pos is not None:  # the asked sequence positions, then the E tree positions, per row
        seq_pos = seq_pos.to(device=ids.device, dtype=torch.long)
        keep = torch.cat([seq_pos, torch.arange(L, L + E, device=ids.device).expand(ids.shape[0], E)], 1)
    else:
        keep = 0 if return_logits else E
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos_all, mm_token_type_ids=mm,
                pixel_values_videos=batch["pixel_values_videos"], video_grid_thw=batch["video_grid_thw"],
                second_per_grid_ts=batch.get("second_per_grid_ts"), logits_to_keep=keep,
                use_cache=False)
    logp_tok = torch.log_softmax(out.logits[:, -E:].float(), dim=-1)  # [B, E, V]
    blk = 1 + trie.n_nodes
    B = ids.shape[0]
    logp_tok = logp_tok.view(B, N_DIMS, blk, -1)
    cols = []
    for steps in trie.steps:
        total = 0
        for ctx, tok in steps:
            total = total + logp_tok[:, :, ctx + 1, tok]  # block slot 0 = root copy, n + 1 = node n
        cols.append(total)
    raw = torch.stack(cols, dim=-1)  # [B, 5, 9]
    if continue_ids is not None:
        raw = _add_integer_form(raw, logp_tok, trie, level_ids, continue_ids)
    missing = (sp <= 0)[:, :, None].expand_as(raw)
    raw = raw.masked_fill(missing, float("nan"))
    if seq_pos is not None:
        return raw, out.logits[:, :seq_pos.shape[1]]
    return (raw, out.logits[:, :L]) if return_logits else raw


def normalise(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log pi_9, outside_mass)`` from unnormalised level log-probs ``raw`` [..., 9]."""
    lse = torch.logsumexp(raw, dim=-1, keepdim=True)
    outside = (1.0 - lse.squeeze(-1).exp()).clamp(min=0.0)
    return raw - lse, outside


def level_logprobs(model, batch, level_ids: Sequence[Sequence[int]] | None = None,
                   score_positions: torch.Tensor | None = None, return_logits: bool = False,
                   continue_ids: Sequence[int] | None = None):
    """``(logp [B, 5, 9], outside_mass [B, 5])``: log pi over the 9 levels, renormalised, and the
    probability mass outside them, per clip and dimension (NaN where the dimension has no score
    position). Differentiable when grad is enabled; see the module docstring for the method.
    ``return_logits=True`` appends the sequence's own teacher-forced logits [B, L, V] from the
    same pass: ``(logp, outside, logits)`` (ASO's rationale term needs no second forward).
    ``continue_ids``: see :func:`level_logprobs_raw`."""
    if torch.is_tensor(return_logits) or return_logits:
        raw, logits = level_logprobs_raw(model, batch, level_ids, score_positions, return_logits=True,
                                         continue_ids=continue_ids)
        return (*normalise(raw), logits)
    return normalise(level_logprobs_raw(model, batch, level_ids, score_positions, continue_ids=continue_ids))


# --------------------------------------------------------------------------- reference: plain passes


def example_inputs(batch, b: int) -> dict[str, torch.Tensor]:
    """The unpadded single-clip inputs of example ``b`` of a batch (for reference passes)."""
    keep = batch["attention_mask"][b].bool()
    grids = batch["video_grid_thw"]
    sizes = [int(g.prod()) for g in grids]
    start = sum(sizes[:b])
    return {
        "input_ids": batch["input_ids"][b, keep][None],
        "attention_mask": torch.ones(1, int(keep.sum()), dtype=torch.long, device=grids.device),
        "mm_token_type_ids": batch["mm_token_type_ids"][b, keep][None],
        "pixel_values_videos": batch["pixel_values_videos"][start: start + sizes[b]],
        "video_grid_thw": grids[b: b + 1],
        "second_per_grid_ts": batch["second_per_grid_ts"][b: b + 1],
    }


def level_logprobs_independent(model, batch, level_ids: Sequence[Sequence[int]] | None = None,
                               score_positions: torch.Tensor | None = None,
                               batched_levels: bool = False) -> torch.Tensor:
    """Unnormalised ``log pi(s | x)`` [B, 5, 9] by plain teacher-forced passes of prefix + level.

    The reference for :func:`level_logprobs_raw`: for every clip, dimension and level one full
    forward pass (the model computes its own positions), or one pass over the 9 candidates
    stacked as a batch with ``batched_levels=True``. Slow by design; differentiable.
    """
    level_ids, sp = _levels_and_positions(batch, level_ids, score_positions)
    B = batch["input_ids"].shape[0]
    nan = torch.tensor(float("nan"), device=batch["input_ids"].device)
    out = [[[nan] * len(level_ids) for _ in range(N_DIMS)] for _ in range(B)]
    for b in range(B):
        ex = example_inputs(batch, b)
        am = batch["attention_mask"][b].bool()
        for d in range(N_DIMS):
            p = int(sp[b, d])
            if p <= 0:
                continue
            p -= int((~am[:p]).sum())  # index in the unpadded sequence
            seqs = [torch.cat([ex["input_ids"][0, :p], torch.tensor(s, dtype=torch.long, device=ex["input_ids"].device)])
                    for s in level_ids]
            groups = [list(range(len(seqs)))] if batched_levels and len({len(s) for s in seqs}) == 1 else [[i] for i in range(len(seqs))]
            for g in groups:
                ids = torch.stack([seqs[i] for i in g])
                n = len(g)
                res = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                            mm_token_type_ids=torch.cat([ex["mm_token_type_ids"][:, :p].expand(n, -1),
                                                         torch.zeros(n, ids.shape[1] - p, dtype=torch.long, device=ids.device)], 1),
                            pixel_values_videos=ex["pixel_values_videos"].repeat(n, 1),
                            video_grid_thw=ex["video_grid_thw"].repeat(n, 1),
                            second_per_grid_ts=ex["second_per_grid_ts"].repeat(n), use_cache=False,
                            logits_to_keep=ids.shape[1] - p + 1)  # logits from position p - 1 on
                lp = torch.log_softmax(res.logits.float(), dim=-1)
                for row, i in enumerate(g):
                    s = level_ids[i]
                    out[b][d][i] = sum(lp[row, k, s[k]] for k in range(len(s)))
    return torch.stack([torch.stack([torch.stack(r) for r in rows]) for rows in out])
