"""Ids, tables and lists from the wild (issue 21): ids are text everywhere (scorer outputs, rating
tables), empty id cells are errors naming the row, saved conversion options are kept, lists and
workbooks read right or are refused with the fix; a scorer output with a repeated header reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vqalib.data.dataset import DataValidationError, from_ratings_csv, load_dataset, save_dataset
from vqalib.inference.sources import VideoListError, list_videos
from vqalib.inference.store import RowStore, read_scores
from vqalib.core.runs import project_root
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


def test_scorer_output_ids_from_file_names_stay_text(tmp_path):
    """The user's path: clips named 0001.mp4, 1e5.mp4, NA.mp4 ... scored into a CSV, resumed, read back."""
    from model_helpers import write_clip
    from vqalib.inference.scorer import Scorer

    d = tmp_path / "clips"
    d.mkdir()
    names = ["0001", "007.5", "1e5", "NA", "null"]
    for i, n in enumerate(names):
        write_clip(d / f"{n}.mp4", n_frames=8, seed=i)
    scorer = Scorer("tiny", batch_size=2)
    out = tmp_path / "s.csv"
    scorer.score(d, out, limit=2)
    run = scorer.score(d, out)
    assert run.n_skipped == 2 and run.n_scored == 3
    assert sorted(run.rows["video_id"]) == sorted(names) and all(type(v) is str for v in run.rows["video_id"])
    assert sorted(read_scores(out)["video_id"]) == sorted(names)


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


# --------------------------------------------------------------------------- notebooks 01 and 02


@pytest.mark.notebooks
@pytest.mark.slow
@pytest.mark.parametrize("only, extra", [("01", ["TOKENIZER", "whitespace"]), ("02", ["N_BOOT", "0"])])
def test_notebooks_01_02_run_on_a_ratings_only_two_rater_study(tmp_path, only, extra):
    """Converted with min_raters=2 and check_files=False, saved: notebooks 01 and 02 run on the folder.
    Before: too_few_raters (the notebooks passed their own 3), then every video 'does not exist'."""
    rng = np.random.default_rng(0)
    rows = [(f"c{i:02d}", r, round(float(rng.uniform(1, 5)), 1)) for i in range(24) for r in ("01", "1")]
    csv = tmp_path / "study.csv"
    csv.write_text("video,rater,dim,score\n" + "".join(
        f"{v},{r},{d},{s}\n" for v, r, s in rows for d in ("clarity_quality", "motion_quality")))
    ds = from_ratings_csv(csv, **LONG)
    data_dir = save_dataset(ds, tmp_path / "study")
    run_dir = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "vqalib", "run-notebooks", "--only", only, "--run-dir", str(run_dir),
                          "-p", "DATA_DIR", str(data_dir), "-p", *extra],
                         cwd=project_root(), capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]


# --------------------------------------------------------------------------- runs

NO_MODEL = "no-such-org/no-such-model"  # loading it fails: an error about the output proves it came first


def _clips(d: Path, n: int, frames: int = 8) -> Path:
    from model_helpers import write_clip

    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_clip(d / f"v{i:02d}.mp4", n_frames=frames, seed=i % 3)
    return d


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vqalib", *args], cwd=project_root(), capture_output=True, text=True,
                          timeout=timeout)


def _one_error_line(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 2, res.stderr[-3000:]
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr[-3000:]
    return lines[0]


def test_cli_output_errors_come_before_the_model_loads(tmp_path):
    """Before: each one a traceback with exit 1 after the model had loaded (here: a model that does not
    exist, so the model's error would come first)."""
    d = _clips(tmp_path / "clips", 1)
    assert "must end in .csv, .jsonl or .parquet" in _one_error_line(
        _cli("score", str(d), "--model", NO_MODEL, "-o", str(tmp_path / "scores.txt")))
    (tmp_path / "file.csv").write_text("x\n")
    assert "is a file, not a folder" in _one_error_line(
        _cli("score", str(d), "--model", NO_MODEL, "-o", str(tmp_path / "file.csv" / "scores.csv")))
    assert "is a folder" in _one_error_line(_cli("score", str(d), "--model", NO_MODEL, "-o", str(tmp_path)))
    out = tmp_path / "s.csv"
    RowStore(out, COLS, {"model": NO_MODEL, "mode": "fast"}).open()  # an output written in fast mode
    line = _one_error_line(_cli("score", str(d), "--model", NO_MODEL, "--mode", "generate", "-o", str(out)))
    assert "mode='fast'" in line and "--overwrite" in line
    lst = tmp_path / "list.csv"
    lst.write_text(f"path,video_id\n{d / 'v00.mp4'},a\n{d / 'v00.mp4'}.x,a\n")
    (tmp_path / "clips" / "v00.mp4.x").write_bytes((d / "v00.mp4").read_bytes())
    assert "'a'" in _one_error_line(_cli("score", str(lst), "--model", NO_MODEL, "-o", str(tmp_path / "t.csv")))


def test_benchmark_parsed_score_in_fast_mode_is_refused_with_the_fix(tmp_path):
    """Before: the whole benchmark was scored, then 'NaN: no items'."""
    from vqalib.inference.benchmark import run_benchmark

    line = _one_error_line(_cli("benchmark", "KoNViD", "--videos", str(tmp_path), "--readout", "parsed_score",
                                "--model", NO_MODEL))
    assert "fast mode" in line and "--mode generate" in line
    with pytest.raises(ValueError, match="mode='generate'"):
        run_benchmark("KoNViD", tmp_path, model=NO_MODEL, readout="parsed_score")


def _wait_for(cond, what: str, proc=None, limit: float = 600.0) -> None:
    import time

    deadline = time.monotonic() + limit
    while not cond():
        assert proc is None or proc.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


def test_two_runs_on_one_output_the_second_is_refused(tmp_path):
    """Before: both wrote a header into the CSV and every later resume crashed with int('batch')."""
    import signal

    from vqalib.inference.scorer import Scorer
    from vqalib.inference.store import OutputLocked, check_not_locked

    second = Scorer("tiny", mode="generate", max_new_tokens=24)
    d = _clips(tmp_path / "clips", 24)
    out = tmp_path / "s.csv"
    cmd = [sys.executable, "-m", "vqalib", "score", str(d), "-o", str(out), "--batch-size", "1", "--num-workers", "0",
           "--no-progress", "--mode", "generate", "--max-new-tokens", "24"]
    first = subprocess.Popen(cmd, cwd=project_root(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: out.is_file() and out.read_text().count("\n") >= 2, "the first run wrote a row", first)
        with pytest.raises(OutputLocked, match=f"pid {first.pid}"):
            second.score(d, out)
        line = _one_error_line(_cli("score", str(d), "-o", str(out), "--mode", "generate", "--max-new-tokens", "24"))
        assert f"pid {first.pid}" in line and "being written by another run" in line
        assert first.poll() is None, "the first run ended before the second was tried"
        first.send_signal(signal.SIGTERM)  # a stopped run drops its lock too
        assert first.wait(timeout=300) == 128 + signal.SIGTERM, first.stderr.read()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
    assert out.read_text().count("video_id,") == 1
    n = len(read_scores(out))
    assert 1 <= n < 24
    check_not_locked(out)  # free again: a rerun resumes
    assert second.score(d, out, limit=n + 1).n_scored == 1


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the workers")
def test_sigterm_stops_the_run_and_its_dataloader_workers(tmp_path):
    """`score --num-workers 2` stopped with SIGTERM (SLURM, timeout): the run exits, and so do its
    workers. Before: both workers stayed alive as orphans."""
    import signal

    d = _clips(tmp_path / "clips", 40, frames=16)
    out = tmp_path / "s.csv"
    cmd = [sys.executable, "-m", "vqalib", "score", str(d), "-o", str(out), "--batch-size", "1", "--num-workers", "2",
           "--no-progress", "--mode", "generate", "--max-new-tokens", "24"]
    proc = subprocess.Popen(cmd, cwd=project_root(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    workers: list[int] = []
    try:
        _wait_for(lambda: out.is_file() and out.read_text().count("\n") >= 2, "a row was written", proc)
        workers = _children(proc.pid)
        assert len(workers) >= 2, workers
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=120)
        err = proc.stderr.read()
        assert rc == 128 + signal.SIGTERM and "stopped by signal 15" in err and "Traceback" not in err, err[-3000:]
        _wait_for(lambda: not any(_alive(w) for w in workers), "the workers exited", limit=60)
    finally:
        for pid in [proc.pid, *workers]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    done = read_scores(out)
    assert 1 <= len(done) < 40  # the rows written before the stop are kept; a rerun resumes
