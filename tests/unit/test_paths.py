"""Relative paths: every library function takes them from the project root, writers and readers
alike, and command-line options take them from the working directory.

Before the fix, ``generate_dataset("data/x")`` and ``save_dataset(ds, "data/x")`` wrote below the
working directory while ``load_dataset("data/x")`` read below the project root, so in a JupyterLab
kernel (working directory ``notebooks/``) or a script run from elsewhere the folder just written
was "not found"; ``from_ratings_csv``, the label-file readers and the scorer's video lists also
took the working directory. The command line had the mirror problem: ``train --config my.yaml``
and ``run-notebooks --run-dir`` looked below the project root, not where the user typed them.
Generating the smoke set from another working directory: ``tests/integration/test_sample_generation.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vqalib.core.runs as runs
from vqalib.data.dataset import from_ratings_csv, load_dataset, save_dataset
from vqalib.data.synth import write_mp4


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A project root and a different working directory; the real cache stays in use. The modules are
    imported before the patch, so none can keep the patched ``project_root`` after the test."""
    import vqalib.cli  # noqa: F401
    import vqalib.model.loading  # noqa: F401
    import vqalib.data.mos  # noqa: F401
    import vqalib.train.cli  # noqa: F401

    monkeypatch.setenv("VQALIB_CACHE", str(runs.cache_dir()))
    root, cwd = tmp_path / "project", tmp_path / "elsewhere"
    root.mkdir()
    cwd.mkdir()
    monkeypatch.setattr(runs, "project_root", lambda: root)
    monkeypatch.chdir(cwd)
    return root, cwd


def test_ratings_csv_and_save_dataset_round_trip_from_another_directory(elsewhere):
    root, cwd = elsewhere
    clips = [f"c{i}" for i in range(4)]
    for c in clips:
        (root / "media").mkdir(exist_ok=True)
        write_mp4(root / "media" / f"{c}.mp4", np.full((4, 16, 16, 3), 90, dtype=np.uint8), fps=8)
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"clip": clips, **{f"r{r}_sharpness": rng.integers(1, 6, len(clips)) for r in range(3)}})
    (root / "tables").mkdir()
    table.to_csv(root / "tables" / "study.csv", index=False)
    ds = from_ratings_csv("tables/study.csv", video_col="clip", column_pattern=r"(?P<rater>r\d)_(?P<dimension>\w+)",
                          dimension_map={"sharpness": "clarity_quality"}, video_dir="media",
                          path_template="{video}.mp4")
    saved = save_dataset(ds, "data/mine")
    assert saved == root / "data" / "mine" and not (cwd / "data").exists()
    back = load_dataset("data/mine")
    assert len(back.ratings) == 12 and Path(back.video_path("c0")) == root / "media" / "c0.mp4"


def test_video_lists_predictions_and_scores_read_from_the_project_root(elsewhere):
    from vqalib.inference.sources import list_videos
    from vqalib.inference.store import read_scores
    from vqalib.eval.predictions_file import manifest_path

    root, _ = elsewhere
    (root / "clips").mkdir()
    write_mp4(root / "clips" / "a.mp4", np.zeros((4, 16, 16, 3), dtype=np.uint8), fps=8)
    assert list_videos("clips")["path"].tolist() == [str(root / "clips" / "a.mp4")]
    assert list_videos("clips/*.mp4")["path"].tolist() == [str(root / "clips" / "a.mp4")]
    assert manifest_path("runs/x/predictions/base.jsonl") == root / "runs/x/predictions/base.manifest.json"
    pd.DataFrame({"video_id": ["a"], "path": ["clips/a.mp4"], "status": ["ok"]}).to_csv(root / "s.csv", index=False)
    assert read_scores("s.csv")["video_id"].tolist() == ["a"]


def test_label_files_and_video_folders_of_a_benchmark_from_the_project_root(elsewhere):
    from vqalib.data.mos import load_benchmark, read_label_file

    root, _ = elsewhere
    (root / "konvid" / "videos").mkdir(parents=True)
    write_mp4(root / "konvid" / "videos" / "123.mp4", np.zeros((4, 16, 16, 3), dtype=np.uint8), fps=8)
    (root / "konvid" / "KoNViD_1k_mos.csv").write_text("flickr_id,mos\n123,3.5\n456,2.0\n")
    assert read_label_file("konvid/KoNViD_1k_mos.csv")["mos"].tolist() == [3.5, 2.0]
    bench = load_benchmark("KoNViD-1k", "konvid/videos", label_file="konvid/KoNViD_1k_mos.csv")
    assert bench.available["path"].map(str).tolist() == [str(root / "konvid" / "videos" / "123.mp4")]
    assert len(bench.missing) == 1


def test_cli_path_expands_home_and_keeps_absolute_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert runs.cli_path("~/v.mp4") == str(tmp_path / "v.mp4")
    assert runs.cli_path("/abs/v.mp4") == "/abs/v.mp4"
    assert runs.cli_path("clips/*.mp4") == os.path.join(str(tmp_path), "clips/*.mp4")


def test_model_folders_from_the_project_root_and_a_clear_error_for_a_missing_one(elsewhere):
    """``MODEL="runs/x/checkpoints/sft"`` in a kernel started in ``notebooks/`` (or a script elsewhere)
    loads the project's checkpoint; before, the folder was looked up in the working directory and the
    path went to the hub as a repo id ("Repo id must be in the form ...")."""
    from vqalib.model.loading import resolve_model_path

    root, _ = elsewhere
    (root / "runs" / "x" / "checkpoints" / "sft").mkdir(parents=True)
    assert resolve_model_path("runs/x/checkpoints/sft") == str(root / "runs" / "x" / "checkpoints" / "sft")
    with pytest.raises(FileNotFoundError, match=r"model folder .*runs/x/checkpoints/aso not found .*project root"):
        resolve_model_path("runs/x/checkpoints/aso")
    with pytest.raises(FileNotFoundError, match="model folder"):
        resolve_model_path("./my_model")
    assert resolve_model_path("Qwen/Qwen2.5-VL-7B-Instruct") == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert resolve_model_path("gpt2") == "gpt2"


def test_a_model_folder_only_in_the_working_directory_is_named_not_sent_to_the_hub(elsewhere, capsys):
    from vqalib.cli import main
    from vqalib.model.loading import resolve_model_path

    root, cwd = elsewhere
    (cwd / "out" / "sft").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"project/out/sft not found: relative paths are taken from the project "
                                                r"root, and .*elsewhere/out/sft is in the working directory"):
        resolve_model_path("out/sft")
    # the command line takes it from the working directory; a missing path is a clean error, not a traceback
    (cwd / "clips").mkdir()
    write_mp4(cwd / "clips" / "a.mp4", np.zeros((4, 16, 16, 3), dtype=np.uint8), fps=8)
    assert main(["score", "clips", "-o", "s.csv", "--model", "no/such/model", "--no-progress"]) == 2
    assert "error: model folder" in capsys.readouterr().err
    # a mistyped video folder: the list error, not a traceback
    assert main(["score", "clipz", "-o", "s.csv", "--model", "tiny", "--no-progress"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {cwd / 'clipz'}: no such folder, file or glob pattern")


def test_a_missing_relative_path_says_where_it_was_looked_for(elsewhere):
    """Every reader's not-found error names the rule when the path was relative (a user in another
    folder otherwise sees only an absolute path under the checkout), and stays as it was for an
    absolute path."""
    from vqalib.inference.sources import VideoListError, list_videos
    from vqalib.data.mos import LabelFileError, read_label_file
    from vqalib.eval.predictions_file import PredictionsError, read_predictions

    root, cwd = elsewhere
    note = r"\(a relative path is taken from the project root .*project, not the working directory\)"
    (cwd / "my_scores.csv").write_text("clip;r1_sharpness\nc0;3\n")  # where the user is, not where vqalib looks
    with pytest.raises(FileNotFoundError, match=r"ratings CSV .*project/my_scores.csv does not exist " + note):
        from_ratings_csv("my_scores.csv", video_col="clip")
    with pytest.raises(LabelFileError, match=r"KoNViD_1k_mos.csv: label file not found " + note):
        read_label_file("KoNViD_1k_mos.csv")
    with pytest.raises(PredictionsError, match=r"sft.jsonl: predictions file not found " + note):
        read_predictions("runs/demo/predictions/sft.jsonl")
    with pytest.raises(VideoListError, match=r"no such folder, file or glob pattern " + note):
        list_videos("my_clips")
    with pytest.raises(VideoListError, match=r"no file matches the pattern .* " + note):
        list_videos("my_clips/*.mp4")
    with pytest.raises(FileNotFoundError) as absolute:
        from_ratings_csv(str(cwd / "other.csv"), video_col="clip")
    assert "relative path" not in str(absolute.value)
