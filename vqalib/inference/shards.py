"""Scoring over several processes: ``torchrun --nproc_per_node N -m vqalib score VIDEOS -o scores.csv``.

Under a launcher (``torchrun``, ``accelerate launch``; ``WORLD_SIZE`` > 1), :meth:`Scorer.score
<vqalib.inference.scorer.Scorer.score>` runs :func:`score_sharded`:

1. Rank 0 checks the output (suffix, model and mode of an existing one), takes its lock
   (:func:`vqalib.inference.store.acquire_lock`: a second run on the same output is refused, naming the
   first) and folds any part files a killed run left (:func:`fold_parts`) into the output. An error
   there is raised on every rank.
2. Every rank skips the videos the output already holds with status ok, and scores its shard, every
   N-th listed video from its rank (:func:`vqalib.core.distributed.shard`), into its own part file
   ``<output>.parts/rank<r>-of-<N><suffix>``, appended batch by batch as a one-process run does.
3. After a barrier, rank 0 appends the part rows to the output **in the order the videos were listed**
   and removes the parts. The output then holds the rows a one-process run writes, in the same order;
   only the timing and batch columns differ. Every rank returns the merged rows and the summed counts.

A rank killed mid-run leaves its part; the next run (any number of processes, one included) folds it
into the output first, so those videos are skipped: resume works per rank. Without an output, each rank
scores its shard and the rows are gathered to every rank.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from vqalib.core.runs import resolve_path


def world() -> tuple[int, int]:
    """``(rank, number of processes)``: ``(0, 1)`` without a launcher (the distributed state is not touched)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    from vqalib.core.distributed import num_processes, process_index

    return process_index(), num_processes()


def part_dir(output: str | os.PathLike) -> Path:
    """``<output>.parts/``: where the ranks of a sharded run write their part files."""
    p = resolve_path(output)
    return p.with_name(p.name + ".parts")


def part_path(output: str | os.PathLike, rank: int, n: int) -> Path:
    """``<output>.parts/rank<rank>-of-<n><suffix>``: rank ``rank``'s part file of an ``n``-process run."""
    p = resolve_path(output)
    return part_dir(p) / f"rank{rank}-of-{n}{p.suffix}"


def leftover_parts(output: str | os.PathLike) -> list[Path]:
    """Part files (or unfinished Parquet journals) left beside ``output`` by an earlier run, sorted."""
    d, suffix = part_dir(output), resolve_path(output).suffix
    if not d.is_dir():
        return []
    found = {p for p in d.glob(f"rank*-of-*{suffix}")}
    found |= {p.with_name(p.name[: -len(".partial.jsonl")]) for p in d.glob(f"rank*-of-*{suffix}.partial.jsonl")}
    return sorted(found)


def remove_parts(output: str | os.PathLike) -> None:
    """Delete ``<output>.parts/`` and everything in it (part files, their manifests, journals)."""
    shutil.rmtree(part_dir(output), ignore_errors=True)


def fold_parts(output: str | os.PathLike, columns: Sequence[str], manifest: dict[str, Any],
               order: Sequence[str] | None = None) -> int:
    """Append the rows of every part file beside ``output`` to it, then remove the parts; returns the number
    of rows moved. ``order`` (video paths) sorts the part rows (paths not in it go last, in file order);
    the caller holds the output's lock.

    Raises :class:`vqalib.inference.store.ResumeMismatch` naming the part when a part was written with
    other settings (model, mode, sampling, ...) than ``manifest``: its rows would not be comparable."""
    from vqalib.inference.store import ResumeMismatch, RowStore, manifest_mismatch, read_scores, show

    parts = leftover_parts(output)
    if not parts:
        remove_parts(output)
        return 0
    frames = []
    for p in parts:
        diff = manifest_mismatch(p, manifest)
        if diff:
            k, old, new = diff
            raise ResumeMismatch(f"{p} (a part of an earlier sharded run) was written with {k}={show(k, old)}, this "
                                 f"run has {show(k, new)}; rerun with the earlier settings to finish it, or pass overwrite "
                                 "(--overwrite) to start again")
        frames.append(read_scores(p))
    rows = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else None
    n = 0
    if rows is not None:
        if order is not None:
            rank = {str(v): i for i, v in enumerate(order)}
            key = rows["path"].astype(str).map(lambda v: rank.get(v, len(rank)))
            rows = rows.iloc[key.argsort(kind="stable").to_numpy()].reset_index(drop=True)
        store = RowStore(output, columns, manifest)
        store.open()
        store.append([{c: r.get(c) for c in columns} for r in rows.to_dict("records")])
        store.close()
        n = len(rows)
    remove_parts(output)
    return n


def existing_rows(output: Path, columns: Sequence[str]) -> pd.DataFrame:
    """The rows already in ``output`` (last row per video), or an empty frame with ``columns`` when none."""
    from vqalib.inference.store import last_row_per_video, read_scores

    journal = output.with_name(output.name + ".partial.jsonl")
    if output.is_file() or (output.suffix == ".parquet" and journal.is_file()):
        return last_row_per_video(read_scores(output))
    return pd.DataFrame(columns=list(columns))


def _raise_everywhere(exc: BaseException | None) -> None:
    """Rank 0's exception (or None), raised on every rank."""
    from vqalib.core.distributed import broadcast_from_main

    exc = broadcast_from_main(exc)
    if exc is not None:
        raise exc


def score_sharded(scorer, items: pd.DataFrame, output: str | os.PathLike | None, *, progress: bool,
                  overwrite: bool, t_start: float | None = None):
    """Score ``items`` (``video_id, path``) with ``scorer`` on every rank of a launched run (module docstring).

    Returns a :class:`vqalib.inference.scorer.ScoreRun` on every rank: the merged rows of the output (or the
    gathered rows without one) and the counts summed over the ranks."""
    import torch.distributed as dist

    from vqalib.core.distributed import shard, wait_for_everyone
    from vqalib.inference.store import acquire_lock, check_output, release_lock, remove_output

    t_start = time.perf_counter() if t_start is None else t_start
    rank, n = world()
    mine = pd.DataFrame(shard(items.to_dict("records"), rank, n), columns=items.columns)
    if output is None:
        run = scorer._score(mine, None, progress and rank == 0, False, t_start)
        parts: list[Any] = [None] * n
        dist.all_gather_object(parts, run)
        rows = pd.concat([r.rows for r in parts if len(r.rows)], ignore_index=True)
        order = {str(p): i for i, p in enumerate(items["path"])}
        rows = rows.iloc[rows["path"].astype(str).map(order).argsort(kind="stable").to_numpy()]
        return _summed(type(run), parts, rows.reset_index(drop=True), None, len(items), t_start)
    out = resolve_path(output)
    lock, err = None, None
    if rank == 0:
        try:
            check_output(out, scorer.resume_settings(), overwrite)
            lock = acquire_lock(out)
            if overwrite:
                remove_output(out)
                remove_parts(out)
            fold_parts(out, scorer.columns, scorer.manifest())
        except Exception as exc:  # noqa: BLE001 - raised again below, on every rank
            err = exc
    try:
        _raise_everywhere(err)
        prior = existing_rows(out, scorer.columns)
        run = scorer._score(mine, part_path(out, rank, n), progress and rank == 0, True, t_start, prior=prior)
        parts = [None] * n
        dist.all_gather_object(parts, run.__class__(pd.DataFrame(), None, run.n_listed, run.n_skipped, run.n_scored,
                                                    run.n_failed, run.failures, run.wall_s, run.n_retried))
        wait_for_everyone()
        err = None
        if rank == 0:
            try:
                fold_parts(out, scorer.columns, {**scorer.manifest(), "processes": n}, order=list(items["path"]))
            except Exception as exc:  # noqa: BLE001
                err = exc
        _raise_everywhere(err)
    finally:
        release_lock(lock)
    wait_for_everyone()
    return _summed(type(run), parts, existing_rows(out, scorer.columns), out, len(items), t_start)


def _summed(cls, runs: list, rows: pd.DataFrame, output, n_listed: int, t_start: float):
    """One :class:`ScoreRun` from the ranks' runs: counts summed, failures in rank order."""
    return cls(rows, Path(output) if output else None, n_listed, sum(r.n_skipped for r in runs),
               sum(r.n_scored for r in runs), sum(r.n_failed for r in runs),
               [f for r in runs for f in r.failures], time.perf_counter() - t_start,
               n_retried=sum(r.n_retried for r in runs))
