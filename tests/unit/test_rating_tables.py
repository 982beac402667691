"""Rating tables as public subjective studies ship them (issue 8, section 3): a continuous 0-100
scale with -1 for "not rated", ``;``-separated files with decimal commas, other encodings, and
agreement on the original scale beside the 9-level grid.

Before the fix: -1 had to be cleaned by hand (else ``out_of_range``), a ``;``/decimal-comma file
raised a bare pandas ``ParserError`` naming no file, agreement could only be computed on the
snapped grid scores, and a NaN pilot alpha was reported as "final not higher".
"""

from __future__ import annotations

from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
import pytest

from vqalib.data import agreement as A
from vqalib.schema import levels as L
from vqalib.data.dataset import DataValidationError, from_ratings_csv, load_dataset, save_dataset
from vqalib.data.synth import write_mp4


def tiny_video(path: Path, value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(path, np.full((4, 16, 16, 3), value, dtype=np.uint8), fps=8)


def study_table(n: int = 60, raters: int = 4, seed: int = 0, sd: float = 6.0, missing: float = 0.15) -> pd.DataFrame:
    """A wide per-rater table like a public subjective study: clips x raters, continuous 0-100 scores
    with one decimal, -1 where the rater did not rate the clip (at most one per clip, so every clip
    keeps >= 3 raters)."""
    rng = np.random.default_rng(seed)
    latent = rng.uniform(20, 80, n)
    table = {"clip": [f"c{u:03d}" for u in range(n)]}
    scores = np.clip(np.round(latent[:, None] + rng.normal(0, sd, (n, raters)), 1), 0, 100)
    drop = rng.random(n) < missing
    scores[np.flatnonzero(drop), rng.integers(0, raters, n)[drop]] = -1.0
    for r in range(raters):
        table[f"r{r + 1}_sharpness"] = scores[:, r]
    return pd.DataFrame(table)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    table = study_table()
    for clip in table["clip"]:
        tiny_video(root / "media" / f"{clip}.mp4")
    return root, table


WIDE = dict(video_col="clip", column_pattern=r"(?P<rater>r\d)_(?P<dimension>\w+)",
            dimension_map={"sharpness": "clarity_quality"}, scale=(0, 100), path_template="{video}.mp4")


def test_minus_one_is_refused_unless_declared_not_rated(study):
    root, table = study
    csv = root / "study.csv"
    table.to_csv(csv, index=False)
    n_marked = int((table.filter(like="_sharpness") == -1).to_numpy().sum())
    assert n_marked > 0
    with pytest.raises(DataValidationError) as err:  # never silently dropped or clipped
        from_ratings_csv(csv, video_dir=root / "media", **WIDE)
    assert "study.csv" in str(err.value) and "outside the declared scale" in str(err.value)
    assert "na_values" in str(err.value)
    ds = from_ratings_csv(csv, video_dir=root / "media", na_values=[-1], **WIDE)
    assert ds.info["not_rated"] == n_marked and ds.info["empty_cells"] == 0
    assert len(ds.ratings) == table.filter(like="_sharpness").size - n_marked
    assert (ds.ratings["raw_score"] >= 0).all()
    # text markers too, matched after stripping
    table.astype(object).where(table != -1, " n/a").to_csv(csv, index=False)
    assert from_ratings_csv(csv, video_dir=root / "media", na_values=["n/a"], **WIDE).info["not_rated"] == n_marked


def test_semicolon_file_with_decimal_commas(study):
    """A European spreadsheet export: ``;`` between fields, ``,`` as the decimal mark."""
    root, table = study
    csv = root / "study_eu.csv"
    table.to_csv(csv, index=False, sep=";", decimal=",")
    assert ";" in csv.read_text().splitlines()[1] and "," in csv.read_text()
    ds = from_ratings_csv(csv, video_dir=root / "media", na_values=[-1], decimal=",", **WIDE)  # sep sniffed
    assert ds.info["sep"] == ";"
    ref = from_ratings_csv(_comma_copy(root, table), video_dir=root / "media", na_values=[-1], **WIDE)
    pd.testing.assert_series_equal(ds.ratings["raw_score"].reset_index(drop=True),
                                   ref.ratings["raw_score"].reset_index(drop=True))
    assert (ds.ratings["raw_score"] % 1 != 0).any()  # the decimals were read, not cut at the comma
    # without decimal=",": every decimal-comma cell is a bad_value whose fix says so
    ds2 = from_ratings_csv(csv, video_dir=root / "media", na_values=[-1], strict=False, min_raters=1, **WIDE)
    bad = [i for i in ds2.report.issues if i.kind == "bad_value"]
    assert bad and all(i.file == "study_eu.csv" and "decimal=','" in i.fix for i in bad)


def _comma_copy(root: Path, table: pd.DataFrame) -> Path:
    path = root / "study_plain.csv"
    table.to_csv(path, index=False)
    return path


def test_read_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.csv"
    bad.write_text('clip,r1_sharpness\n"c1,50\nc2,40,30,20\n')
    with pytest.raises(ValueError, match="broken.csv.*sep="):
        from_ratings_csv(bad, sep=",", check_files=False, **{k: v for k, v in WIDE.items()})
    latin = tmp_path / "latin.csv"
    latin.write_bytes("clip,r1_nettet\ncafé,50\n".encode("cp1252"))
    with pytest.raises(ValueError, match="latin.csv.*cannot be decoded as utf-8-sig.*encoding="):
        from_ratings_csv(latin, check_files=False, video_col="clip", column_pattern=r"(?P<rater>r\d)_(?P<dimension>\w+)")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.csv.*empty"):
        from_ratings_csv(empty, check_files=False, **WIDE)
    with pytest.raises(ValueError, match="latin.csv.*scale=.*zero width"):
        from_ratings_csv(latin, encoding="cp1252", check_files=False, video_col="clip", scale=(5, 5),
                         column_pattern=r"(?P<rater>r\d)_(?P<dimension>\w+)")


def test_encoding_and_byte_order_mark(tmp_path):
    rows = "clip,who,dim,value\n" + "".join(f"café,{r},clarity_quality,{v}\n" for r, v in zip("xyz", (1, 2, 3)))
    latin = tmp_path / "latin.csv"
    latin.write_bytes(rows.encode("cp1252"))
    ds = from_ratings_csv(latin, encoding="cp1252", check_files=False, video_col="clip", rater_col="who",
                          dimension_col="dim", score_col="value", scale=(1, 5))
    assert ds.videos["video_id"].tolist() == ["café"]
    bom = tmp_path / "bom.csv"
    bom.write_bytes(rows.encode("utf-8-sig"))  # Excel's "CSV UTF-8": the header starts with U+FEFF
    ds = from_ratings_csv(bom, check_files=False, video_col="clip", rater_col="who", dimension_col="dim",
                          score_col="value", scale=(1, 5))
    assert ds.ratings["score"].tolist() == [1.0, 2.0, 3.0]


# --------------------------------------------------------------------------- agreement on the original scale


def test_raw_scale_agreement_differs_from_the_grid_and_matches_the_package(study):
    root, table = study
    csv = root / "study.csv"
    table.to_csv(csv, index=False)
    ds = from_ratings_csv(csv, video_dir=root / "media", na_values=[-1], **WIDE)
    grid = A.agreement_table(ds.ratings, phases=["final"], n_boot=0, tol=1.0)
    raw = A.agreement_table(ds.ratings, phases=["final"], n_boot=0, tol=25.0, value="raw_score")
    assert raw["value"].tolist() == ["raw_score"] and grid["value"].tolist() == ["score"]
    # alpha on the original values is the package's alpha on the raters x clips table itself
    wide = ds.ratings.pivot(index="rater", columns="video_id", values="raw_score").to_numpy(dtype=float)
    for level in ("interval", "ordinal"):
        direct = krippendorff.alpha(reliability_data=wide, level_of_measurement=level)
        assert raw[f"alpha_{level}"].iloc[0] == pytest.approx(direct, abs=1e-9)
    # snapping 0-100 ratings to 9 levels moves alpha by several hundredths on this data
    assert abs(raw["alpha_interval"].iloc[0] - grid["alpha_interval"].iloc[0]) > 0.02
    # interval alpha does not depend on the units: 0-100 and the unsnapped 1-5 mapping agree
    mapped = ds.ratings.assign(raw_score=1 + 4 * ds.ratings["raw_score"] / 100)
    again = A.agreement_table(mapped, phases=["final"], n_boot=0, value="raw_score")
    assert again["alpha_interval"].iloc[0] == pytest.approx(raw["alpha_interval"].iloc[0], abs=1e-9)


def test_raw_relaxed_match_tolerance_is_in_original_units():
    # clip a: 10, 30, 70 -> |20|, |60|, |40| ; clip b: 50, 74 -> |24| ; clip c: one rating, no pair
    rows = [("a", "x", 10), ("a", "y", 30), ("a", "z", 70), ("b", "x", 50), ("b", "y", 74), ("c", "x", 5)]
    r = pd.DataFrame([{"video_id": v, "rater": w, "phase": "final", "dimension": "clarity_quality",
                       "score": 1.0, "raw_score": float(s)} for v, w, s in rows])
    rm = lambda tol: A.agreement_table(r, phases=["final"], n_boot=0, tol=tol, value="raw_score")["relaxed_match"].iloc[0]  # noqa: E731
    assert rm(25) == pytest.approx(2 / 4) and rm(40) == pytest.approx(3 / 4) and rm(19.9) == 0.0
    t = A.agreement_table(r, phases=["final"], n_boot=50, tol=25, value="raw_score")
    assert t["n_videos"].iloc[0] == 3 and t["n_ratings"].iloc[0] == 6
    assert t["relaxed_match_lo"].iloc[0] <= t["relaxed_match"].iloc[0] <= t["relaxed_match_hi"].iloc[0]


def test_raw_tolerance_converts_grid_points_to_original_units():
    assert A.raw_tolerance(1.0, (0, 100)) == 25.0 and A.raw_tolerance(0.5, (10, 1)) == pytest.approx(1.125)
    with pytest.raises(ValueError, match="zero width"):
        A.raw_tolerance(1.0, (3, 3))


def test_raw_scale_needs_the_column_everywhere():
    r = pd.DataFrame({"video_id": ["a", "a"], "rater": ["x", "y"], "phase": "final", "dimension": "clarity_quality",
                      "score": [3.0, 3.5]})
    with pytest.raises(ValueError, match="no 'raw_score' column.*from_ratings_csv"):
        A.agreement_table(r, value="raw_score")
    with pytest.raises(ValueError, match="1 of 2 ratings have no finite 'raw_score'"):
        A.agreement_table(r.assign(raw_score=[50.0, np.nan]), value="raw_score")
    with pytest.raises(ValueError, match="repeat a \\(video, rater\\) pair, first video 'a' rater 'x'"):
        A.agreement_table(r.assign(rater="x", raw_score=50.0), value="raw_score")
    with pytest.raises(ValueError, match="value='mean'"):
        A.agreement_table(r, value="mean")


def test_raw_score_and_scale_survive_save_and_load(study, tmp_path):
    root, table = study
    csv = root / "study.csv"
    table.to_csv(csv, index=False)
    ds = from_ratings_csv(csv, video_dir=root / "media", na_values=[-1], **WIDE)
    back = load_dataset(save_dataset(ds, tmp_path / "my_vqa"))
    assert back.info["scale"] == [0.0, 100.0] and back.info["not_rated"] == ds.info["not_rated"]
    np.testing.assert_array_equal(back.ratings["raw_score"].to_numpy(), ds.ratings["raw_score"].to_numpy())


# --------------------------------------------------------------------------- phases


def test_nan_alpha_is_undefined_not_lower():
    """The pilot raters all gave 3.0: pilot alpha is undefined (no variation), not 'higher than final'."""
    rows = []
    for u in range(6):
        for i, r in enumerate("xyz"):
            rows.append({"video_id": f"v{u}", "rater": r, "phase": "pilot", "dimension": "clarity_quality", "score": 3.0})
            rows.append({"video_id": f"v{u}", "rater": r, "phase": "final", "dimension": "clarity_quality",
                         "score": L.LEVELS[(u + (i == 0)) % 9]})
    table = A.agreement_table(pd.DataFrame(rows), n_boot=0)
    assert np.isnan(table.set_index("phase").loc["pilot", "alpha_interval"])
    cmp = A.compare_phases(table)
    assert cmp.final_higher == {"clarity_quality": None}
    assert cmp.verdict == {"clarity_quality": "undefined"} and cmp.undefined == ["clarity_quality"]
    assert not cmp.all_higher


# --------------------------------------------------------------------------- notebook 02 on such a table


def test_min_raters_of_the_conversion_is_kept_by_the_saved_folder(study, tmp_path):
    """A study with fewer than 3 raters on some clips converts with min_raters=2; the saved folder must
    load with that rule everywhere (the trainers call load_dataset(root) with no arguments), not fail
    on the default of 3 (a new user's report)."""
    root, table = study
    two = table[["clip", "r1_sharpness", "r2_sharpness"]]
    csv = tmp_path / "two_raters.csv"
    two.to_csv(csv, index=False)
    with pytest.raises(DataValidationError, match="min_raters"):
        from_ratings_csv(csv, video_dir=root / "media", na_values=[-1], **WIDE)
    ds = from_ratings_csv(csv, video_dir=root / "media", na_values=[-1], min_raters=1, **WIDE)
    assert ds.info["min_raters"] == 1
    save_dataset(ds, tmp_path / "saved")
    again = load_dataset(tmp_path / "saved")
    assert len(again.ratings) == len(ds.ratings) and again.info["min_raters"] == 1
    with pytest.raises(DataValidationError, match="min_raters"):  # an explicit value still wins
        load_dataset(tmp_path / "saved", min_raters=3)
