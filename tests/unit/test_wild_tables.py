"""Ids, tables and lists from the wild (issue 21): ids are text everywhere (scorer outputs, rating
tables), empty id cells are errors naming the row, saved conversion options are kept, lists and
workbooks read right or are refused with the fix; a scorer output with a repeated header reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vqalib.data.dataset import DataValidationError, from_ratings_csv, load_dataset, save_dataset
from vqalib.inference.sources import VideoListError, list_videos
from vqalib.inference.store import RowStore, read_scores
from vqalib.data.synth import write_mp4

IDS = ["0001", "007.5", "1e5", "NA", "null", "nan", "None", "-", "TRUE", " 42"]
COLS = ["video_id", "path", "status", "error", "x_expected", "batch"]


def _rows(ids, batch=0):
    return [{"video_id": v, "path": f"/v/{v}.mp4", "status": "ok", "error": None, "x_expected": 3.25 + i,
             "batch": batch} for i, v in enumerate(ids)]


# --------------------------------------------------------------------------- scorer outputs


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_output_ids_round_trip_exactly_and_resume_keeps_strings(tmp_path, suffix):
    """Before (csv): 0001 -> 1.0, 007.5 -> 7.5, 1e5 -> 100000.0, NA and null -> NaN; a resumed run
    mixed those floats with the new rows' strings."""
    out = tmp_path / f"s{suffix}"
    store = RowStore(out, COLS, {"mode": "fast"})
    assert store.open().empty
    store.append(_rows(IDS[:5]))
    store.close()
    again = RowStore(out, COLS, {"mode": "fast"})
    done = again.open()  # what a resumed run skips and concatenates with its new rows
    assert done["video_id"].tolist() == IDS[:5] and all(type(v) is str for v in done["video_id"])
    again.append(_rows(IDS[5:], batch=1))
    again.close()
    df = read_scores(out)
    assert df["video_id"].tolist() == IDS and all(type(v) is str for v in df["video_id"])
    assert df["path"].tolist() == [f"/v/{v}.mp4" for v in IDS]
    assert df["error"].isna().all() and df["x_expected"].dtype.kind == "f" and df["batch"].tolist() == [0] * 5 + [1] * 5


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_read_scores_on_a_missing_file_raises(tmp_path, suffix):
    """Before: a missing .jsonl gave an empty table (csv and parquet raised)."""
    with pytest.raises(FileNotFoundError, match=f"absent{suffix}"):
        read_scores(tmp_path / f"absent{suffix}")


def test_a_repeated_header_is_skipped_with_a_count(tmp_path):
    """Two runs that wrote into one CSV: the second header sits inside the data. Before: every resume
    crashed with int('batch'), read_scores gave a text column."""
    out = tmp_path / "s.csv"
    header = ",".join(COLS) + "\n"
    out.write_text(header + "a,/v/a.mp4,ok,,3.5,0\n" + header + "b,/v/b.mp4,ok,,2.5,0\nc,/v/c.mp4,ok,,1.5,1\n")
    with pytest.warns(UserWarning, match="skipped 1 repeated header"):
        df = read_scores(out)
    assert df["video_id"].tolist() == ["a", "b", "c"] and df["batch"].tolist() == [0, 0, 1]
    with pytest.warns(UserWarning, match="skipped 1 repeated header"):
        done = RowStore(out, COLS, {"mode": "fast"}).open()
    assert int(done["batch"].max()) == 1 and done["x_expected"].tolist() == [3.5, 2.5, 1.5]


def test_a_torn_header_is_cut_and_the_file_restarted(tmp_path):
    out = tmp_path / "s.csv"
    out.write_text(",".join(COLS)[:12])  # killed while writing the first line
    with pytest.warns(UserWarning, match="torn header"):
        assert RowStore(out, COLS, {"mode": "fast"}).open().empty
    assert out.read_text() == ""


def test_read_scores_leaves_a_torn_last_row_out_without_changing_the_file(tmp_path):
    out = tmp_path / "s.csv"
    text = ",".join(COLS) + "\na,/v/a.mp4,ok,,3.5,0\nb,/v/b.mp"
    out.write_text(text)
    with pytest.warns(UserWarning, match="torn last row"):
        assert read_scores(out)["video_id"].tolist() == ["a"]
    assert out.read_text() == text


# --------------------------------------------------------------------------- rating tables


def _long(tmp_path, rows, name="long.csv"):
    p = tmp_path / name
    p.write_text("video,rater,dim,score\n" + "".join(f"{v},{r},clarity_quality,{s}\n" for v, r, s in rows))
    return p


LONG = dict(rater_col="rater", dimension_col="dim", score_col="score", check_files=False, min_raters=2)


def test_raters_1_and_01_are_two_raters(tmp_path):
    """Before: merged into rater '1', reported as duplicate ratings."""
    csv = _long(tmp_path, [("v1", "1", 3), ("v1", "01", 4), ("NA", "1", 2), ("NA", "01", 2)])
    ds = from_ratings_csv(csv, **LONG)
    assert sorted(ds.ratings["rater"].unique()) == ["01", "1"]
    assert sorted(ds.videos["video_id"]) == ["NA", "v1"]  # a video named NA keeps its name


def test_an_empty_rater_cell_is_an_error_naming_the_row(tmp_path):
    """Before: a rater named 'nan' who counted toward min_raters."""
    csv = _long(tmp_path, [("v1", "a", 3), ("v1", "", 4), ("v2", "a", 2), ("v2", "b", 2)])
    with pytest.raises(DataValidationError, match=r"long.csv.*line 3.*rater.*empty"):
        from_ratings_csv(csv, **LONG)
    ds = from_ratings_csv(csv, strict=False, **LONG)
    assert "nan" not in set(ds.ratings["rater"])
    assert ds.report.counts().get("missing_field") == 1
    assert ds.report.counts().get("too_few_raters") == 1  # v1 has one rater left, not two


def test_an_empty_video_cell_is_an_error_naming_the_row(tmp_path):
    """Before: a video named 'nan'."""
    csv = _long(tmp_path, [("v1", "a", 3), ("v1", "b", 4), ("", "a", 2), ("", "b", 2)])
    with pytest.raises(DataValidationError, match=r"long.csv.*line 4.*'video' cell is empty"):
        from_ratings_csv(csv, **LONG)
    ds = from_ratings_csv(csv, strict=False, **LONG)
    assert ds.videos["video_id"].tolist() == ["v1"] and "nan" not in set(ds.ratings["video_id"])
    assert ds.report.counts().get("missing_field") == 2
    wide = tmp_path / "wide.csv"
    wide.write_text("video,r1_clarity,r2_clarity\nv1,3,4\n,2,2\n")
    with pytest.raises(DataValidationError, match=r"wide.csv.*line 3.*'video' cell is empty"):
        from_ratings_csv(wide, column_pattern=r"(?P<rater>r\d)_(?P<dimension>\w+)",
                         dimension_map={"clarity": "clarity_quality"}, check_files=False, min_raters=2)


def test_xlsx_ratings_are_read_and_other_workbooks_refused_with_the_fix(tmp_path):
    """Before: "cannot be decoded as utf-8-sig ... pass encoding='cp1252'" (which failed the same way)."""
    table = pd.DataFrame({"video": ["0001", "v2", "v2"], "rater": ["01", "1", "01"], "dim": ["clarity_quality"] * 3,
                          "score": [3.0, 4.5, 2.0]})
    xlsx = tmp_path / "ratings.xlsx"
    table.to_excel(xlsx, index=False)
    ds = from_ratings_csv(xlsx, rater_col="rater", dimension_col="dim", score_col="score", check_files=False,
                          min_raters=1)
    assert sorted(ds.videos["video_id"]) == ["0001", "v2"] and sorted(ds.ratings["rater"]) == ["01", "01", "1"]
    assert ds.info["sep"] == "xlsx"
    with pd.ExcelWriter(tmp_path / "two.xlsx") as w:
        table.to_excel(w, sheet_name="notes", index=False)
        table.to_excel(w, sheet_name="ratings", index=False)
    with pytest.raises(ValueError, match=r"two.xlsx.*2 sheets.*sheet="):
        from_ratings_csv(tmp_path / "two.xlsx", **LONG)
    ds = from_ratings_csv(tmp_path / "two.xlsx", sheet="ratings", rater_col="rater", dimension_col="dim",
                          score_col="score", check_files=False, min_raters=1)
    assert len(ds.ratings) == 3
    old = tmp_path / "old.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)
    with pytest.raises(ValueError, match=r"old.xls.*old binary Excel.*save it as \.xlsx") as e:
        from_ratings_csv(old, **LONG)
    assert "cp1252" not in str(e.value)


def test_column_pattern_without_a_dimension_group(tmp_path):
    """Before: IndexError: no such group."""
    csv = tmp_path / "w.csv"
    csv.write_text("video,r1_clarity\nv1,3\n")
    with pytest.raises(ValueError, match=r"no named group dimension.*\(\?P<dimension>"):
        from_ratings_csv(csv, column_pattern=r"(?P<rater>r\d)_\w+", check_files=False, min_raters=1)
    with pytest.raises(ValueError, match=r"no named group rater or dimension"):
        from_ratings_csv(csv, column_pattern=r"r\d_\w+", check_files=False, min_raters=1)


def test_saved_min_raters_and_check_files_are_kept(tmp_path):
    csv = _long(tmp_path, [("v1", "a", 3), ("v1", "b", 4), ("v2", "a", 2), ("v2", "b", 2)])
    ds = from_ratings_csv(csv, **LONG)  # two raters, no video files
    assert ds.info["check_files"] is False and ds.info["min_raters"] == 2
    folder = save_dataset(ds, tmp_path / "saved")
    again = load_dataset(folder)  # before: every video "does not exist"
    assert len(again.ratings) == 4
    with pytest.raises(DataValidationError, match="does not exist"):
        load_dataset(folder, check_files=True)  # an explicit value still wins


# --------------------------------------------------------------------------- video lists


def _clip(path: Path) -> None:
    write_mp4(path, np.full((4, 16, 16, 3), 90, dtype=np.uint8), fps=8)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_video_list_with_a_byte_order_mark(tmp_path, encoding):
    """Before: the first entry (with an invisible BOM) was 'file does not exist'."""
    for n in ("a", "b"):
        _clip(tmp_path / f"{n}.mp4")
    lst = tmp_path / "list.txt"
    lst.write_bytes("a.mp4\nb.mp4\n".encode(encoding))
    assert list_videos(lst)["video_id"].tolist() == ["a", "b"]
    csv = tmp_path / "list.csv"
    csv.write_bytes("path,video_id\na.mp4,0001\nb.mp4,NA\n".encode(encoding))
    assert list_videos(csv)["video_id"].tolist() == ["0001", "NA"]


def test_video_list_in_another_encoding_names_the_file_and_the_fix(tmp_path):
    """Before: a bare UnicodeDecodeError."""
    _clip(tmp_path / "café.mp4")
    lst = tmp_path / "list.txt"
    lst.write_bytes("# clips\ncafé.mp4\n".encode("cp1252"))
    with pytest.raises(VideoListError, match=r"list.txt line 2: not UTF-8.*save the list as UTF-8"):
        list_videos(lst)
