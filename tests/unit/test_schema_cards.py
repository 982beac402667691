"""Issue 23, docs: data_cards/bring_your_own_shapes.md covers every shape of the issue's table, each YAML schema in
it loads, each command in it parses with the real argument parser, and the Python snippet's keywords exist."""

from __future__ import annotations

import re
import shlex
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from vqalib.cli import import_labels_parser, sample_data_parser
from vqalib.data.dataset import RatingsCsvOptions
from vqalib.schema import rating as RS

CARD = Path(__file__).resolve().parents[2] / "data_cards" / "bring_your_own_shapes.md"
TEXT = CARD.read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", TEXT, flags=re.M | re.S)


def test_every_shape_of_the_issue_is_covered():
    for shape in ("KoNViD-1k", "LIVE-VQC", "LSVQ", "YouTube-UGC", "DIVIDE-3k", "VideoFeedback2", "FineVD", "MaxWell",
                  "DMOS", "Q-Align"):
        assert shape in TEXT, shape


@pytest.mark.parametrize("block", _blocks("yaml"), ids=lambda b: b.split("\n")[0])
def test_every_yaml_schema_loads(block):
    s = RS.schema_from_dict(yaml.safe_load(block), where=str(CARD))
    assert s.n_dims >= 1 and s.n_levels >= 2
    again = RS.schema_from_dict(s.to_dict())
    assert again == s


def test_yaml_schemas_say_what_the_text_says():
    by_name = {d["name"]: RS.schema_from_dict(d) for d in map(yaml.safe_load, _blocks("yaml"))}
    assert by_name["csiq-dmos"].dimension("overall_quality").higher_is_better is False
    assert by_name["csiq-dmos"].from_raw(0.2) == pytest.approx(4.2)
    assert by_name["divide3k"].keys == ("aesthetic", "technical")
    assert by_name["videofeedback2"].strings == ("1", "2", "3", "4", "5") and by_name["videofeedback2"].n_dims == 3
    assert by_name["finevd"].n_dims == 6
    mw = by_name["maxwell"]
    assert mw.from_raw(-1, "sharpness") == 1.0 and mw.from_raw(-1, "noise") == 5.0 and mw.from_raw(1, "overall") == 1.0
    words = by_name["seven-words"]
    assert words.n_levels == 7 and words.step is None and words.snap(2.0) == 2.5 and words.target_rule == "gaussian"


def _commands(prefix: str) -> list[list[str]]:
    out = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith(prefix):
                out.append(shlex.split(line)[len(shlex.split(prefix)):])
    return out


def test_every_import_labels_command_parses():
    cmds = _commands("python -m vqalib import-labels")
    assert len(cmds) >= 5
    for argv in cmds:
        args = import_labels_parser().parse_args(argv)
        assert args.name in ("KoNViD", "LIVE_VQC", "YouTubeUGC", "LSVQ") and args.out


def test_every_sample_data_command_parses():
    cmds = _commands("python -m vqalib sample-data")
    assert cmds
    for argv in cmds:
        assert sample_data_parser().parse_args(argv).schema in RS.PRESETS.values()


def test_python_snippet_keywords_are_from_ratings_csv_options():
    known = {f.name for f in fields(RatingsCsvOptions)}
    for block in _blocks("python"):
        call = block[block.index("from_ratings_csv(") :]
        used = set(re.findall(r"(\w+)=", call.split("save_dataset")[0]))
        assert used <= known, used - known
