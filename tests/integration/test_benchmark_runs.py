"""The benchmark runner end to end on five generated clips named like KoNViD videos with an official
``KoNViD_1k_mos.csv``: the tiny model scores them, Table 2's row comes back, and the same through
``python -m vqalib benchmark`` (a subprocess with a timeout). The label-file readers themselves are
unit tests (``tests/unit/test_benchmarks.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model_helpers import write_clip
from vqalib.inference.benchmark import format_row, run_benchmark, table2

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def konvid_like(tmp_path_factory):
    """Five generated clips named like KoNViD videos, with an official KoNViD_1k_mos.csv (one listed clip absent)."""
    d = tmp_path_factory.mktemp("konvid")
    vids = d / "KoNViD_1k_videos"
    vids.mkdir()
    ids = [1001, 1002, 1003, 1004, 1005]
    for i, v in enumerate(ids):
        write_clip(vids / f"{v}.mp4", n_frames=12 + 4 * i, seed=i)
    (d / "KoNViD_1k_mos.csv").write_text("flickr_id,mos\n" + "".join(f"{v},{1.5 + 0.6 * i:.2f}\n" for i, v in
                                                                       enumerate(ids + [9999])))
    return vids


def test_run_benchmark_table2_row(konvid_like, tmp_path):
    table, info = run_benchmark("KoNViD", konvid_like, "tiny", output=tmp_path / "s.csv", n_boot=50,
                                combinations=("mean_quality", "clarity_quality"))
    assert info["bench"].label_file.name == "KoNViD_1k_mos.csv"  # found beside the videos
    row = table.iloc[0]
    assert (row["n"], row["n_found"], row["n_missing"], row["n_listed"]) == (5, 5, 1, 6)
    assert np.isfinite(row["SRCC"]) and -1 <= row["SRCC"] <= 1
    assert row["SRCC low"] <= row["SRCC"] <= row["SRCC high"]
    assert "found 5/6" in format_row(row)
    # the same numbers from the scores file through table2 directly
    from vqalib.inference.scorer import to_prediction_rows

    again = table2(info["bench"], {"tiny": to_prediction_rows(pd.read_csv(tmp_path / "s.csv"))}, n_boot=50)
    assert again.iloc[0]["SRCC"] == pytest.approx(row["SRCC"])


def test_benchmark_cli(konvid_like, tmp_path):
    out = subprocess.run([sys.executable, "-m", "vqalib", "benchmark", "KoNViD", "--videos", str(konvid_like),
                          "--labels", str(konvid_like.parent / "KoNViD_1k_mos.csv"), "--model", "tiny", "--n-boot", "20",
                          "-o", str(tmp_path / "b.csv"), "--no-progress", "--num-workers", "0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "SRCC" in out.stdout and "found 5/6" in out.stdout


def test_benchmark_cli_exits_1_when_videos_fail_to_decode_and_lists_them(tmp_path, capsys):
    """As score does: the failures are listed, the table still comes, and the exit status says so."""
    from vqalib.cli import main

    vids = tmp_path / "videos"
    vids.mkdir()
    for i, v in enumerate([2001, 2002, 2003]):
        write_clip(vids / f"{v}.mp4", n_frames=8, seed=i)
    (vids / "2004.mp4").write_bytes(b"")  # a broken download
    labels = tmp_path / "KoNViD_1k_mos.csv"
    labels.write_text("flickr_id,mos\n2001,1.5\n2002,2.5\n2003,3.5\n2004,4.0\n")
    rc = main(["benchmark", "KoNViD", "--videos", str(vids), "--labels", str(labels), "--model", "tiny",
               "--n-boot", "10", "-o", str(tmp_path / "s.csv"), "--no-progress", "--num-workers", "0",
               "--device", "cpu"])
    out, err = capsys.readouterr()
    assert rc == 1 and "FAILED" in out and "2004.mp4" in out and "1 video(s) failed to decode" in err
    assert "decode failed 1" in out  # the Table 2 row counts it


def test_benchmark_cli_refuses_an_unknown_split_before_loading_a_model(tmp_path, capsys, monkeypatch):
    from vqalib import cli

    monkeypatch.setattr(cli, "_make_scorer", lambda args: pytest.fail("the model was loaded before the labels"))
    rc = cli.main(["benchmark", "LSVQ", "--videos", str(tmp_path), "--split", "val", "--model", "tiny"])
    assert rc == 2 and "unknown split 'val'" in capsys.readouterr().err
