"""Official benchmark label files (written in tmp dirs in the authors' formats). The benchmark runner on
generated clips: ``tests/integration/test_benchmark_runs.py``."""

from __future__ import annotations

import hashlib

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


# --- LSVQ release files as distributed: dotted names, one file per split (issue 25) ------------------------------

LSVQ_HEADER = "name,p1,p2,p3,height,width,mos_p1,mos_p2,mos_p3,mos,frame_number,fn_last_frame"
DOTTED = ["ia-batch1/XcorpsMotorSports3CruisinGrandSeg.3", "ia-batch1/XcorpsMotorSports3CruisinGrandSeg.4",
          "ia-batch1/XcorpsMotorSports3CruisinGrandSeg", "ia-batch1/tasGenesisBarneysHideAndSeekIn0002.75BySticky"]


def lsvq_csv(path, names, mos, is_test=None):
    """A release CSV in LSVQ's layout; ``is_test`` adds that column (as its values are written)."""
    head = LSVQ_HEADER + (",is_test" if is_test is not None else "")
    rows = [f"{n},a,b,c,540,960,50,51,52,{m},240,239" + (f",{t}" if is_test is not None else "")
            for n, m, t in zip(names, mos, is_test if is_test is not None else [None] * len(names))]
    path.write_text("\n".join([head, *rows]) + "\n")
    return path


def touch_videos(root, names, ext=".mp4"):
    for n in names:
        (root / (n + ext)).parent.mkdir(parents=True, exist_ok=True)
        (root / (n + ext)).write_bytes(b"")  # locating reads names only; decoding is tested elsewhere


def test_lsvq_names_with_dots_are_names_not_extensions(tmp_path):
    df = read_label_file(lsvq_csv(tmp_path / "labels_test_1080p.csv", DOTTED, [61.0, 62.0, 63.0, 64.0]))
    assert list(df["video_id"]) == DOTTED  # before: ".3" and ".4" were cut as extensions and the file was refused
    assert list(df["relative_path"]) == [n + ".mp4" for n in DOTTED]
    vids = tmp_path / "videos"
    touch_videos(vids, DOTTED[:3])
    bench = load_benchmark("LSVQ", vids, split="1080p", label_file=tmp_path / "labels_test_1080p.csv")
    assert sorted(bench.available["video_id"]) == sorted(DOTTED[:3])  # before: the dotted ones were never found
    assert list(bench.missing["video_id"]) == DOTTED[3:]
    # an extension on disk other than the one written: found through the folder index, the dots kept
    other = tmp_path / "mkv"
    touch_videos(other, DOTTED[:1], ext=".mkv")
    b2 = load_benchmark("LSVQ", other, split="1080p", label_file=tmp_path / "labels_test_1080p.csv")
    assert list(b2.available["video_id"]) == DOTTED[:1] and b2.available["path"][0].endswith("Seg.3.mkv")


def test_a_fastvqa_list_with_dotted_names_keeps_them(tmp_path):
    p = tmp_path / "labels.txt"
    p.write_text("".join(f"{n}.mp4, -1, -1, 5{i}\n" for i, n in enumerate(DOTTED)))
    assert list(read_label_file(p)["video_id"]) == [n.split("/")[1] for n in DOTTED]


@pytest.fixture
def lsvq_release(tmp_path):
    """The LSVQ release layout: videos/ with both CSVs beside it (train+test with is_test, and 1080p)."""
    vids = tmp_path / "videos"
    train_test = ["yfcc-batch1/1", "yfcc-batch1/2", "ia-batch1/A.1", "ia-batch1/B"]
    lsvq_csv(tmp_path / "labels_train_test.csv", train_test, [40.0, 50.0, 60.0, 70.0],
             is_test=["False", "False", "True", "True"])
    lsvq_csv(tmp_path / "labels_test_1080p.csv", ["ia-batch2/C.2", "ia-batch2/D", "ia-batch2/E"], [30.0, 45.0, 80.0])
    touch_videos(vids, train_test + ["ia-batch2/C.2", "ia-batch2/D", "ia-batch2/E"])
    return tmp_path, vids


@pytest.mark.parametrize("split, file, ids", [
    ("test", "labels_train_test.csv", ["ia-batch1/A.1", "ia-batch1/B"]),
    ("train", "labels_train_test.csv", ["yfcc-batch1/1", "yfcc-batch1/2"]),
    ("1080p", "labels_test_1080p.csv", ["ia-batch2/C.2", "ia-batch2/D", "ia-batch2/E"]),
    (None, "labels_train_test.csv", ["ia-batch1/A.1", "ia-batch1/B"]),  # the default split is test
])
def test_each_lsvq_split_reads_its_own_file(lsvq_release, split, file, ids):
    root, vids = lsvq_release
    bench = load_benchmark("LSVQ", vids, split=split)
    # before: every split (and none) read labels_test_1080p.csv, labelled as the split asked for
    assert bench.label_file == root / file and bench.split == (split or "test")
    assert list(bench.available["video_id"]) == ids and bench.missing.empty
    assert bench.label_rows == (4 if file == "labels_train_test.csv" else 3)
    assert bench.label_sha256 == hashlib.sha256((root / file).read_bytes()).hexdigest()
    summary = bench.summary()
    assert str(root / file) in summary and bench.label_sha256[:16] in summary
    assert ("with is_test" in bench.split_rule) == (file == "labels_train_test.csv")


def test_a_split_file_missing_is_named_never_replaced(tmp_path):
    vids = tmp_path / "videos"
    vids.mkdir()
    lsvq_csv(tmp_path / "labels_test_1080p.csv", ["ia-batch2/C"], [30.0])
    with pytest.raises(FileNotFoundError, match=r"'train' split.*LSVQ_whole_train\.csv.*labels_train_test\.csv"):
        load_benchmark("LSVQ", vids, split="train", labels_root=tmp_path / "none")
    with pytest.raises(FileNotFoundError, match=r"'test' split"):
        load_benchmark("LSVQ", vids, split="test", labels_root=tmp_path / "none")
    with pytest.raises(ValueError, match="unknown split 'val'"):
        load_benchmark("LSVQ", vids, split="val")


def test_a_split_is_never_taken_from_a_file_that_cannot_tell_it(tmp_path):
    vids = tmp_path / "videos"
    vids.mkdir()
    names = ["a/1", "a/2"]
    # a train+test file without is_test: before, split="test" kept every row
    both = lsvq_csv(tmp_path / "labels_train_test.csv", names, [40.0, 50.0])
    with pytest.raises(LabelFileError, match=r"holds the test and train splits.*no is_test column.*LSVQ_whole_test"):
        load_benchmark("LSVQ", vids, split="test", label_file=both)
    # the 1080p file asked for as the test split
    p1080 = lsvq_csv(tmp_path / "labels_test_1080p.csv", names, [40.0, 50.0])
    with pytest.raises(LabelFileError, match=r"is the '1080p' split's label file, not the 'test' split's.*"
                                             r"LSVQ_whole_test\.csv"):
        load_benchmark("LSVQ", vids, split="test", label_file=p1080)
    assert load_benchmark("LSVQ", vids, label_file=p1080).split == "1080p"  # the name says which split it is
    # the train+test file asked for the 1080p split
    with_flag = lsvq_csv(tmp_path / "flagged.csv", names, [40.0, 50.0], is_test=["1", "0"])
    with pytest.raises(LabelFileError, match=r"holds the test and train splits \(is_test column\), not '1080p'"):
        load_benchmark("LSVQ", vids, split="1080p", label_file=with_flag)
    assert list(load_benchmark("LSVQ", vids, split="train", label_file=with_flag).missing["video_id"]) == ["a/2"]
    # a file of an unknown name: taken whole only when the split is given
    mine = lsvq_csv(tmp_path / "my_lsvq.csv", names, [40.0, 50.0])
    with pytest.raises(LabelFileError, match=r"cannot tell which LSVQ split.*--split \(test \| 1080p \| train\)"):
        load_benchmark("LSVQ", vids, label_file=mine)
    bench = load_benchmark("LSVQ", vids, split="1080p", label_file=mine)
    assert bench.n_listed == 2 and "as the split was given" in bench.split_rule


def test_fastvqa_lsvq_labels_txt_is_test_plus_1080p_not_train():
    from vqalib.data.mos import default_labels_root

    lists = default_labels_root() / "fastvqa" / "LSVQ"
    if not lists.is_dir():
        pytest.skip("../shared/data/labels is not beside the checkout")
    ids = lambda f: set(read_label_file(lists / f)["relative_path"])  # noqa: E731
    assert ids("labels.txt") == ids("labels_test.txt") | ids("labels_1080p.txt")  # why it is not the train split
    with pytest.raises(LabelFileError, match=r"holds the test and 1080p splits"):
        load_benchmark("LSVQ", lists, split="test", label_file=lists / "labels.txt")


def test_a_bad_is_test_value_names_the_line(tmp_path):
    p = lsvq_csv(tmp_path / "labels_train_test.csv", ["a/1", "a/2"], [40.0, 50.0], is_test=["True", ""])
    with pytest.raises(LabelFileError, match=r"line 3: is_test = .* is not true/false"):
        read_label_file(p)


def test_the_table_row_records_the_labels_it_was_computed_on(lsvq_release):
    from vqalib.inference.benchmark import table2
    from vqalib.schema.levels import DIMENSION_KEYS

    root, vids = lsvq_release
    bench = load_benchmark("LSVQ", vids, split="1080p")
    preds = pd.DataFrame([{"video_id": v, "dimension": d, "expected_score": 1.0 + i + 0.1 * j}
                          for i, v in enumerate(bench.available["video_id"]) for j, d in enumerate(DIMENSION_KEYS)])
    row = table2(bench, {"m": preds}, n_boot=0).iloc[0]
    assert row["label_file"] == str(root / "labels_test_1080p.csv") and row["label_rows"] == 3
    assert row["label_sha256"] == hashlib.sha256((root / "labels_test_1080p.csv").read_bytes()).hexdigest()
    assert row["SRCC"] == pytest.approx(1.0)  # MOS 30, 45, 80 against scores rising in the same order


def test_each_split_has_its_own_default_scores_file():
    from vqalib.inference.benchmark import default_output

    test, p1080 = (default_output("LSVQ", "tiny", "fast", sp) for sp in ("test", "1080p"))
    assert test != p1080 and test.parent.name == "test" and p1080.name == "tiny.fast.csv"  # before: one shared file


def test_a_missing_split_file_names_the_other_splits_files_it_saw(tmp_path):
    vids = tmp_path / "videos"
    vids.mkdir()
    lsvq_csv(tmp_path / "labels_test_1080p.csv", ["a/1"], [40.0])
    with pytest.raises(FileNotFoundError) as err:
        find_label_file("LSVQ", vids, "test", labels_root=tmp_path / "none")
    msg = str(err.value)
    assert "Found labels_test_1080p.csv there: it is the '1080p' split's file (--split 1080p)" in msg
    assert "--labels /path/to/LSVQ_whole_test.csv or labels_train_test.csv" in msg
