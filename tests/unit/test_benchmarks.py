"""Official benchmark label files (written in tmp dirs in the authors' formats). The benchmark runner on
generated clips: ``tests/integration/test_benchmark_runs.py``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from model_helpers import write_clip
from vqalib.data.mos import LabelFileError, find_label_file, load_benchmark, read_label_file


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
