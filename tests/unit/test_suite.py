"""The benchmark suite without a model (``vqalib.inference.suite``): the shipped suite locks the label files
in ``../shared/data/labels``, a changed or missing file is refused naming both values, and the published
numbers carry their sources. Runs with the tiny model: ``tests/integration/test_suite_runs.py``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from vqalib.data.mos import LabelFileError, default_labels_root, read_label_file
from vqalib.inference import suite as S

needs_labels = pytest.mark.skipif(not default_labels_root().is_dir(), reason="../shared/data/labels is not there")


def test_the_standard_suite_has_the_five_benchmarks_of_the_protocol():
    name, entries = S.load_suite("standard")
    assert name == "standard"
    assert [(e.benchmark, e.split) for e in entries] == [("LSVQ", "test"), ("LSVQ", "1080p"), ("KoNViD", "all"),
                                                         ("LIVE_VQC", "all"), ("YouTubeUGC", "all")]


@needs_labels
def test_every_locked_file_matches_its_rows_and_sha256():
    for e in S.load_suite("standard")[1]:
        path = S.locked_label_file(e)
        assert len(read_label_file(path)) == e.rows, e


@needs_labels
def test_a_changed_or_missing_label_file_is_refused_naming_both_values(tmp_path):
    e = S.load_suite("standard")[1][2]  # KoNViD
    copy = tmp_path / e.label_file
    copy.parent.mkdir(parents=True)
    shutil.copy(default_labels_root() / e.label_file, copy)
    assert S.locked_label_file(e, tmp_path) == copy
    copy.write_text(copy.read_text().replace(", 3.46", ", 3.47", 1))  # one MOS changed, same rows
    with pytest.raises(LabelFileError, match=rf"1200 rows, sha256 [0-9a-f]{{64}}; the suite locks 1200 rows, sha256 "
                                             rf"{e.sha256}"):
        S.locked_label_file(e, tmp_path)
    with pytest.raises(LabelFileError, match="label file of the suite is missing"):
        S.locked_label_file(S.load_suite("standard")[1][0], tmp_path)


def test_a_suite_file_of_ones_own_is_read_and_checked(tmp_path):
    p = tmp_path / "mine.json"
    p.write_text(json.dumps({"name": "mine", "entries": [{"benchmark": "KoNViD", "split": "all",
                                                          "label_file": "k.txt", "rows": 2, "sha256": "x"}]}))
    assert S.load_suite(p)[1][0].label_file == "k.txt"
    p.write_text(json.dumps({"entries": [{"benchmark": "LSVQ", "split": "val", "label_file": "k", "rows": 1,
                                          "sha256": "x"}]}))
    with pytest.raises(ValueError, match=r"entry 0: LSVQ has no split 'val'"):
        S.load_suite(p)
    with pytest.raises(FileNotFoundError, match=r"no benchmark suite 'nope'.*\['standard'\]"):
        S.load_suite("nope")


def test_published_numbers_name_their_source_and_say_what_they_are():
    pub = S.published_results()
    assert {"model", "benchmark", "split", "srcc", "plcc", "training", "protocol", "source"} <= set(pub.columns)
    assert pub["source"].notna().all() and pub["protocol"].notna().all()
    qalign = pub[(pub["model"] == "Q-Align") & (pub["benchmark"] == "KoNViD")].iloc[0]
    assert (qalign["srcc"], qalign["plcc"]) == (0.865, 0.877)  # the paper's Table 2
    assert pub.loc[pub["model"].str.contains("fine-tuned"), "protocol"].str.contains("best of 10").all()
    assert pub.loc[pub["srcc"].isna(), "protocol"].str.contains("PLCC only").all()  # never an SRCC made up


def test_side_by_side_puts_the_published_rows_under_ours():
    ours = pd.DataFrame([{"benchmark": "KoNViD", "split": "all", "model": "tiny", "SRCC": 0.1, "PLCC": 0.2, "n": 5,
                          "mode": "fast", "readout": "expected_score", "combination": "mean_quality", "fps": 2.0,
                          "max_frames": 8, "reason": None},
                         {"benchmark": "LIVE_VQC", "split": "all", "model": "tiny", "SRCC": np.nan, "PLCC": np.nan,
                          "n": 0, "reason": "no video folder for LIVE_VQC"}])
    sbs = S.side_by_side(ours)
    konvid = sbs[sbs["benchmark"] == "KoNViD"]
    assert konvid["model"].iloc[0] == "tiny (this run)" and "Q-Align" in konvid["model"].tolist()
    md = S.format_markdown(sbs)
    assert "| KoNViD | all | tiny (this run) | 0.100 | 0.200 | 5 |" in md and "| note | source |" in md
    assert "no video folder for LIVE_VQC" in md and "| – | – |" in md
