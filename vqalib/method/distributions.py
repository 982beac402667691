"""Exact score distributions over the K levels of a rating schema, sharing the prefix across the candidates.

For a dimension whose score starts at token position ``p`` of a teacher-forced answer, the
prefix ``x`` is everything before ``p`` (video, prompt, rationale, earlier score lines and
``"Clarity Quality: "``). A level ``s`` is a string of several tokens (``3``, ``.``, ``5``; a
word such as ``" excellent"``, tokenised in context after ``"Name:"``: :func:`level_token_ids`), so

    log pi(s | x) = sum_k log p(s_k | x, s_<k)          (sum of the level's token log-probs)
    pi_K(s | x)   = pi(s | x) / sum_s' pi(s' | x)        (renormalised over the K levels)
    outside(x)    = 1 - sum_s pi(s | x)                  (mass on any other continuation)

A level whose tokens are a proper prefix of another level's (``1`` of ``10`` on a 1..10 grid) must
also *end* there, or the model would be counted as writing ``1`` when it writes ``10``:

    log pi(s | x) = log p(s tokens | x) + log(1 - sum_{t extends s toward a longer level} p(t | x, s))

(:func:`prefix_levels`; the context ``x, s`` is a trie node already, so the same pass gives it).

The K levels share their token prefixes (``3`` is the first token of ``3.0`` and ``3.5``), so the
contexts needed are the nodes of a trie: the root (next token after ``x``), ``3``, ``3.`` ...
(10 nodes for the paper's levels with Qwen's digit tokens). Instead of K full passes per dimension,
:func:`level_logprobs` runs **one** forward pass per batch: the teacher-forced sequence followed,
for each of the D dimensions (the columns of ``score_positions``), by a small block of tree tokens (a copy of the last prefix token
and the trie nodes) with a 4-D attention mask that lets each tree token see only the sequence
before its dimension's score position and its own trie ancestors, and with the positions
(M-RoPE: all three axes) that the token would have in a plain pass. Causal attention makes the
prefix's keys/values identical to those of a pass over the prefix alone, so the result equals
K independent teacher-forced passes (tested to 1e-5 in float32 for the paper's 9 levels, 5 words
and 10 integers). The copy of the last prefix
token sees exactly the keys the original sees (the original's key is its own), so all needed
logits sit in the last ``D * (1 + nodes)`` positions and ``logits_to_keep`` avoids the full
vocabulary projection of the whole sequence.

**Bare integers** (numeric schemas whose level strings end in ``.0``, such as the paper's). The parser reads ``Motion Quality: 3`` as 3.0 (:mod:`vqalib.schema.prompts`). With
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

from vqalib.schema import rating
from vqalib.schema.levels import DIMENSION_KEYS

#: The paper's number of dimensions (kept for old imports; the pass reads D from ``score_positions``).
N_DIMS = len(DIMENSION_KEYS)


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False))


def _in_context(tokenizer, name: str, s: str) -> tuple[tuple[int, ...], bool]:
    """The ids of level ``s`` as they stand after ``"name: "`` (see :func:`level_token_ids`), and whether they
    follow a separate space token (``True``: digits) or hold the space themselves (``False``: ``" good"``)."""
    full = _encode(tokenizer, f"{name}: {s}\n")
    own = _encode(tokenizer, f"{name}: {s}")
    for spaced, pre_text in ((True, f"{name}: "), (False, f"{name}:")):
        pre = _encode(tokenizer, pre_text)
        if own[: len(pre)] == pre and len(own) > len(pre) and full[: len(own)] == own:
            return tuple(own[len(pre):]), spaced
    raise ValueError(f"level {s!r} does not tokenise on a token boundary after {name + ': '!r} ({own}), or it "
                     "merges with the line break after it; exact level scoring needs the score to start and end "
                     "on token boundaries")


def level_token_ids(tokenizer, schema: "rating.RatingSchema | None" = None) -> list[tuple[int, ...]]:
    """Token ids of each of the schema's K level strings, tokenised **in context**, as the model writes
    them in a score line ``"Name: <level>\n"``: ``tokens("Name: " + s) - tokens("Name: ")``, or, for a
    word that BPE merges with the space before it (``" excellent"``), ``tokens("Name: " + s) -
    tokens("Name:")``. The score position of an answer is the first token of its level (the token that
    holds the level's first character).

    Checks that the prefix tokenises the same with the level after it, that the level does not merge
    with the line break after it, that every dimension name gives the same ids, that all levels start
    at the same kind of boundary (all after the space token, or all holding it) and that no two
    levels share their ids; raises ``ValueError`` naming the level otherwise. For the paper (a
    digit-splitting tokenizer such as Qwen's) these are the ids of the level strings alone (``3``,
    ``.``, ``5``), read after ``"Motion Quality: "`` as before.
    """
    schema = rating.resolve(schema)
    names = ("Motion Quality",) if schema.is_paper else schema.names
    out: list[tuple[int, ...]] | None = None
    for name in names:
        pairs = [_in_context(tokenizer, name, s) for s in schema.strings]
        kinds = {spaced for _, spaced in pairs}
        if len(kinds) > 1:
            raise ValueError(f"the levels of the {schema.name!r} schema start at different token boundaries after "
                             f"{name + ': '!r} (after a space token: {[s for s, (_, sp) in zip(schema.strings, pairs) if sp]}; "
                             f"holding the space: {[s for s, (_, sp) in zip(schema.strings, pairs) if not sp]}); "
                             "exact level scoring needs one context for all levels")
        ids = [i for i, _ in pairs]
        if out is not None and ids != out:
            raise ValueError(f"the levels tokenise differently after {name + ': '!r} than after {names[0] + ': '!r}; "
                             "exact level scoring needs one tokenisation per level")
        out = ids
    if len(set(out)) != len(out):
        raise ValueError(f"two levels of the {schema.name!r} schema tokenise to the same ids: {out}")
    return out


def prefix_levels(level_ids: Sequence[Sequence[int]]) -> dict[int, tuple[int, ...]]:
    """For each level whose ids are a proper prefix of another level's (``"1"`` of ``"10"``), the ids of the
    tokens that extend it toward a longer level (``("0",)``): ``{level index: extension token ids}``."""
    ids = [tuple(int(t) for t in s) for s in level_ids]
    out: dict[int, tuple[int, ...]] = {}
    for i, s in enumerate(ids):
        ext = sorted({t[len(s)] for t in ids if len(t) > len(s) and t[: len(s)] == s})
        if ext:
            out[i] = tuple(ext)
    return out


def _end_logprob(logp_next: torch.Tensor, ext: Sequence[int]) -> torch.Tensor:
    """``log(1 - sum_{t in ext} p(t))`` from next-token log-probs ``[..., V]``, as the log of the mass on every
    other token (stable, differentiable)."""
    mask = torch.zeros(logp_next.shape[-1], dtype=torch.bool, device=logp_next.device)
    mask[list(ext)] = True
    return torch.logsumexp(logp_next.masked_fill(mask, float("-inf")), dim=-1)


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


def _add_integer_form(raw: torch.Tensor, logp_tok: torch.Tensor, trie: "LevelTrie", level_ids, continue_ids,
                      strings: Sequence[str]) -> torch.Tensor:
    """``raw`` [B, D, K] with the bare-integer form of each ``X.0`` level added (module docstring):
    ``log(exp(raw) + p(X) (1 - sum_{t in continue_ids} p(t | X)))``. ``logp_tok`` [B, D, blocks, V];
    ``strings`` the level strings (only numeric ones ending in ``.0`` have the form)."""
    cont = torch.as_tensor(list(continue_ids), device=logp_tok.device)
    out = raw.clone()
    for s, (text, seq) in enumerate(zip(strings, level_ids)):
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

    def node_of(self, path: Sequence[int]) -> int:
        """The node whose path is the token sequence ``path`` (a proper prefix of some level); ``KeyError`` if none."""
        n = -1
        for t in path:
            n = next((c for c in range(self.n_nodes) if self.node_parent[c] == n and self.node_tokens[c] == t), None)
            if n is None:
                raise KeyError(f"no trie node for the token path {tuple(path)}")
        return n

    def leaves(self) -> list[int]:
        """Nodes that are no other node's parent: one sequence per leaf covers every node's context."""
        parents = set(self.node_parent)
        return [n for n in range(self.n_nodes) if n not in parents]

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


def _frame_time_inputs(batch, rows=None) -> dict[str, torch.Tensor]:
    """``{"second_per_grid_ts": ...}`` for a batch of a family that reads frame times through M-RoPE
    (Qwen2.5-VL; ``rows`` selects clips), else ``{}`` (Qwen3-VL and Qwen3.5 read them as text)."""
    spg = batch.get("second_per_grid_ts") if hasattr(batch, "get") else None
    if spg is None:
        return {}
    return {"second_per_grid_ts": spg if rows is None else spg[rows]}


def reads_tree_mask(model) -> bool:
    """Whether every language-model layer attends through the attention mask (a 4-D tree mask is then
    honoured). False for a model with recurrent layers (Qwen3.5's ``linear_attention``, the gated delta
    rule): :func:`level_logprobs_raw` then scores the trie's branches as sequences of their own.
    The family adapter declares the same (``vqalib.model.family.ModelFamily.tree_mask``; a test checks both)."""
    cfg = _unwrap(model).config
    text = getattr(cfg, "text_config", None) or cfg
    kinds = set(getattr(text, "layer_types", None) or ())
    return kinds <= {"full_attention", "sliding_attention"}


def position_ids(model, batch) -> torch.Tensor:
    """The position ids the model uses for ``batch``: M-RoPE ``[3, B, L]`` for Qwen2-VL-family
    models (from the model's own ``get_rope_index``), else 1-D ``[B, L]`` from the mask."""
    base = _unwrap(model)
    owner = next((m for m in (getattr(base, "model", None), base) if hasattr(m, "get_rope_index")), None)
    if owner is not None:
        pos, _ = owner.get_rope_index(
            batch["input_ids"], mm_token_type_ids=batch["mm_token_type_ids"],
            video_grid_thw=batch.get("video_grid_thw"), attention_mask=batch["attention_mask"], **_frame_time_inputs(batch))
        return pos
    am = batch["attention_mask"].long()
    return (am.cumsum(-1) - 1).clamp(min=0)


def _tree_inputs(batch, positions: torch.Tensor, score_positions: torch.Tensor, trie: LevelTrie, dtype):
    """Token ids, positions, mm types and the additive 4-D mask of the sequence + tree blocks."""
    ids, am = batch["input_ids"], batch["attention_mask"].bool()
    B, L = ids.shape
    dev = ids.device
    blk = 1 + trie.n_nodes
    n_dims = int(score_positions.shape[1])
    E = n_dims * blk
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
    for d in range(n_dims):
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


def _levels_and_positions(batch, level_ids, score_positions, schema=None
                          ) -> tuple[list[tuple[int, ...]], torch.Tensor, "rating.RatingSchema | None"]:
    """Level token ids, score positions and the schema: explicit arguments, else the batch's attributes
    (:class:`vqalib.model.inputs.Batch`), else its ``"level_ids"`` / ``"score_positions"`` / ``"schema"`` keys.

    With a schema (given, or the batch's), checks that there are K level id sequences and D score
    position columns; raises ``ValueError`` naming K and D otherwise. Without one, K and D are the
    ids' and the positions' (the schema is then ``None``)."""
    if level_ids is None:
        level_ids = getattr(batch, "level_ids", None) or batch.get("level_ids")
    if level_ids is None:
        raise ValueError("no level token ids: pass level_ids=vqalib.method.distributions.level_token_ids(processor.tokenizer, "
                         "schema=...) (a plain dict batch does not carry them)")
    sp = score_positions
    if sp is None:
        sp = getattr(batch, "score_positions", None)
    if sp is None:
        sp = batch.get("score_positions")
    if sp is None:
        raise ValueError("no score positions: build the batch with answers (vqalib.model.inputs.build_batch) or pass "
                         "score_positions [B, D] (token index of each dimension's first score token)")
    if schema is None:
        schema = getattr(batch, "schema", None) or (batch.get("schema") if hasattr(batch, "get") else None)
    if schema is not None:
        schema = rating.resolve(schema)
    sp = torch.as_tensor(sp).to(batch["input_ids"].device)
    if sp.ndim != 2:
        raise ValueError(f"score_positions must be [B, D] (one column per dimension), got shape {tuple(sp.shape)}")
    if schema is not None:
        if len(level_ids) != schema.n_levels:
            raise ValueError(f"{len(level_ids)} level token id sequences but the {schema.name!r} schema has K = "
                             f"{schema.n_levels} levels; pass level_ids=level_token_ids(tokenizer, schema=schema)")
        if sp.shape[1] != schema.n_dims:
            raise ValueError(f"score_positions has {sp.shape[1]} columns but the {schema.name!r} schema has "
                             f"{schema.n_dims} dimension(s) {list(schema.keys)}")
    return [tuple(int(t) for t in s) for s in level_ids], sp, schema


def _model_dtype(model) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _strings_for(schema, level_ids, continue_ids) -> tuple[str, ...] | None:
    """The level strings the bare-integer form needs (``None`` when ``continue_ids`` is not asked for)."""
    if continue_ids is None:
        return None
    schema = schema if schema is not None else rating.PAPER
    if len(level_ids) != schema.n_levels:
        raise ValueError(f"continue_ids needs the level strings: {len(level_ids)} levels but the {schema.name!r} "
                         f"schema has K = {schema.n_levels}; pass schema=")
    return schema.strings


def level_logprobs_raw(model, batch, level_ids: Sequence[Sequence[int]] | None = None,
                       score_positions: torch.Tensor | None = None, return_logits: bool = False,
                       continue_ids: Sequence[int] | None = None, *, schema: "rating.RatingSchema | None" = None):
    """Unnormalised ``log pi(s | x)`` [B, D, K] in one tree-masked pass (NaN where no position).

    A level whose ids are a proper prefix of another level's (``"1"`` of ``"10"``) counts only the
    continuations that do not extend it toward a longer level: ``log pi(s) = log p(s tokens) +
    log(1 - sum_{t extends s} p(t | x, s))`` (:func:`prefix_levels`), read from the same pass (the
    trie holds the node of ``s``).

    ``schema``: the rating schema (``None``: the batch's ``schema`` attribute if it has one, else K
    and D are read from ``level_ids`` and ``score_positions`` and the level strings are the paper's);
    checked against K and D. ``score_positions`` [B, D] default to ``batch.score_positions`` (from :func:`vqalib.model.inputs.build_batch`);
    ``level_ids`` default to ``batch.level_ids``. With ``return_logits=True`` also returns the
    teacher-forced logits of the sequence itself [B, L, V] from the same pass (the sequence's
    tokens attend causally, exactly as in a plain forward), for a loss on the other answer tokens;
    ``return_logits`` a ``[B, K]`` integer tensor of sequence positions returns only those logits
    [B, K, V] (``vqalib.train.token_logits.answer_logit_positions``), so the vocabulary projection
    skips the video and prompt positions.
    ``continue_ids`` (:func:`number_continuation_ids`) adds the bare-integer form of the ``X.0``
    levels of a numeric schema (module docstring); ``None`` scores the strict level strings only.
    """
    level_ids, sp, schema = _levels_and_positions(batch, level_ids, score_positions, schema)
    strings = _strings_for(schema, level_ids, continue_ids)
    trie = LevelTrie.build(level_ids)
    if reads_tree_mask(model):
        logp_tok, seq_logits = _tree_pass(model, batch, sp, trie, return_logits)
    else:
        logp_tok, seq_logits = _branch_pass(model, batch, sp, trie, return_logits)
    ends = prefix_levels(level_ids)
    cols = []
    for s, steps in enumerate(trie.steps):
        total = 0
        for ctx, tok in steps:
            total = total + logp_tok[:, :, ctx + 1, tok]  # block slot 0 = root copy, n + 1 = node n
        if s in ends:  # a level that is a prefix of longer ones: it must end here
            total = total + _end_logprob(logp_tok[:, :, trie.node_of(level_ids[s]) + 1], ends[s])
        cols.append(total)
    raw = torch.stack(cols, dim=-1)  # [B, D, K]
    if continue_ids is not None:
        raw = _add_integer_form(raw, logp_tok, trie, level_ids, continue_ids, strings)
    missing = (sp <= 0)[:, :, None].expand_as(raw)
    raw = raw.masked_fill(missing, float("nan"))
    return (raw, seq_logits) if seq_logits is not None else raw


def _tree_pass(model, batch, sp: torch.Tensor, trie: LevelTrie, return_logits):
    """``(logp_tok [B, D, 1 + nodes, V], sequence logits or None)`` from one tree-masked pass (module docstring)."""
    cfg = _unwrap(model).config  # the language model reads the tree mask: its sub-config decides (issue 19)
    attns = [getattr(c, "_attn_implementation", "sdpa") or "sdpa" for c in (cfg, getattr(cfg, "text_config", None)) if c is not None]
    attn = next((a for a in attns if a not in ("sdpa", "eager")), "sdpa")
    if attn not in ("sdpa", "eager"):
        raise ValueError(f"level_logprobs needs attn_implementation 'sdpa' or 'eager' (a 4-D tree mask); the model "
                         f"uses {attn!r}. Reload with load_model_and_processor(..., attn_implementation='sdpa').")
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
                logits_to_keep=keep, use_cache=False, **_frame_time_inputs(batch))
    logp_tok = torch.log_softmax(out.logits[:, -E:].float(), dim=-1)  # [B, E, V]
    logp_tok = logp_tok.view(ids.shape[0], sp.shape[1], 1 + trie.n_nodes, -1)
    if seq_pos is not None:
        return logp_tok, out.logits[:, :seq_pos.shape[1]]
    return logp_tok, (out.logits[:, :L] if return_logits else None)


def _clip_slices(batch) -> list[slice]:
    """The rows of ``pixel_values_videos`` that belong to each clip of the batch."""
    sizes = [int(g.prod()) for g in batch["video_grid_thw"]]
    starts = [sum(sizes[:b]) for b in range(len(sizes))]
    return [slice(a, a + n) for a, n in zip(starts, sizes)]


def _video_once(model, batch, order: list[int], clips: list[slice]) -> dict:
    """The video inputs of the branch rows (clip ``order[i]`` for row ``i``): the clips' vision features,
    encoded once per clip and handed to every row (``mm_encoder_outputs``) when the model takes them,
    else each row's pixels (the vision tower then runs once per row). Differentiable either way."""
    import inspect

    from transformers.modeling_outputs import BaseModelOutputWithPooling

    base = _unwrap(model)
    owner = next((m for m in (getattr(base, "model", None), base) if hasattr(m, "get_video_features")), None)
    if owner is not None and "mm_encoder_outputs" in inspect.signature(type(base).forward).parameters:
        feats = owner.get_video_features(batch["pixel_values_videos"], batch["video_grid_thw"], return_dict=True)
        rows = {"pooler_output": tuple(feats.pooler_output[b] for b in order)}
        deepstack = getattr(feats, "deepstack_features", None)  # Qwen3-VL: per layer, a tuple per clip
        if deepstack is not None:
            rows["deepstack_features"] = [tuple(layer[b] for b in order) for layer in deepstack]
        out_type = type(feats) if deepstack is not None else BaseModelOutputWithPooling
        return {"mm_encoder_outputs": {"video": out_type(**rows)}}
    return {"pixel_values_videos": torch.cat([batch["pixel_values_videos"][clips[b]] for b in order])}


def _branch_pass(model, batch, sp: torch.Tensor, trie: LevelTrie, return_logits):
    """``(logp_tok [B, D, 1 + nodes, V], sequence logits or None)`` for a model with recurrent layers.

    One batched forward over a sequence per (clip, dimension, trie leaf): the clip's unpadded tokens up to
    the dimension's score position, then the leaf's path. Rows are left-padded so that every prefix ends in
    the same column; the logits at that column and the path's give the root's and every node's next-token
    distribution (a node sits on the path of each leaf below it; any one is read). Each row is a plain
    causal pass, so the values are those of independent passes. The video is encoded once per clip
    (:func:`_video_once`); the language model runs once per row (B x D x leaves rows: 25 per clip for the
    paper's 9 levels, 5 leaves). The sequence's own logits (``return_logits``) come from one more plain pass.
    """
    ids, am, mm_all = batch["input_ids"], batch["attention_mask"].bool(), batch["mm_token_type_ids"]
    B, D = sp.shape
    dev = ids.device
    leaves = trie.leaves() or [-1]
    paths = {leaf: ([trie.node_tokens[n] for n in trie.ancestors(leaf)] if leaf >= 0 else []) for leaf in leaves}
    reads: dict[int, list[tuple[int, int]]] = {leaf: [] for leaf in leaves}  # leaf -> (block slot, kept position)
    seen: set[int] = set()
    for leaf in leaves:  # each node is read from the first leaf below it; slot n + 1 = node n, at depth k + 1
        for k, n in enumerate(([] if leaf < 0 else trie.ancestors(leaf))):
            if n not in seen:
                seen.add(n)
                reads[leaf].append((n + 1, k + 1))
    clips = _clip_slices(batch)
    rows = []  # (b, d, leaf, prefix ids, prefix mm types)
    for b in range(B):
        keep = am[b]
        for d in range(D):
            p = int(sp[b, d])
            if p <= 0:
                continue
            p -= int((~keep[:p]).sum())
            for leaf in leaves:
                rows.append((b, d, leaf, ids[b, keep][:p], mm_all[b, keep][:p]))
    V = None
    blk = 1 + trie.n_nodes
    if not rows:
        logp_tok = None
    else:
        P0 = max(len(r[3]) for r in rows)
        depth = max(len(paths[leaf]) for leaf in leaves)
        T = P0 + depth
        pad = 0  # padded positions are masked out
        N = len(rows)
        r_ids = torch.full((N, T), pad, dtype=ids.dtype, device=dev)
        r_am = torch.zeros((N, T), dtype=batch["attention_mask"].dtype, device=dev)
        r_mm = torch.zeros((N, T), dtype=mm_all.dtype, device=dev)
        for i, (b, d, leaf, pre, mm) in enumerate(rows):
            path = torch.tensor(paths[leaf], dtype=ids.dtype, device=dev)
            off = P0 - len(pre)
            r_ids[i, off:P0] = pre
            r_mm[i, off:P0] = mm
            r_ids[i, P0:P0 + len(path)] = path
            r_am[i, off:P0 + len(path)] = 1
        order = [r[0] for r in rows]
        out = model(input_ids=r_ids, attention_mask=r_am, mm_token_type_ids=r_mm,
                    video_grid_thw=batch["video_grid_thw"][order], use_cache=False,
                    logits_to_keep=torch.arange(P0 - 1, T, device=dev), **_frame_time_inputs(batch, order),
                    **_video_once(model, batch, order, clips))
        lp = torch.log_softmax(out.logits.float(), dim=-1)  # [N, 1 + depth, V]
        V = lp.shape[-1]
        logp_tok = torch.full((B, D, blk, V), float("nan"), device=dev)
        for i, (b, d, leaf, _, _) in enumerate(rows):
            if leaf == leaves[0]:  # the root (slot 0): the prefix's last position, the same in every row
                logp_tok[b, d, 0] = lp[i, 0]
            for slot, k in reads[leaf]:
                logp_tok[b, d, slot] = lp[i, k]
    seq_logits = None
    if torch.is_tensor(return_logits) or return_logits:
        seq_pos = return_logits if torch.is_tensor(return_logits) else None
        keep = seq_pos.to(device=dev, dtype=torch.long) if seq_pos is not None else 0
        out = model(input_ids=ids, attention_mask=batch["attention_mask"], mm_token_type_ids=mm_all,
                    pixel_values_videos=batch["pixel_values_videos"], video_grid_thw=batch["video_grid_thw"],
                    use_cache=False, logits_to_keep=keep, **_frame_time_inputs(batch))
        seq_logits = out.logits
        V = V or seq_logits.shape[-1]
    if logp_tok is None:
        logp_tok = torch.full((B, D, blk, V or 1), float("nan"), device=dev)
    return logp_tok, seq_logits


def normalise(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log pi_K, outside_mass)`` from unnormalised level log-probs ``raw`` [..., K]."""
    lse = torch.logsumexp(raw, dim=-1, keepdim=True)
    outside = (1.0 - lse.squeeze(-1).exp()).clamp(min=0.0)
    return raw - lse, outside


def level_logprobs(model, batch, level_ids: Sequence[Sequence[int]] | None = None,
                   score_positions: torch.Tensor | None = None, return_logits: bool = False,
                   continue_ids: Sequence[int] | None = None, *, schema: "rating.RatingSchema | None" = None):
    """``(logp [B, D, K], outside_mass [B, D])``: log pi over the K levels, renormalised, and the
    probability mass outside them, per clip and dimension (NaN where the dimension has no score
    position). Differentiable when grad is enabled; see the module docstring for the method.
    ``return_logits=True`` appends the sequence's own teacher-forced logits [B, L, V] from the
    same pass: ``(logp, outside, logits)`` (ASO's rationale term needs no second forward).
    ``continue_ids``, ``schema``: see :func:`level_logprobs_raw`."""
    if torch.is_tensor(return_logits) or return_logits:
        raw, logits = level_logprobs_raw(model, batch, level_ids, score_positions, return_logits=True,
                                         continue_ids=continue_ids, schema=schema)
        return (*normalise(raw), logits)
    return normalise(level_logprobs_raw(model, batch, level_ids, score_positions, continue_ids=continue_ids,
                                        schema=schema))


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
        **_frame_time_inputs(batch, slice(b, b + 1)),
    }


def level_logprobs_independent(model, batch, level_ids: Sequence[Sequence[int]] | None = None,
                               score_positions: torch.Tensor | None = None,
                               batched_levels: bool = False, *, schema: "rating.RatingSchema | None" = None) -> torch.Tensor:
    """Unnormalised ``log pi(s | x)`` [B, D, K] by plain teacher-forced passes of prefix + level.

    The reference for :func:`level_logprobs_raw`: for every clip, dimension and level one full
    forward pass (the model computes its own positions), or one pass over the K candidates
    stacked as a batch with ``batched_levels=True``. A level that is a proper prefix of longer
    levels gets the same termination term as in the one pass, ``log(1 - sum_{t extends s} p(t | x, s))``,
    from the logits after its last token in its own pass. Slow by design; differentiable.
    """
    level_ids, sp, schema = _levels_and_positions(batch, level_ids, score_positions, schema)
    ends = prefix_levels(level_ids)
    B = batch["input_ids"].shape[0]
    D = sp.shape[1]
    nan = torch.tensor(float("nan"), device=batch["input_ids"].device)
    out = [[[nan] * len(level_ids) for _ in range(D)] for _ in range(B)]
    for b in range(B):
        ex = example_inputs(batch, b)
        am = batch["attention_mask"][b].bool()
        for d in range(D):
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
                            **{k: v.repeat(n) for k, v in _frame_time_inputs(ex).items()}, use_cache=False,
                            logits_to_keep=ids.shape[1] - p + 1)  # logits from position p - 1 on
                lp = torch.log_softmax(res.logits.float(), dim=-1)
                for row, i in enumerate(g):
                    s = level_ids[i]
                    out[b][d][i] = sum(lp[row, k, s[k]] for k in range(len(s)))
                    if i in ends:  # lp[row, len(s)]: the next token after the level
                        out[b][d][i] = out[b][d][i] + _end_logprob(lp[row, len(s)], ends[i])
    return torch.stack([torch.stack([torch.stack(r) for r in rows]) for rows in out])
