"""Official benchmark label files (written in tmp dirs in the authors' formats) and the benchmark runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model_helpers import write_clip
from vqalib.inference.benchmark import format_row, run_benchmark, table2
from vqalib.data.mos import LabelFileError, find_label_file, load_benchmark, read_label_file

ROOT = Path(__file__).resolve().parents[2]


def test_konvid_mos_csv(tmp_path):
    p = tmp_path / "KoNViD_1k_mos.csv"
    p.write_text("flickr_id,mos\n10053703034,3.46\n5115335471,2.16\n3339962845,4.64\n")
    df = read_label_file(p)
    assert df.attrs["benchmark"] == "KoNViD"
    assert list(df["relative_path"]) == ["10053703034.mp4", "5115335471.mp4", "3339962845.mp4"]
    assert np.allclose(df["mos"], [3.46, 2.16, 4.64])
    att = tmp_path / "KoNViD_1k_attributes.csv"
    att.write_text("file_name,flickr_id_x,MOS,SD\n10053703034.mp4,1,3.46,0.7\n")
    assert read_label_file(att)["video_id"].tolist() == ["10053703034"]


def test_lsvq_release_csv(tmp_path):
    p = tmp_path / "labels_test_1080p.csv"
    p.write_text("name,p1,p2,p3,height,width,mos_p1,mos_p2,mos_p3,mos,frame_number,fn_last_frame\n"
                 "yfcc-batch1/722,a,b,c,1080,1920,70,71,72,78.77,240,239\n"
                 "yfcc-batch2/722,a,b,c,1080,1920,60,61,62,49.6,300,299\n")
    df = read_label_file(p)
    assert df.attrs["benchmark"] == "LSVQ"
    assert list(df["relative_path"]) == ["yfcc-batch1/722.mp4", "yfcc-batch2/722.mp4"]
    assert list(df["video_id"]) == ["yfcc-batch1/722", "yfcc-batch2/722"]  # the stems repeat
    assert list(df["frame_number"]) == [240, 300]


def test_live_vqc_data_mat(tmp_path):
    from scipy.io import savemat

    names = np.empty((3, 1), dtype=object)
    for i, n in enumerate(["A001.mp4", "A002.mp4", "B103.mp4"]):
        names[i, 0] = np.array([n])
    savemat(tmp_path / "data.mat", {"video_list": names, "mos": np.array([[80.232], [57.3005], [40.0]])})
    df = read_label_file(tmp_path / "data.mat")
    assert df.attrs["benchmark"] == "LIVE_VQC"
    assert list(df["relative_path"]) == ["A001.mp4", "A002.mp4", "B103.mp4"]
    assert np.allclose(df["mos"], [80.232, 57.3005, 40.0])
    savemat(tmp_path / "other.mat", {"names": names})
    with pytest.raises(LabelFileError, match="video_list"):
        read_label_file(tmp_path / "other.mat")


def test_youtube_ugc_mos_sheet(tmp_path):
    rows = "vid,category,resolution,MOS full,MOS chunk 00,SD full\nAnimation_1080P-01b3,Animation,1080,3.649,3.604,0.468\n"
    p = tmp_path / "original_videos_MOS_for_YouTube_UGC_dataset.csv"
    p.write_text(rows)
    df = read_label_file(p)
    assert df.attrs["benchmark"] == "YouTubeUGC" and df["mos"].tolist() == [3.649]
    pytest.importorskip("openpyxl")
    x = tmp_path / "MOS_for_YouTube_UGC_dataset.xlsx"
    with pd.ExcelWriter(x) as w:
        pd.read_csv(p).to_excel(w, sheet_name="MOS", index=False)
    assert read_label_file(x)["video_id"].tolist() == ["Animation_1080P-01b3"]


def test_ugc_transcoded_names_are_found_and_wrong_benchmark_refused(tmp_path):
    vids = tmp_path / "videos"
    vids.mkdir()
    write_clip(vids / "Animation_1080P-01b3_crf_10_ss_00_t_20.0.mp4")
    lab = tmp_path / "ugc.csv"
    lab.write_text("vid,MOSFull\nAnimation_1080P-01b3,3.6\nGaming_720P-0000,2.0\n")
    bench = load_benchmark("YouTubeUGC", vids, label_file=lab)
    assert len(bench.available) == 1 and len(bench.missing) == 1
    with pytest.raises(LabelFileError, match="not KoNViD-1k"):
        load_benchmark("KoNViD", vids, label_file=lab)


def test_bad_official_rows_name_the_line(tmp_path):
    p = tmp_path / "KoNViD_1k_mos.csv"
    p.write_text("flickr_id,mos\n1,3.0\n2,\n")
    with pytest.raises(LabelFileError, match="line 3"):
        read_label_file(p)
    p.write_text("flickr_id,mos\n1,3.0\n1,2.0\n")
    with pytest.raises(LabelFileError, match="duplicate"):
        read_label_file(p)
    q = tmp_path / "x.csv"
    q.write_text("a,b\n1,2\n")
    with pytest.raises(LabelFileError, match="no known label layout"):
        read_label_file(q)


def test_no_labels_error_says_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"KoNViD_1k_metadata\.zip.*--labels"):
        find_label_file("KoNViD", tmp_path, labels_root=tmp_path / "none")
    (tmp_path / "data.mat").write_bytes(b"")
    assert find_label_file("LIVE_VQC", tmp_path, labels_root=tmp_path / "none") == tmp_path / "data.mat"


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


@pytest.mark.notebooks
def test_notebook07_cross_benchmark_section(tmp_path):
    """Notebook 07's Table 2 section runs the same code on the real KoNViD clips (skips without them)."""
    import json

    import papermill as pm
    import yaml

    konvid = ROOT.parent / "shared" / "data" / "videos" / "konvid"
    if not konvid.is_dir():
        pytest.skip(f"real clips not found at {konvid}")
    params = yaml.safe_load((ROOT / "notebooks" / "params" / "07_evaluation.smoke.yaml").read_text())
    params.update(RUN_DIR=str(tmp_path / "run"), BENCHMARK_DIR=str(konvid), BENCHMARK="KoNViD")
    pm.execute_notebook(str(ROOT / "notebooks" / "07_evaluation.ipynb"), str(tmp_path / "07.ipynb"),
                        parameters=params, cwd=str(ROOT), progress_bar=False, execution_timeout=900)
    metrics = json.loads((tmp_path / "run" / "07_evaluation" / "metrics.json").read_text())
    assert metrics["table2/KoNViD/tiny/mean_quality/n_found"] == 2
    assert metrics["table2/KoNViD/tiny/mean_quality/n_missing"] == 1198
    table = pd.read_csv(tmp_path / "run" / "07_evaluation" / "tables" / "table2_KoNViD.csv")
    assert set(table["combination"]) >= {"mean_quality", "mean5", "clarity_quality"}
