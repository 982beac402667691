"""Training examples, a frame cache and the video collator shared by SFT, GRPO and ASO.

Decoding video is the slow part of a CPU step, so every clip is sampled **once** per sampling
setting (fps / max frames / max pixels) and kept in memory and, optionally, on disk under
``vqalib.core.runs.cache_dir() / "frames"`` (keyed by the file's path, size, mtime and the sampling
settings), so notebooks 04, 05 and 06 decode each clip once between them. Both are bounded
(:class:`FrameCache`: ``frame_cache_mb`` per process in memory, ``frame_disk_cache_mb`` on disk, least
recently used out first), so a dataset of any size fits a fixed host budget.

Every sample carries exactly one video. That keeps the number of vision-tower calls per step the
same on every rank, which DeepSpeed ZeRO-3 / FSDP need (a rank that runs the vision tower a
different number of times waits forever for the others' parameter all-gathers).

Augmentation (train only, optional): random horizontal / vertical flips, transposition and time
reversal of the cached frames. None of these changes any of the five labels of the
sample dataset (blur, noise, exposure, colour, motion amount/shake/flicker are invariant); a
real dataset with text overlays or directional motion may prefer ``augment: false``.

Rating schema (issue 23, :mod:`vqalib.schema.rating`). Every function here whose result depends on the
dimensions or the levels takes ``schema=None`` (``None``: the paper's five dimensions x nine levels, whose
results are unchanged). The collator writes the answer with the schema's dimensions and level strings,
finds the score positions of the schema's dimensions ([B, D]) and gives ``targets`` [B, D].

Missing labels: a clip may lack some dimensions (NaN in the labels; nothing is filled in). Its SFT answer
leaves that dimension's score line out, its ``targets`` entry is NaN and ``label_mask`` False, so ASO and
GRPO leave the dimension out of their losses and rewards; :func:`load_examples` counts them
(:class:`Examples` ``.n_missing``), and the stages write the counts to their manifests.

Soft labels: with a schema whose ``target_rule`` is ``gaussian`` or ``histogram``, each clip carries the
per-dimension target over the K levels (:meth:`vqalib.schema.rating.RatingSchema.target`, from the raters'
mean, standard deviation and ratings), collated as ``soft_targets`` [B, D, K]; ASO's reward uses it. The
SFT text target stays the nearest level of the mean (a text answer names one level).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from vqalib.schema import rating
from vqalib.schema.levels import DIMENSION_KEYS, TAG_TEXT
from vqalib.video.augment import augment_video


def schema_kw(schema: Any) -> dict[str, Any]:
    """``{"schema": schema}`` for a schema other than the paper's, else ``{}``: the paper's calls stay the
    calls they were (bit-identical), other schemas reach every schema-aware function by keyword."""
    s = rating.resolve(schema)
    return {} if s.is_paper else {"schema": s}


@dataclass
class ClipExample:
    """One training clip: where its video is, its target levels (one per labelled dimension; a missing
    dimension is absent from ``scores``) and its rationales."""

    video_id: str
    path: Path
    scores: dict[str, float]
    rationales: dict[str, str]
    tags: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # majority tags per dimension (final phase)
    ratings: dict[str, list[float]] = dataclasses.field(default_factory=dict)  # each rater's score per dimension (final phase)
    soft: dict[str, list[float]] = dataclasses.field(default_factory=dict)  # soft target over the K levels per dimension (gaussian/histogram schemas)

    def targets(self, schema: rating.RatingSchema | None = None) -> list[float]:
        """The target level per dimension of ``schema`` (default the paper's) in its order; NaN where missing."""
        keys = DIMENSION_KEYS if schema is None else rating.resolve(schema).keys
        return [float(self.scores[k]) if k in self.scores else float("nan") for k in keys]

    def missing(self, schema: rating.RatingSchema | None = None) -> list[str]:
        """The dimensions of ``schema`` this clip has no label for."""
        return [k for k in rating.resolve(schema).keys if k not in self.scores]


class Examples(list):
    """The clips of a split (a list of :class:`ClipExample`) with the dataset's rating ``schema`` and the
    missing-label counts: ``n_missing`` {dimension key: clips without that label}."""

    def __init__(self, items: Sequence[ClipExample] = (), schema: rating.RatingSchema | None = None,
                 n_missing: dict[str, int] | None = None):
        super().__init__(items)
        self.schema = rating.resolve(schema)
        self.n_missing = dict(n_missing) if n_missing is not None else count_missing(self, self.schema)

    def missing_report(self) -> dict[str, Any]:
        """For the stage manifest: missing labels per dimension and in all, and the clips with any missing."""
        return missing_report(self, self.schema)


def count_missing(examples: Sequence[ClipExample], schema: rating.RatingSchema | None = None) -> dict[str, int]:
    """{dimension key: how many of ``examples`` have no label for it} over ``schema``'s dimensions."""
    s = rating.resolve(schema)
    return {k: sum(1 for ex in examples if k not in ex.scores) for k in s.keys}


def missing_report(examples: Sequence[ClipExample], schema: rating.RatingSchema | None = None) -> dict[str, Any]:
    """``{"by_dimension": {key: n}, "n_missing": total (clip, dimension) pairs, "n_clips_with_missing": n,
    "n_clips": n}``: what a stage leaves out of its losses and its answers (nothing is filled in)."""
    s = rating.resolve(schema)
    by = count_missing(examples, s)
    return {"by_dimension": by, "n_missing": int(sum(by.values())),
            "n_clips_with_missing": sum(1 for ex in examples if any(k not in ex.scores for k in s.keys)),
            "n_clips": len(examples)}


def label_mask(examples: Sequence[ClipExample], repeat: int = 1, schema: rating.RatingSchema | None = None) -> torch.Tensor:
    """``[B * repeat, D]`` bool: True where the clip has a label for the dimension."""
    keys = rating.resolve(schema).keys
    return torch.tensor([[k in ex.scores for k in keys] for ex in examples for _ in range(repeat)], dtype=torch.bool)


def soft_targets(examples: Sequence[ClipExample], repeat: int = 1, schema: rating.RatingSchema | None = None) -> torch.Tensor:
    """``[B * repeat, D, K]`` float32: each clip's soft target over the K levels per dimension
    (:attr:`ClipExample.soft`; one-hot at the label when the clip has none), NaN where the label is missing."""
    s = rating.resolve(schema)
    out = torch.full((len(examples) * repeat, s.n_dims, s.n_levels), float("nan"))
    for i, ex in enumerate(examples):
        for j, k in enumerate(s.keys):
            if k not in ex.scores:
                continue
            t = ex.soft.get(k)
            if t is None:
                t = s.target(float(ex.scores[k]), rule="nearest")
            out[i * repeat:(i + 1) * repeat, j] = torch.as_tensor(np.asarray(t, dtype=np.float64), dtype=torch.float32)
    return out


def rater_scores(examples: Sequence[ClipExample], repeat: int = 1, schema: rating.RatingSchema | None = None) -> torch.Tensor:
    """The raters' own scores ``[B * repeat, D, R_max]`` (NaN-padded; R_max = most raters of any clip and
    dimension), for the multi-rater reward (``vqalib.method.aso.reward_multi_rater``). A labelled clip and
    dimension without any rating raises naming them; a dimension the clip has no label for is all NaN
    (masked by the caller)."""
    keys = DIMENSION_KEYS if schema is None else rating.resolve(schema).keys
    rows = []
    for ex in examples:
        per_dim = []
        for k in keys:
            scores = ex.ratings.get(k, [])
            if not scores and k not in ex.scores:
                per_dim.append([])
                continue
            if not scores:
                raise ValueError(f"clip {ex.video_id!r} has no rater score for {k!r}; the multi-rater reward needs "
                                 f"the raw ratings (ratings.jsonl, final phase) or use reward=abs / reward=paper")
            per_dim.append([float(v) for v in scores])
        rows.extend([per_dim] * repeat)
    width = max(1, max(len(d) for r in rows for d in r))
    out = torch.full((len(rows), len(keys), width), float("nan"))
    for i, r in enumerate(rows):
        for j, d in enumerate(r):
            out[i, j, :len(d)] = torch.tensor(d)
    return out


def tag_text(tag: str) -> str:
    """How a tag reads in a rationale: the paper's phrase (``levels.TAG_TEXT``) or the tag with spaces."""
    return TAG_TEXT.get(tag, tag.replace("_", " "))


def short_rationale(tags: dict[str, list[str]], schema: rating.RatingSchema | None = None) -> str:
    """The tiny demo's short rationale: the defects the raters saw, e.g. ``"Seen: blur, camera shake."``.

    Built from the majority tags of the final-phase raters in the schema's dimension order; the tags of a
    dimension that is not a quality (``Dimension.quality`` False: the paper's motion amplitude, whose tags
    name an amount rather than a defect) are left out. It never contains a score or a level keyword, so a
    teacher-forced rationale does not give the score away (which matters for ASO's pi_ref)."""
    if schema is None:
        keys = [k for k in DIMENSION_KEYS if k != "motion_amplitude"]
    else:
        keys = [d.key for d in rating.resolve(schema).dimensions if d.quality]
    seen = [tag_text(t) for k in keys for t in tags.get(k, [])]
    return "Seen: " + (", ".join(seen) if seen else "no defects") + "."


def dataset_schema(ds: Any, root: str | os.PathLike | None = None) -> rating.RatingSchema:
    """The rating schema of a loaded dataset: its ``schema`` attribute, else the folder's
    ``rating_schema.json``, else the paper's."""
    s = getattr(ds, "schema", None)
    if s is not None:
        return rating.resolve(s)
    return rating.schema_of_folder(root) if root is not None else rating.PAPER


def check_schema(data: rating.RatingSchema, wanted: Any, where: str, source: str = "rating_schema") -> rating.RatingSchema:
    """``data`` when ``wanted`` (a schema, preset name, file, or empty) is empty or the same schema (the name
    aside, :meth:`~vqalib.schema.rating.RatingSchema.same_as`); else raise listing the differences. ``where`` names the dataset, ``source`` what asked for ``wanted``."""
    if wanted in (None, ""):
        return data
    w = rating.get_schema(wanted)
    if not w.same_as(data):
        diff = "; ".join(data.differences(w, "the dataset's", source))
        raise ValueError(f"{source}={wanted!r} is not the rating schema the dataset {where} is rated with ({diff}); "
                         f"drop {source} (the dataset's own schema is used) or train on a dataset of that schema")
    return data


def examples_for(cfg: Any, max_clips: int = 0) -> "Examples":
    """:func:`load_examples` with a training config's data settings (``data_dir``, ``split``, ``sample_size``,
    ``data_seed``, ``rating_schema``): the clips a stage of ``cfg`` trains on."""
    return load_examples(cfg.data_dir, cfg.split, cfg.sample_size, cfg.data_seed, max_clips,
                         schema=getattr(cfg, "rating_schema", ""))


def load_examples(data_dir: str = "", split: str = "train", sample_size: str = "default", data_seed: int = 0,
                  max_clips: int = 0, phase: str = "final", schema: Any = None) -> Examples:
    """The clips of one split with their aggregated labels (``vqalib.data.dataset.aggregate``) and rationales,
    as :class:`Examples` (a list) holding the dataset's rating schema and the missing-label counts.

    ``data_dir`` empty -> the embedded sample dataset (``vqalib.data.synth.ensure_sample_dataset``), generated on
    ``schema`` when one is given.
    ``schema`` (a schema, preset name or file; empty: the dataset's) must equal the schema saved with the
    dataset (its ``rating_schema.json``), else raises naming both; a folder without one is read with it.
    Each label is ``aggregate``'s (the raters' mean snapped to the schema's nearest level); a dimension
    without a label is left out of the clip's ``scores`` (counted, not filled in); a clip without any
    label raises naming it. With a ``gaussian``/``histogram`` schema each label also gets its soft target
    over the K levels (``vqalib.data.dataset.label_targets``)."""
    from vqalib.data.dataset import aggregate, label_targets, labels_wide, load_dataset
    from vqalib.data.synth import dataset_root

    # no data_dir: the embedded sample, generated on the asked schema (the paper's when none is asked)
    root = dataset_root(data_dir, sample_size, data_seed, schema=None if data_dir else (schema or None))
    if schema not in (None, "") and (Path(root) / rating.SCHEMA_FILE).is_file():
        check_schema(rating.schema_of_folder(root), schema, str(root))
    ds = load_dataset(root, schema=schema or None) if schema not in (None, "") else load_dataset(root)
    sch = dataset_schema(ds, root)
    keys = sch.keys
    wide = labels_wide(aggregate(ds, phase=phase)) if sch.is_paper else \
        labels_wide(aggregate(ds, phase=phase, schema=sch), schema=sch)
    if "video_id" in wide.columns:
        wide = wide.set_index("video_id")
    soft_of: dict[tuple[str, str], list[float]] = {}
    if sch.target_rule != "nearest":
        lt = label_targets(ds, phase=phase, schema=sch)
        soft_of = {(str(v), str(d)): [float(x) for x in t]
                   for v, d, t in lt[["video_id", "dimension", "target"]].itertuples(index=False)}
    videos = ds.videos
    if split:
        if split not in set(videos["split"]):
            raise ValueError(f"{root}: no clip has split {split!r}; splits present: {sorted(set(videos['split']))}")
        videos = videos[videos["split"] == split]
    rat: dict[str, dict[str, str]] = {}
    if ds.rationales is not None and len(ds.rationales):
        for row in ds.rationales.itertuples(index=False):
            rat.setdefault(str(row.video_id), {})[str(row.dimension)] = str(row.rationale)
    tag_votes: dict[tuple[str, str], dict[str, int]] = {}
    n_raters: dict[tuple[str, str], int] = {}
    scores_of: dict[tuple[str, str], list[float]] = {}
    final = ds.ratings[ds.ratings["phase"] == phase]
    for row in final.itertuples(index=False):
        key = (str(row.video_id), str(row.dimension))
        n_raters[key] = n_raters.get(key, 0) + 1
        scores_of.setdefault(key, []).append(float(row.score))
        votes = tag_votes.setdefault(key, {})
        for t in (row.tags if isinstance(row.tags, (list, tuple, np.ndarray)) else []):
            votes[str(t)] = votes.get(str(t), 0) + 1
    out: list[ClipExample] = []
    for vid in videos["video_id"].astype(str):
        if vid not in wide.index:
            raise ValueError(f"{root}: clip {vid!r} (split {split}) has no aggregated label; check its ratings")
        row = wide.loc[vid]
        scores, soft = {}, {}
        for key in keys:
            value = row.get(key)
            if value is None or not np.isfinite(float(value)):
                continue  # a missing label: left out of the answer and masked in ASO/GRPO (counted)
            scores[key] = float(value)
            if (vid, key) in soft_of:
                soft[key] = soft_of[(vid, key)]
        if not scores:
            raise ValueError(f"{root}: clip {vid!r} has no label for any of {list(keys)}; fix its ratings or drop the clip")
        tags = {k: sorted(t for t, n in tag_votes.get((vid, k), {}).items() if 2 * n >= n_raters[(vid, k)])
                for k in keys}
        ratings = {k: scores_of.get((vid, k), []) for k in keys}
        out.append(ClipExample(vid, ds.video_path(vid), scores, rat.get(vid, {}), tags, ratings, soft))
        if max_clips and len(out) >= max_clips:
            break
    if not out:
        raise ValueError(f"{root}: split {split!r} has no clips")
    return Examples(out, sch)


#: In-memory frame budget of one process, MiB (``CommonConfig.frame_cache_mb``). At the 7B sampling
#: (2 fps, <= 32 frames, 200,704 pixels) a clip is 9-18 MiB, so 2048 MiB keeps ~110-220 clips; the
#: tiny demo's clips (<= 8 frames of 112 x 112) all fit.
DEFAULT_FRAME_CACHE_MB: int = 2048
#: Disk budget of ``cache_dir()/frames``, MiB (``CommonConfig.frame_disk_cache_mb``), shared by every
#: process and run that uses that folder. Clips are stored as their uint8 frames, uncompressed: deflate
#: would make a real clip 1.8-2.2x smaller (KoNViD) but costs 0.16-0.25 CPU-s per 9 MiB clip on top of
#: a ~1 CPU-s decode, on the path ASO's pi_ref pass runs serially; the budget, not the format, is what
#: bounds the disk (bench/bench_frame_cache.py measures both).
DEFAULT_FRAME_DISK_CACHE_MB: int = 10240
_MIB = 1 << 20
_COUNTERS = ("n_decoded", "n_from_disk", "n_unjittered", "n_evicted")


def video_nbytes(video: Any) -> int:
    """Bytes a ``SampledVideo`` holds in its arrays (frames, indices, timestamps)."""
    return int(sum(getattr(video, name).nbytes for name in ("frames", "indices", "timestamps")))


class _LRUBytes:
    """A least-recently-used store bounded by bytes: ``put`` evicts the oldest entries until the total
    fits ``budget`` bytes; an entry larger than the whole budget is not kept (0: keeps nothing)."""

    def __init__(self, budget: int):
        from collections import OrderedDict

        self.budget = int(budget)
        self.nbytes = 0
        self._items: OrderedDict[Any, tuple[Any, int]] = OrderedDict()

    def get(self, key: Any) -> Any:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: Any, value: Any, nbytes: int) -> int:
        """Keep ``value``; returns how many entries were evicted to make room."""
        if key in self._items:
            self.nbytes -= self._items.pop(key)[1]
        if nbytes > self.budget:
            return 0
        evicted = 0
        while self._items and self.nbytes + nbytes > self.budget:
            self.nbytes -= self._items.popitem(last=False)[1][1]
            evicted += 1
        self._items[key] = (value, nbytes)
        self.nbytes += nbytes
        return evicted

    def __len__(self) -> int:
        return len(self._items)


class _SharedCounts:
    """The cache counters (:data:`_COUNTERS`) in shared memory, so that decodes done in DataLoader
    worker processes (forked or spawned with the collator) count in the training process's manifest."""

    def __init__(self):
        import multiprocessing

        self._arr = multiprocessing.Array("q", len(_COUNTERS))

    def add(self, name: str, n: int = 1) -> None:
        with self._arr.get_lock():
            self._arr[_COUNTERS.index(name)] += n

    def get(self, name: str) -> int:
        return int(self._arr[_COUNTERS.index(name)])

    def set(self, name: str, value: int) -> None:
        with self._arr.get_lock():
            self._arr[_COUNTERS.index(name)] = int(value)


def _counter(name: str) -> property:
    return property(lambda self: self._counts.get(name), lambda self, v: self._counts.set(name, v),
                    doc=f"``{name}``: shared by this process and its DataLoader workers (:class:`FrameCache`).")


#: A process writing to the disk cache re-lists the folder when its running count passes the budget
#: and at least this often (seconds), so other processes' writes are seen.
_DISK_RECHECK_S = 30.0


def _trim_disk(folder: Path, budget: int, target: int | None = None, keep: Path | None = None) -> int:
    """When the ``*.npz`` of ``folder`` total more than ``budget`` bytes, delete the least recently
    used (oldest mtime first; a read touches it) until at most ``target`` (default ``budget``) remain;
    leftover temporary files older than an hour go too. Returns the bytes left. Files another process
    deletes meanwhile are skipped. Listing the folder costs ~0.1 ms per file, so callers list it only
    when it may be over the budget (:meth:`FrameCache._write_disk`)."""
    import time

    entries, total, now = [], 0, time.time()
    try:
        scan = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for e in scan:
        if not e.name.endswith(".npz"):
            continue
        try:
            st = e.stat()
        except FileNotFoundError:
            continue
        if ".tmp" in e.name:
            if now - st.st_mtime > 3600:  # a crashed writer's leftover
                Path(e.path).unlink(missing_ok=True)
            continue
        entries.append((st.st_mtime_ns, e.path, st.st_size))
        total += st.st_size
    if total <= budget:
        return total
    entries.sort()
    for _, path, size in entries:
        if total <= (budget if target is None else target):
            break
        if keep is not None and path == str(keep):
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        total -= size
    return total


class FrameCache:
    """Samples each clip's frames (``vqalib.video.frames.sample_video``) and keeps them within a memory budget.

    Memory: the decoded clips of this process are kept least-recently-used first out, while their
    bytes (:func:`video_nbytes`) fit ``memory_mb`` MiB (:attr:`mem_bytes` never exceeds it); 0 keeps
    none. The budget is **per process**: every DataLoader worker (``num_workers``) holds its own copy
    of the cache, so a rank may hold up to ``(1 + num_workers) * memory_mb``. An evicted clip is read
    back from disk or decoded again: the frames are byte-identical (decoding is deterministic and the
    disk copy lossless), so evictions never change a run's numbers.

    Disk: ``disk=True`` also stores each clip's uint8 frames as an ``.npz`` under
    ``cache_dir()/frames`` (keyed by the file's path, size, mtime and the sampling settings) so later
    processes (the next notebook, the DataLoader workers after ASO's pi_ref pass) skip decoding. The
    folder is trimmed to ``disk_mb`` MiB when a write takes it past that, least recently used (read or written)
    first (down to 90 % of it); a clip larger than the whole budget is not stored; ``disk_mb=0`` turns
    the disk cache off. One process keeps the folder within the budget exactly; with several writing
    at once (workers, ranks, runs) each counts its own writes and re-lists the folder when its count
    passes the budget or :data:`_DISK_RECHECK_S` seconds have passed, so the folder can pass the
    budget by what the others wrote in between. A damaged or vanished entry is decoded again.

    Counters ``n_decoded`` (clips decoded, re-decodes after an eviction included), ``n_from_disk``
    (clips read from the disk cache) and ``n_evicted`` (clips dropped from memory) are shared with the
    DataLoader workers, so the training manifest counts every process's decodes. A clip that fails to
    decode raises ``VideoDecodeError`` naming the file: training never substitutes another clip."""

    def __init__(self, sampling: Any, disk: bool = True, memory_mb: float = DEFAULT_FRAME_CACHE_MB,
                 disk_mb: float = DEFAULT_FRAME_DISK_CACHE_MB, _store: _LRUBytes | None = None):
        for name, value in (("memory_mb", memory_mb), ("disk_mb", disk_mb)):
            if not (isinstance(value, (int, float)) and value >= 0):
                raise ValueError(f"FrameCache({name}={value!r}): the budget must be a number of MiB >= 0 (0: off)")
        self.sampling = sampling
        self.disk = bool(disk) and disk_mb > 0
        self.memory_mb = memory_mb
        self.disk_mb = disk_mb
        self._mem = _store if _store is not None else _LRUBytes(int(memory_mb * _MIB))
        self._counts = _SharedCounts()
        self._disk_seen: int | None = None  # bytes in the disk folder by this process's count (_write_disk)
        self._disk_checked = 0.0
        cfg = sampling.to_dict() if hasattr(sampling, "to_dict") else dataclasses.asdict(sampling)
        self._sampling_key = str(sorted(cfg.items()))

    n_decoded = _counter("n_decoded")
    n_from_disk = _counter("n_from_disk")
    n_evicted = _counter("n_evicted")

    @property
    def mem_bytes(self) -> int:
        """Bytes of decoded frames this process holds now (<= ``memory_mb`` MiB)."""
        return self._mem.nbytes

    def _key(self, path: Path) -> str:
        st = path.stat()
        raw = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{self._sampling_key}"
        return hashlib.sha1(raw.encode()).hexdigest()[:20]

    def get(self, path: str | os.PathLike):
        """The clip's sampled frames (``vqalib.video.frames.SampledVideo``): from memory, disk or a decode."""
        from vqalib.video.frames import SampledVideo, sample_video

        path = Path(path)
        key = (self._sampling_key, str(path))
        video = self._mem.get(key)
        if video is not None:
            return video
        disk_path = None
        if self.disk:
            from vqalib.core.runs import cache_dir

            disk_path = cache_dir() / "frames" / f"{self._key(path)}.npz"
            if disk_path.is_file():
                try:
                    with np.load(disk_path, allow_pickle=False) as z:
                        meta = json.loads(str(z["meta"]))
                        meta["indices"] = np.asarray(meta["indices"], dtype=np.int64)
                        meta["timestamps"] = np.asarray(meta["timestamps"], dtype=np.float64)
                        video = SampledVideo(frames=z["frames"], **meta)
                except Exception:  # noqa: BLE001 - a damaged (or just trimmed) entry is re-decoded, not trusted
                    video = None
                else:
                    self._counts.add("n_from_disk")
                    try:
                        os.utime(disk_path)  # recently used: trimmed last
                    except OSError:
                        pass
        if video is None:
            video = sample_video(path, self.sampling)
            self._counts.add("n_decoded")
            if disk_path is not None:
                self._write_disk(disk_path, video)
        evicted = self._mem.put(key, video, video_nbytes(video))
        if evicted:
            self._counts.add("n_evicted", evicted)
        return video

    def _write_disk(self, disk_path: Path, video: Any) -> None:
        """Store ``video`` (uint8 frames, uncompressed ``.npz``) and trim the folder to the disk budget."""
        budget = int(self.disk_mb * _MIB)
        if video_nbytes(video) > budget:  # would be trimmed at once
            return
        disk_path.parent.mkdir(parents=True, exist_ok=True)
        meta = {f.name: getattr(video, f.name) for f in dataclasses.fields(video) if f.name != "frames"}
        meta = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in meta.items()}
        meta["path"] = str(meta["path"])
        tmp = disk_path.with_name(disk_path.stem + f".{os.getpid()}.tmp.npz")
        np.savez(tmp, frames=video.frames, meta=np.asarray(json.dumps(meta)))
        if tmp.stat().st_size > budget:
            tmp.unlink(missing_ok=True)
            return
        size = tmp.stat().st_size
        os.replace(tmp, disk_path)
        # a running count (the folder at the last listing + this process's writes since) decides when
        # to list the folder again; past the budget it is trimmed to 90 % so the next listing is ~10 %
        # of the budget's writes away (listing a folder of thousands of clips on every write was slow)
        import time

        now = time.monotonic()
        if self._disk_seen is not None:
            self._disk_seen += size
        if self._disk_seen is None or self._disk_seen > budget or now - self._disk_checked > _DISK_RECHECK_S:
            self._disk_seen = _trim_disk(disk_path.parent, budget, int(0.9 * budget), keep=disk_path)
            self._disk_checked = now

    def draw(self, path: str | os.PathLike, rng: np.random.Generator):
        """A training draw of the clip: here its sampled frames (:meth:`get`); :class:`TimeJitterCache`
        shifts their times by a random phase."""
        return self.get(path)


class TimeJitterCache(FrameCache):
    """A :class:`FrameCache` for training that also moves the sampled times: temporal jitter.

    Each clip is decoded once at ``k`` times the sampling rate (``fps`` and ``max_frames`` times
    ``k``, no short-clip rule); :meth:`draw` then takes the ``n`` frames the normal sampling would
    take, all shifted together by one random phase: frame ``i`` is dense frame
    ``floor((i + (p + 0.5) / k) * M / n)`` for a phase ``p`` in ``0 .. k-1`` (``M`` dense frames),
    so the spacing, the count and the M-RoPE time positions stay those of the normal sampling
    while the training clip shows other moments (the segment sampling of TSN, Wang et al. 2016,
    with one offset for all segments). :meth:`get` returns the normal (centre-of-bin) sampling.
    A clip too short for ``2 n`` dense frames is drawn without jitter (``n_unjittered`` counts them).
    ``memory_mb`` bounds the dense and the normal frames together; ``disk_mb`` as in :class:`FrameCache`.
    """

    def __init__(self, sampling: Any, k: int, disk: bool = True, memory_mb: float = DEFAULT_FRAME_CACHE_MB,
                 disk_mb: float = DEFAULT_FRAME_DISK_CACHE_MB):
        if not (isinstance(k, int) and k >= 2):
            raise ValueError(f"time_jitter={k!r}: the dense factor must be an int >= 2 (1 turns jitter off)")
        dense = dataclasses.replace(sampling, fps=sampling.fps * k,
                                    max_frames=sampling.max_frames * k, tokens_per_second=None)
        super().__init__(dense, disk=disk, memory_mb=memory_mb, disk_mb=disk_mb)
        self.k = k
        # the normal sampling shares the memory budget: memory_mb bounds both together
        self.normal = FrameCache(sampling, disk=disk, memory_mb=memory_mb, disk_mb=disk_mb, _store=self._mem)

    n_unjittered = _counter("n_unjittered")

    def get(self, path: str | os.PathLike):
        return self.normal.get(path)

    def draw(self, path: str | os.PathLike, rng: np.random.Generator):
        """The clip's normal frame count at one random phase (class docstring); ``SampledVideo``."""
        from vqalib.video.frames import num_sampled_frames

        dense = super().get(path)
        n = num_sampled_frames(int(dense.n_source_frames), float(dense.source_fps), self.normal.sampling)
        m = len(dense.indices)
        k = min(self.k, m // n)
        if k < 2:
            self._counts.add("n_unjittered")
            u = 0.5
        else:
            u = (int(rng.integers(0, k)) + 0.5) / k
        sel = np.clip(np.floor((np.arange(n) + u) * m / n).astype(np.int64), 0, m - 1)
        return dataclasses.replace(dense, frames=dense.frames[sel], indices=dense.indices[sel],
                                   timestamps=dense.timestamps[sel])


def frame_cache(cfg: Any, sampling: Any) -> FrameCache:
    """The training frame cache of a config (``vqalib.train.common.CommonConfig``): a
    :class:`TimeJitterCache` when ``augment`` and ``time_jitter > 1``, else a :class:`FrameCache`, with
    the budgets ``frame_cache_mb`` (memory, per process) and ``frame_disk_cache_mb`` (disk)."""
    budgets = dict(memory_mb=cfg.frame_cache_mb, disk_mb=cfg.frame_disk_cache_mb)
    if cfg.augment and cfg.time_jitter > 1:
        return TimeJitterCache(sampling, cfg.time_jitter, **budgets)
    return FrameCache(sampling, **budgets)


#: Rationale modes of a teacher-forced answer. ``full``: the dataset's rationales as written (they
#: name the level, as the paper's rationale prompts require); ``scrubbed``: the same with every
#: sentence that names a level removed (:func:`scrub_rationale`); ``short``: the ticked defects
#: (:func:`short_rationale`); ``none``: score lines only.
RATIONALE_MODES: tuple[str, ...] = ("full", "scrubbed", "short", "none")
#: Modes whose text never names the score: the only ones ASO may read pi_ref after (issue 9).
SCORE_FREE_MODES: tuple[str, ...] = ("scrubbed", "short", "none")

@dataclass(frozen=True)
class Tell:
    """A phrase a rationale template ties to a score level (other than the level keyword itself).

    ``pattern`` is a regular expression matched case-insensitively at word boundaries; ``levels`` are
    the levels the template writes it for (documentation and tests: any match counts as a tell);
    ``source`` names the template and quotes its rule."""

    pattern: str
    levels: tuple[float, ...]
    source: str


_HI = (3.0, 3.5, 4.0, 4.5, 5.0)
_LO = (1.0, 1.5, 2.0, 2.5)

#: Template-level tells of the paper's rationale-expansion prompts (its Figs. 3-6): phrases that the
#: prompt's output template or rating guide writes for some levels only, so a text holding one gives the
#: score (or a range of it) away even with the keyword removed. One table; :func:`score_tells` adds the
#: ones derived from the project's own generator (``vqalib.data.synth``, ``vqalib.schema.prompts``).
PAPER_TELLS: tuple[Tell, ...] = (
    # Fig. 6 (clarity): "(If the clarity score reaches 5, please add: the picture quality reaches 1080p or
    # higher)"; rating guide: 3 "Resolution approximately 720p", 4 "Resolution of 720p or higher", 5 "1080p or higher"
    Tell(r"\d{3,4}\s*p\b(?:\s+or\s+(?:higher|above|more))?", (3.0, 4.0, 5.0),
         "Fig. 6 clarity: 'reaches 1080p or higher' (score 5); guide: '~720p' (3), '720p or higher' (4)"),
    Tell(r"(?:extremely\s+)?(?:low|normal|high)\s+clarity", (1.0, 2.0, 3.0, 4.0),
         "Fig. 6 clarity guide headings: 'Extremely Low Clarity' 1, 'Low Clarity' 2, 'Normal Clarity' 3"),
    Tell(r"(?:extremely\s+)?high[\s-]+definition", (4.0, 5.0),
         "Fig. 6 clarity guide headings: 'High Definition Clarity' 4, 'Extremely High Definition' 5"),
    # Fig. 5 (content): "For videos with a score of 3 or higher, simply indicate that there are no content
    # quality issues"; "Overall Content Quality: ... indicating a lack of/abundance of excellent content"
    Tell(r"no\s+(?:\w+\s+){0,2}quality\s+(?:issues?|problems?)", _HI,
         "Fig. 5 content: 'no content quality issues' for scores >= 3"),
    Tell(r"basic\s+content\s+quality(?:\s+is)?(?:\s+(?:high|low|good|bad|poor|average|normal|fine|ok|okay|excellent"
         r"|acceptable|decent|medium|moderate))", _HI + _LO,
         "Fig. 5 content: 'Foundational Content Quality: Basic content quality (specific level)'"),
    Tell(r"(?:a\s+)?lack(?:ing|s)?\s+(?:of|in)|lacking", _LO,
         "Fig. 5 content 'indicating a lack of ...' / Fig. 4 aesthetic 'lacking ... aesthetics' (low scores)"),
    Tell(r"(?:an\s+)?abundance\s+of|rich\s+in\s+aesthetics?", (4.0, 4.5, 5.0),
         "Fig. 5 content 'abundance of excellent content' / Fig. 4 aesthetic 'rich in aesthetics' (high scores)"),
    Tell(r"(?:serious\s+)?basic\s+quality\s+issues?|obvious\s+bugs?|flaws\s+in\s+the\s+video\s+content", (1.0, 2.0),
         "Fig. 5 content guide headings 1 'Serious Basic Quality Issues and Obvious Bugs', 2 'Flaws in the Video Content'"),
    Tell(r"(?:generally\s+reasonable|quality\s+is\s+average)|(?:extremely\s+)?high\s+content\s+quality", (3.0, 4.0, 5.0),
         "Fig. 5 content guide headings 3 'Generally Reasonable, but the Quality is Average', 4/5 '(Extremely) high content quality'"),
    # Fig. 4 (aesthetic) rating-guide headings
    Tell(r"unattractive\s+image|obvious\s+flaws|poor\s+image\s+aesthetics|lack\s+of\s+visual\s+appeal", (1.0, 2.0),
         "Fig. 4 aesthetic guide headings 1 'Unattractive Image, Obvious Flaws', 2 'Poor Image Aesthetics, Lack of Visual Appeal'"),
    Tell(r"(?:average|good|excellent)\s+visual\s+appeal|normal\s+shooting\s+range|high[\s-]+quality\s+creator"
         r"|cinematic(?:\s*/\s*art\s+film)?(?:\s+level)?|art\s+film\s+level", (3.0, 4.0, 5.0),
         "Fig. 4 aesthetic guide headings 3 'Average visual appeal, within the normal shooting range', "
         "4 'level of a high-quality creator', 5 'cinematic/art film level'"),
    # Fig. 3 (motion): "with 3 being the basic passing score"
    Tell(r"(?:basic\s+)?passing\s+score|(?:basic\s+)?pass(?:ing)?\s+level", (3.0,),
         "Fig. 3 motion: '3 being the basic passing score'"),
)


def _generator_tells() -> tuple[Tell, ...]:
    """Tells of the project's own rationale generator, derived from its phrase table: the sample dataset's
    motion-amplitude sentence (``vqalib.data.synth._AMOUNT``) is chosen by ``amplitude_tag`` of the *level*, so
    it names a range of levels. (Its no-defect sentence ``_GOOD`` is written whenever no tag reached a
    majority - a function of the tags, the evidence the short rationale's "no defects" also keeps - so it
    is not a tell; ``tests/unit/test_tells.py`` checks that every scrubbed generator text depends on the tags only.)"""
    from vqalib.data import synth
    from vqalib.schema.levels import LEVELS

    out = []
    for tag, text in synth._AMOUNT.items():
        lv = tuple(float(v) for v in LEVELS if synth.amplitude_tag(float(v)) == tag)
        out.append(Tell(re.escape(text).replace(r"\ ", r"\s+"), lv,
                        f"vqalib.data.synth._AMOUNT[{tag!r}] (motion amplitude, amplitude_tag of the level)"))
    return tuple(out)


def score_tells() -> tuple[Tell, ...]:
    """All template-level tells :func:`reveals_score` looks for: :data:`PAPER_TELLS` + the generators'."""
    return PAPER_TELLS + _generator_tells()


_SCORE_WORD_RE = None
_SCORE_WORD_RES: dict[Any, re.Pattern] = {}
# a clause ends at . ! ? before white space, a line break, ; or : or a comma before white space
_CLAUSE_SPLIT = re.compile(r"((?<=[.!?])\s+|\n|[;:]\s*|,\s+)")


def _number_pattern(schema: rating.RatingSchema) -> str:
    """A stand-alone number that names one of ``schema``'s levels: its value as written (``"10"``,
    ``"3.5"``), with trailing decimal zeros (``"3.50"``, ``"7.0"``), never part of a longer number."""
    forms = set()
    for v in schema.values:
        text = f"{v:g}"
        forms.add(re.escape(text) + (r"(?:\.0*)?" if "." not in text else "0*"))
    alts = "|".join(sorted(forms, key=len, reverse=True))
    return rf"(?<![\w.])(?:{alts})(?![\w.]|\.\d)"


def _score_word_re(schema: rating.RatingSchema | None = None) -> re.Pattern:
    """The pattern :func:`reveals_score` looks for. The paper's: its level keywords and synonyms
    (``levels.SCORE_WORDS``), the tells, a number 1-5 on the 0.5 grid. Another schema adds its keywords
    and word level strings (``"excellent"``) to the words and reads a number as one of its level values
    (``1``..``10``)."""
    global _SCORE_WORD_RE
    sch = rating.resolve(schema)
    if not sch.is_paper:
        if sch not in _SCORE_WORD_RES:
            from vqalib.schema.levels import SCORE_WORDS

            words = set(SCORE_WORDS) | {w for w in sch.keywords if not re.fullmatch(r"[\d.]+", w)}
            words |= {w for w in sch.strings if not rating._is_number_text(w)}
            alts = "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(words, key=len, reverse=True))
            tells = "|".join(f"(?:{t.pattern})" for t in score_tells())
            _SCORE_WORD_RES[sch] = re.compile(rf"\b(?:{alts})\b|\b(?:{tells})(?!\w)|{_number_pattern(sch)}",
                                              re.IGNORECASE)
        return _SCORE_WORD_RES[sch]
    if _SCORE_WORD_RE is None:
        from vqalib.schema.levels import SCORE_WORDS

        words = sorted(SCORE_WORDS, key=len, reverse=True)
        alts = "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in words)
        tells = "|".join(f"(?:{t.pattern})" for t in score_tells())
        # a level word, a template tell, or a number in [1, 5] standing alone ("3", "3.5", "4/5", "score of 2")
        _SCORE_WORD_RE = re.compile(rf"\b(?:{alts})\b|\b(?:{tells})(?!\w)|(?<![\w.])[1-5](?:\.[05]0*)?(?![\w.]|\.\d)",
                                    re.IGNORECASE)
    return _SCORE_WORD_RE


def reveals_score(text: str, schema: rating.RatingSchema | None = None) -> list[str]:
    """The words of ``text`` that name a score level: a level keyword or synonym
    (``vqalib.schema.levels.SCORE_WORDS``, whole words, any case), a template-level tell (:func:`score_tells`:
    e.g. "reaches 1080p or higher", "no content quality issues", "a lack of") or a stand-alone number
    1–5 (``3``, ``3.5``); under another ``schema`` also its keywords and word levels and a number naming one
    of its levels (:func:`_score_word_re`). Empty list = the text does not give the score away."""
    return [m.group(0) for m in _score_word_re(schema).finditer(text)]


def scrub_rationale(text: str, schema: rating.RatingSchema | None = None) -> str:
    """``text`` with every clause that names a score level removed (:func:`reveals_score`).

    Clauses end at ``.``, ``!``, ``?`` followed by white space, a line break, ``;``, ``:`` or a comma
    followed by white space, so "Clarity Quality is subpar: the video shows blur, so detail is lost."
    keeps "the video shows blur, so detail is lost." Errs towards removal ("good lighting" is dropped
    too, since "Good" is a level keyword). A heading (a clause ending in ``:``, e.g. "Overall Content
    Quality:") is kept only if some clause it introduces is kept, so no stub such as "Overall Content
    Quality." is left. The rest is kept verbatim, so the visual evidence the rationale describes still
    conditions the score; line breaks between kept clauses are kept."""
    parts = _CLAUSE_SPLIT.split(text)
    units, seps = parts[0::2], parts[1::2] + [""]
    # a tell may span clauses ("smooth and stable, with no shake, stutter or flicker"): every clause that
    # overlaps a match found in the whole text goes
    hits = [m.span() for m in _score_word_re(schema).finditer(text)]
    out = ""
    heading = ""  # a kept-back "Name:" clause, written only once a clause it introduces is kept
    pos = 0
    for unit, sep in zip(units, seps):
        start, pos = pos, pos + len(unit) + len(sep)
        end = start + len(unit)
        keep = bool(unit.strip()) and not any(a < end and b > start for a, b in hits)
        if keep and sep.strip().startswith(":") and "\n" not in sep:
            heading = unit + sep  # a later heading replaces one that introduced nothing kept
            continue
        if keep:
            out += heading + unit + sep
            heading = ""
        if "\n" in sep:
            heading = ""
            if not keep and out and not out.endswith("\n"):
                out = out.rstrip(" ;:,") + "\n"
    lines = []
    for line in out.split("\n"):
        line = line.strip().rstrip(";:,").strip()
        if line:
            lines.append(line if line[-1] in ".!?" else line + ".")
    return "\n".join(lines)


def format_scores(scores: dict[str, float], rationales: Any, schema: rating.RatingSchema | None = None) -> str:
    """``vqalib.schema.prompts.format_answer`` of ``scores`` under ``schema``: a dimension absent from
    ``scores`` (a missing label) gets no score line (``allow_missing``); the paper's call with every
    label present is the call it always was."""
    from vqalib.schema.prompts import format_answer

    sch = rating.resolve(schema)
    kw: dict[str, Any] = schema_kw(sch)
    if any(k not in scores for k in sch.keys):
        kw["allow_missing"] = True
    return format_answer(scores, rationales, **kw)


def answer_text(example: ClipExample, rationale: str = "short", schema: rating.RatingSchema | None = None) -> str:
    """The target answer for a clip (``vqalib.schema.prompts.format_answer``) under ``schema`` (default the
    paper's); ``rationale`` is one of :data:`RATIONALE_MODES`. ``full``/``scrubbed`` need the clip's
    rationales (missing ones raise). A dimension the clip has no label for has no score line."""
    if rationale not in RATIONALE_MODES:
        raise ValueError(f"rationale={rationale!r}; use one of {list(RATIONALE_MODES)}")
    if rationale == "none":
        return format_scores(example.scores, None, schema)
    if rationale == "short":
        return format_scores(example.scores, short_rationale(example.tags, schema), schema)
    if not example.rationales:
        raise ValueError(f"clip {example.video_id!r} has no rationales but rationale={rationale!r} was asked; "
                         f"add them to rationales.jsonl or use rationale=short|none")
    if rationale == "scrubbed":
        return format_scores(example.scores, {k: scrub_rationale(v, schema) for k, v in example.rationales.items()},
                             schema)
    return format_scores(example.scores, example.rationales, schema)


#: Where ASO applies its soft target (issue 20). ``score``: at each dimension's score line, after the
#: teacher-forced ``rationale`` text (the paper's reading; with ``rationale: scrubbed`` that text is one the
#: model never writes). ``keyword``: at each dimension's evaluation keyword (Abysmal ... Perfect, one per level)
#: inside the full rationale, where the model commits to the level when it answers; the score line after it
#: is left to the rationale term.
TARGET_POSITIONS: tuple[str, ...] = ("score", "keyword")
_KEYWORD_RE = None
_KEYWORD_RES: dict[Any, re.Pattern] = {}


def _keyword_re(schema: rating.RatingSchema | None = None) -> re.Pattern:
    """The evaluation keywords of ``schema``'s levels as whole words, any case (the paper's: Abysmal ... Perfect)."""
    global _KEYWORD_RE
    sch = rating.resolve(schema)
    if not sch.is_paper:
        if sch not in _KEYWORD_RES:
            words = sorted(sch.keywords, key=len, reverse=True)
            _KEYWORD_RES[sch] = re.compile(r"(?<![\w.])(" + "|".join(re.escape(w) for w in words) + r")(?![\w]|\.\d)",
                                           re.IGNORECASE)
        return _KEYWORD_RES[sch]
    if _KEYWORD_RE is None:
        from vqalib.schema.levels import KEYWORDS

        _KEYWORD_RE = re.compile(r"\b(" + "|".join(re.escape(w) for w in KEYWORDS.values()) + r")\b", re.IGNORECASE)
    return _KEYWORD_RE


def keyword_spans(example: ClipExample, schema: rating.RatingSchema | None = None) -> list[tuple[int, int, float, bool] | None]:
    """Where each dimension's evaluation keyword sits in ``answer_text(example, "full", schema)``: per dimension
    in ``schema``'s order (default the paper's five), with its keywords, ``(start, end, level, capitalised)`` (character span in the answer, the level the
    keyword names, whether it is written with a capital) or ``None`` when that dimension's rationale holds no
    keyword. The **last** keyword of the dimension's paragraph counts (the paper's templates put the overall
    keyword at the end; the sample data has one). Raises (like :func:`answer_text`) without rationales."""
    if not example.rationales:
        raise ValueError(f"clip {example.video_id!r} has no rationales; target_position=keyword needs the full "
                         f"rationales (they hold the evaluation keyword)")
    sch = rating.resolve(schema)
    level_of = {w.lower(): float(v) for v, w in zip(sch.values, sch.keywords)}
    rk = {k: str(v).strip() for k, v in example.rationales.items()}
    out: list[tuple[int, int, float, bool] | None] = []
    offset = 0
    for k in sch.keys:
        para = rk.get(k, "")
        if not para:
            out.append(None)
            continue
        hits = list(_keyword_re(schema).finditer(para))
        if hits:
            m = hits[-1]
            out.append((offset + m.start(), offset + m.end(), level_of[m.group(0).lower()], m.group(0)[0].isupper()))
        else:
            out.append(None)
        offset += len(para) + 1  # paragraphs are joined by one line break (prompts.format_answer)
    return out


def keyword_token_ids(tokenizer, capitalised: bool = False, schema: rating.RatingSchema | None = None) -> list[tuple[int, ...]]:
    """Token ids of the schema's K keywords (the paper's nine) as written inside a sentence (``" subpar"``, or ``" Subpar"`` with
    ``capitalised=True``), in level order: the level set the keyword target scores, by the same
    shared-prefix tree as the level strings (``vqalib.method.distributions.level_logprobs_raw``). Checks that each
    tokenises the same alone and after "is" (raises naming the keyword otherwise)."""
    out = []
    pre = tokenizer.encode("The quality is", add_special_tokens=False)
    for w in rating.resolve(schema).keywords:
        w = w if capitalised else w.lower()
        alone = tuple(tokenizer.encode(" " + w, add_special_tokens=False))
        ctx = tokenizer.encode("The quality is " + w + ".", add_special_tokens=False)
        if ctx[:len(pre)] != pre or tuple(ctx[len(pre):len(pre) + len(alone)]) != alone:
            raise ValueError(f"keyword {w!r} tokenises differently alone and inside a sentence; the keyword target "
                             f"cannot score it exactly")
        out.append(alone)
    return out


def keyword_positions(tokenizer, answers: Sequence[str], examples: Sequence[ClipExample], prompt_lengths: Sequence[int],
                      length: int, schema: rating.RatingSchema | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token index (in the left-padded batch of :func:`vqalib.model.inputs.build_batch`, width ``length``) of each
    dimension's keyword's first token: ``(positions [B, D], capitalised [B, D] bool)``, -1 where none."""
    n_dims = rating.resolve(schema).n_dims
    pos = torch.full((len(answers), n_dims), -1, dtype=torch.long)
    cap = torch.zeros((len(answers), n_dims), dtype=torch.bool)
    for b, (text, ex) in enumerate(zip(answers, examples)):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offs = enc["offset_mapping"]
        off = length - (prompt_lengths[b] + len(enc["input_ids"]) + 1)
        for d, span in enumerate(keyword_spans(ex, schema)):
            if span is None:
                continue
            start = span[0]
            j = next((i for i, (a, e) in enumerate(offs) if e > a and a in (start, start - 1) and e > start), -1)
            if j >= 0:
                pos[b, d] = prompt_lengths[b] + j + off
                cap[b, d] = span[3]
    return pos, cap


class VideoCollator:
    """Turns a list of :class:`ClipExample` into a model batch via ``vqalib.model.inputs.build_batch``.

    ``with_answers=True`` (SFT, ASO): the target answer is appended and ``labels`` mark its tokens.
    ``with_answers=False`` (GRPO): prompt only, ready for ``generate``; ``repeat`` copies each clip
    that many times (the G completions of a group are adjacent, prompt-major).
    Extra keys (D = the schema's dimensions, 5 for the paper's; K its levels): ``targets`` [B, D] float
    (NaN where the clip has no label), ``label_mask`` [B, D] bool (True where it has one), ``video_ids``
    list[str], with ``with_raters=True`` the raters' scores ``rater_scores`` [B, D, R_max] (NaN-padded)
    for the multi-rater reward, and under a ``gaussian``/``histogram`` schema ``soft_targets`` [B, D, K]
    (all removed before the model call). ``schema`` (default the paper's): the dimensions, level strings
    and score positions of the answers (:func:`answer_text`, ``build_batch(schema=)``)."""

    def __init__(self, processor: Any, cache: FrameCache, *, with_answers: bool = True, augment: bool = False,
                 rationale: str = "short", repeat: int = 1, seed: int = 0, instruction: str = "",
                 with_raters: bool = False, keywords: bool = False, schema: rating.RatingSchema | None = None):
        self.schema = rating.resolve(schema)
        self.processor = processor
        self.keywords = keywords  # add keyword_positions / keyword_capitalised [B, 5] (target_position=keyword)
        self.cache = cache
        self.with_answers = with_answers
        self.augment = augment
        self.rationale = rationale
        self.repeat = repeat
        self.seed = seed
        self.instruction = instruction or None
        self.with_raters = with_raters

    def __call__(self, examples: Sequence[ClipExample]) -> dict[str, Any]:
        from vqalib.model.inputs import build_batch

        videos, answers, ids, targets = [], [], [], []
        # augmentation randomness is drawn from torch's RNG, which the Trainer saves in checkpoints and
        # restores on resume, so a resumed run sees the same augmentations as an uninterrupted one
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,)).item())) if self.augment else None
        for ex in examples:
            if self.augment:
                video = augment_video(self.cache.draw(ex.path, rng), rng)
            else:
                video = self.cache.get(ex.path)
            for _ in range(self.repeat):
                videos.append(video)
                ids.append(ex.video_id)
                targets.append(ex.targets(self.schema))
                if self.with_answers:
                    answers.append(answer_text(ex, self.rationale, self.schema))
        built = build_batch(self.processor, videos, answers if self.with_answers else None,
                            instruction=self.instruction, **schema_kw(self.schema))
        batch = dict(built)
        batch["score_positions"] = built.score_positions  # [B, D] first token of each score, -1 if none
        batch["targets"] = torch.tensor(targets, dtype=torch.float32)
        batch["label_mask"] = label_mask(examples, self.repeat, self.schema)
        batch["video_ids"] = ids
        if self.schema.target_rule != "nearest":
            batch["soft_targets"] = soft_targets(examples, self.repeat, self.schema)
        if self.with_raters:
            batch["rater_scores"] = rater_scores(examples, self.repeat, self.schema)
        if self.keywords and self.with_answers:
            exs = [ex for ex in examples for _ in range(self.repeat)]
            batch["keyword_positions"], batch["keyword_capitalised"] = keyword_positions(
                self.processor.tokenizer, answers, exs, built.prompt_lengths, int(built["input_ids"].shape[1]),
                self.schema)
        return batch


#: Keys the collator adds that the model must not receive.
NON_MODEL_KEYS: tuple[str, ...] = ("targets", "video_ids", "labels", "answer_mask", "score_positions", "rater_scores",
                                   "keyword_positions", "keyword_capitalised", "label_mask", "soft_targets")


def model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    """The part of a collated batch the model's forward takes."""
    return {k: v for k, v in batch.items() if k not in NON_MODEL_KEYS}
