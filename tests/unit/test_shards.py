"""Sharded scoring without a model or processes (``vqalib.inference.shards``): part files folded into the
output in the listed order, a killed rank's part kept for the next run, parts of another model refused.
The 2-process runs under ``torchrun``: ``tests/system/test_sharded_scoring.py``."""

from __future__ import annotations

import pytest

from vqalib.inference import shards
from vqalib.inference.store import ResumeMismatch, RowStore, read_scores

COLS = ["video_id", "path", "status", "expected_motion_quality"]
MANIFEST = {"model": "tiny", "mode": "fast", "sampling": {"fps": 2.0}}


def write_part(output, rank, n, rows, manifest=MANIFEST):
    store = RowStore(shards.part_path(output, rank, n), COLS, manifest)
    store.open()
    store.append([dict(zip(COLS, r)) for r in rows])
    store.close()


def row(i, status="ok"):
    return (f"v{i}", f"/clips/v{i}.mp4", status, 1.0 + i / 10)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_parts_fold_into_the_output_in_the_listed_order(tmp_path, suffix):
    out = tmp_path / f"scores{suffix}"
    write_part(out, 0, 2, [row(0), row(2), row(4)])  # rank r scored listed videos r, r + 2, ...
    write_part(out, 1, 2, [row(1), row(3)])
    assert [p.name for p in shards.leftover_parts(out)] == [f"rank0-of-2{suffix}", f"rank1-of-2{suffix}"]
    order = [f"/clips/v{i}.mp4" for i in range(5)]
    assert shards.fold_parts(out, COLS, MANIFEST, order=order) == 5
    got = read_scores(out)
    assert got["video_id"].tolist() == [f"v{i}" for i in range(5)]
    assert got["expected_motion_quality"].tolist() == pytest.approx([1.0, 1.1, 1.2, 1.3, 1.4])
    assert not shards.part_dir(out).exists()  # parts are gone once folded


def test_rows_already_in_the_output_stay_first_and_a_retried_video_counts_once(tmp_path):
    out = tmp_path / "scores.csv"
    first = RowStore(out, COLS, MANIFEST)
    first.open()
    first.append([dict(zip(COLS, row(0))), dict(zip(COLS, row(1, "decode_error")))])
    write_part(out, 0, 2, [row(2)])
    write_part(out, 1, 2, [row(1)])  # tried again, ok now
    shards.fold_parts(out, COLS, MANIFEST, order=[f"/clips/v{i}.mp4" for i in range(3)])
    from vqalib.inference.store import last_row_per_video

    got = last_row_per_video(read_scores(out))
    assert got["video_id"].tolist() == ["v0", "v1", "v2"] and (got["status"] == "ok").all()


def test_a_killed_ranks_part_is_kept_until_the_next_run_folds_it(tmp_path):
    out = tmp_path / "scores.csv"
    write_part(out, 1, 4, [row(1), row(5)])  # a 4-process run died; rank 1 had written two rows
    assert not out.exists()
    assert shards.fold_parts(out, COLS, MANIFEST) == 2  # the next run (any number of processes) starts here
    assert read_scores(out)["video_id"].tolist() == ["v1", "v5"]


def test_an_unfinished_parquet_part_is_folded_from_its_journal(tmp_path):
    out = tmp_path / "scores.parquet"
    store = RowStore(shards.part_path(out, 0, 2), COLS, MANIFEST)
    store.open()
    store.append([dict(zip(COLS, row(3)))])  # killed before close(): only the journal exists
    assert not shards.part_path(out, 0, 2).exists() and shards.leftover_parts(out) == [shards.part_path(out, 0, 2)]
    assert shards.fold_parts(out, COLS, MANIFEST) == 1
    assert read_scores(out)["video_id"].tolist() == ["v3"]


def test_a_part_written_with_other_settings_is_refused_naming_it(tmp_path):
    out = tmp_path / "scores.csv"
    write_part(out, 0, 2, [row(0)], manifest={**MANIFEST, "model": "other"})
    with pytest.raises(ResumeMismatch, match=r"rank0-of-2\.csv .*model='other'"):
        shards.fold_parts(out, COLS, MANIFEST)
    assert shards.part_path(out, 0, 2).is_file() and not out.exists()  # nothing moved, nothing lost


def test_without_a_launcher_the_run_is_one_process_and_touches_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert shards.world() == (0, 1)
    import torch.distributed as dist

    assert not dist.is_initialized()


def test_part_paths_name_rank_and_size_beside_the_output(tmp_path):
    assert shards.part_path(tmp_path / "a.jsonl", 3, 8) == tmp_path / "a.jsonl.parts" / "rank3-of-8.jsonl"
