"""``python -m vqalib report``: the results of a run folder read from its files (issue 22, part 1).

A small synthetic run folder holds the files ``run-notebooks`` writes (manifest, metrics, the tables and
training manifests the report reads), with numbers chosen here; the tests assert on the collected fields
(every number comes from the file that holds it, a missing file or key is named and nothing is filled
in) and on the Markdown only where a field is rendered. The last test reads the real smoke run.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from vqalib.report.results import NOTEBOOKS, RunFolderError, collect, excludes_zero, render_markdown
from vqalib.schema.levels import DIMENSION_KEYS

SRCC = {"motion_quality": (0.77, 0.68, 0.85), "motion_amplitude": (0.71, 0.58, 0.81),
        "aesthetic_quality": (0.72, 0.63, 0.78), "content_quality": (0.82, 0.71, 0.91),
        "clarity_quality": (0.71, 0.60, 0.78)}
#: (kind, name, dimension, metric) -> (estimate, ci_low, ci_high); one per-dimension contrast excludes 0
BOOT = {("method", "sft", "mean", "srcc"): (0.744, 0.696, 0.784), ("method", "grpo", "mean", "srcc"): (0.734, 0.682, 0.783),
        ("method", "aso", "mean", "srcc"): (0.749, 0.709, 0.785), ("method", "aso", "mean", "mae"): (0.5, 0.4, 0.6),
        ("difference", "aso − grpo", "mean", "srcc"): (0.016, -0.014, 0.047),
        ("difference", "aso − grpo", "mean", "mae"): (-0.037, -0.084, 0.015),
        ("difference", "aso − grpo", "aesthetic_quality", "srcc"): (0.040, 0.002, 0.097),
        ("difference", "aso − grpo", "clarity_quality", "srcc"): (0.01, -0.02, 0.03),
        ("difference", "aso − sft", "mean", "srcc"): (0.005, -0.022, 0.033)}


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(obj, pd.DataFrame):
        obj.to_csv(path, index=False)
    else:
        path.write_text(json.dumps(obj))


def make_run(root: Path, notebooks=NOTEBOOKS) -> Path:
    """A run folder as run-notebooks writes it, with the numbers above."""
    _write(root / "manifest.json", {
        "run_dir": str(root), "params_set": None, "overrides": {"SEEDS": 2},
        "environment": {"commit": "0123456789abcdef0123456789abcdef01234567-dirty", "python": "3.11.7", "torch": "2.15.0"},
        "notebooks": [{"notebook": f"{nb}.ipynb", "status": "ok", "wall_s": 10.0 + i} for i, nb in enumerate(notebooks)],
        "total_wall_s": 123.4})
    if "01_data_statistics" in notebooks:
        _write(root / "01_data_statistics/metrics.json", {"n_videos": 800, "n_train_videos": 667, "n_test_videos": 133})
    if "04_sft" in notebooks:
        _write(root / "04_sft/metrics.json", {
            "sft/train_s": 154.0, "sft/steps": 800, "sft/n_test_clips": 133, "sft/parse_failures": 0,
            "sft/n_dims_srcc_ge_0.6": 5, "pretrain/seconds": 75.0, "pretrain/steps": 1200, "pretrain/n_clips": 800,
            "pretrain/heldout_r2/camera_speed": 0.41, "pretrain/heldout_r2/blur": 0.40,
            # the metrics' SRCC differs from the table's on purpose: the report takes the table (it has the CIs)
            **{f"sft/test_srcc/{d}": 0.0 for d in DIMENSION_KEYS}})
        _write(root / "04_sft/tables/sft_vs_base.csv", pd.DataFrame(
            [{"model": "sft", "dimension": d, "metric": "srcc", "value": v, "ci_low": lo, "ci_high": hi}
             for d, (v, lo, hi) in SRCC.items()]
            + [{"model": "base", "dimension": d, "metric": "srcc", "value": 0.1, "ci_low": 0.0, "ci_high": 0.2}
               for d in DIMENSION_KEYS]))
    for meth, nb, steps in (("grpo", "05_grpo", (32, 33)), ("aso", "06_aso", (43, 46))):
        if nb not in notebooks:
            continue
        metrics = {f"{meth}/budget_s": 10.0, **{f"{meth}/steps/seed{s}": n for s, n in enumerate(steps)},
                   **{f"{meth}/train_seconds/seed{s}": 10.2 for s in range(2)},
                   **{f"{meth}/stopped_by/seed{s}": "max_train_seconds" for s in range(2)}}
        if meth == "aso":
            metrics |= {"aso/target_entropy": 1.33, "aso/eps/eps": 0.05, "aso/eps/steps": 20,
                        "aso/zero_mass/at_label/pi_ref": 0.0006, "aso/zero_mass/at_label/pi_star": 0.016,
                        "aso/zero_mass/at_label/aso": 0.0002, "aso/zero_mass/at_label/pi_star_eps": 0.343,
                        "aso/zero_mass/at_label/aso_eps": 0.0026}
            _write(root / "06_aso/tables/zero_mass_counts.csv", pd.DataFrame(
                {"threshold": [0.001, 0.01], "n_pairs": [1, 13], "n_total": [3335, 3335]}))
        _write(root / nb / "metrics.json", metrics)
        _write(root / nb / "tables/curve.csv", pd.DataFrame({"method": [meth] * 2, "n_clips": [48, 48]}))
        for s in range(2):
            name = meth if s == 0 else f"{meth}_seed{s}"
            log = [{"step": 1, "kl_to_target": 0.131 - 0.018 * s}, {"step": 5, "kl_to_target": 0.20 - 0.01 * s},
                   {"step": 9, "train_runtime": 9.0}]
            _write(root / "checkpoints" / name / "vqalib_train_manifest.json",
                   {"config": {"seed": s, "num_generations": 8, "eval_every_seconds": 5.0}, "log_history": log})
    if "06_aso" in notebooks:  # the floored run's checkpoint is not a seed: its KL must not be read
        _write(root / "checkpoints/aso_eps/vqalib_train_manifest.json",
               {"config": {"seed": 0}, "log_history": [{"step": 1, "kl_to_target": 9.9}]})
    if "07_evaluation" in notebooks:
        metrics = {f"compare/{k}/{n}/{d}/{m}/{stat}": v for (k, n, d, m), vals in BOOT.items()
                   for stat, v in zip(("estimate", "ci_low", "ci_high"), vals)}
        metrics |= {"compare/sft/seeds": 1, "compare/grpo/seeds": 2, "compare/aso/seeds": 2}
        _write(root / "07_evaluation/metrics.json", metrics)
        _write(root / "07_evaluation/tables/method_comparison.csv",
               pd.DataFrame({"kind": ["method"], "n_clips": [133], "n_boot": [300]}))
    return root


@pytest.fixture
def run(tmp_path) -> Path:
    return make_run(tmp_path / "demo")


def test_every_number_comes_from_the_file_that_holds_it(run):
    res = collect(run)
    assert res["missing"] == []
    src = res["source"]
    assert src["commit"] == "0123456789abcdef0123456789abcdef01234567" and src["dirty"] is True
    assert src["overrides"] == {"SEEDS": 2} and src["params_set"] is None
    assert [n["wall_s"] for n in res["notebooks"]["notebooks"]] == [10.0 + i for i in range(7)]
    assert res["notebooks"]["total_wall_s"] == 123.4
    assert res["data"] == {"n_videos": 800, "n_train_videos": 667, "n_test_videos": 133}
    sft = res["sft"]
    assert {d: tuple(iv.values()) for d, iv in sft["srcc"].items()} == SRCC  # from the table, not metrics' 0.0
    assert (sft["steps"], sft["n_test_clips"], sft["n_dims_srcc_ge_0.6"]) == (800, 133, 5)
    assert sft["pretrain"] == {"seconds": 75.0, "steps": 1200, "n_clips": 800,
                               "heldout_r2": {"camera_speed": 0.41, "blur": 0.40}}
    c = res["comparison"]
    assert c["budget_s"] == {"grpo": 10.0, "aso": 10.0} and c["num_generations"] == 8 and c["eval_every_s"] == 5.0
    assert [x["steps"] for x in c["runs"]["grpo"]] == [32, 33] and [x["steps"] for x in c["runs"]["aso"]] == [43, 46]
    assert (c["n_clips"], c["n_boot"], c["curve_clips"]) == (133, 300, [48])
    assert c["methods"]["aso"]["srcc_mean"] == {"estimate": 0.749, "ci_low": 0.709, "ci_high": 0.785}
    assert c["methods"]["grpo"]["seeds"] == 2 and c["methods"]["grpo"]["mae_mean"] is None  # not logged: not invented
    assert c["contrasts"]["aso − grpo"]["mae_mean"] == {"estimate": -0.037, "ci_low": -0.084, "ci_high": 0.015}
    assert [(x["contrast"], x["dimension"]) for x in c["intervals_excluding_zero"]] == [("aso − grpo", "aesthetic_quality")]
    assert c["mean_intervals_excluding_zero"] == [] and c["n_per_dimension_srcc_intervals"] == 2
    assert c["too_few_steps"] == [] and c["clock_overrun"] == []
    diag = res["aso_diagnostics"]
    assert diag["target_entropy"] == 1.33
    assert diag["kl_first"] == {"0": 0.131, "1": pytest.approx(0.113)} and diag["kl_batches"] == 4
    assert diag["kl_range"] == [pytest.approx(0.113), 0.20]  # aso_eps (9.9) is not a seed
    z = res["zero_mass"]
    assert z["counts"] == [{"threshold": 0.001, "n_pairs": 1, "n_total": 3335},
                           {"threshold": 0.01, "n_pairs": 13, "n_total": 3335}]
    assert z["at_label"] == {"pi_ref": 0.0006, "pi_star": 0.016, "aso": 0.0002, "pi_star_eps": 0.343, "aso_eps": 0.0026}
    assert (z["eps"], z["eps_steps"]) == (0.05, 20)


def test_a_partial_run_names_what_it_lacks_and_fills_nothing_in(tmp_path):
    run = make_run(tmp_path / "sft_seed1", notebooks=("04_sft",))
    (run / "04_sft/metrics.json").write_text(json.dumps({"sft/steps": 800, "sft/n_test_clips": None}))
    res = collect(run)
    assert res["data"] is None and res["comparison"] is None and res["zero_mass"] is None
    for nb in set(NOTEBOOKS) - {"04_sft"}:
        assert f"manifest.json: notebook {nb} did not run in this run" in res["missing"]
    assert "04_sft/metrics.json: sft/train_s" in res["missing"] and res["sft"]["train_s"] is None
    assert res["sft"]["n_test_clips"] is None  # logged as NaN (null): None, and not reported as missing
    assert "04_sft/metrics.json: sft/n_test_clips" not in res["missing"]
    assert any(m.startswith("04_sft/metrics.json: pretrain/*") for m in res["missing"]) and res["sft"]["pretrain"] is None
    (run / "04_sft/tables/sft_vs_base.csv").unlink()
    res = collect(run)
    assert "04_sft/tables/sft_vs_base.csv: file not found" in res["missing"]
    assert all(iv == {"estimate": None, "ci_low": None, "ci_high": None} for iv in res["sft"]["srcc"].values())


def test_nan_values_stay_undefined(run):
    table = pd.read_csv(run / "04_sft/tables/sft_vs_base.csv")
    table.loc[(table["model"] == "sft") & (table["dimension"] == "clarity_quality"), ["value", "ci_low", "ci_high"]] = math.nan
    table.to_csv(run / "04_sft/tables/sft_vs_base.csv", index=False)
    res = collect(run)
    assert res["sft"]["srcc"]["clarity_quality"] == {"estimate": None, "ci_low": None, "ci_high": None}
    assert "| 0.77 [0.68, 0.85] | 0.71 [0.58, 0.81] | 0.72 [0.63, 0.78] | 0.82 [0.71, 0.91] | undefined |" in \
        render_markdown([res])


def test_markdown_renders_the_fields(run):
    res = collect(run)
    md = render_markdown([res])
    assert "`0123456789abcdef0123456789abcdef01234567 with uncommitted changes (-dirty)`" in md
    assert "| 0.77 [0.68, 0.85] | 0.71 [0.58, 0.81] | 0.72 [0.63, 0.78] | 0.82 [0.71, 0.91] | 0.71 [0.60, 0.78] |" in md
    assert "| ASO | 2 | 0.749 [0.709, 0.785] | 0.500 [0.400, 0.600] |" in md
    assert "| GRPO | 2 | 0.734 [0.682, 0.783] | — |" in md
    assert "| ASO − GRPO | +0.016 [-0.014, +0.047] | -0.037 [-0.084, +0.015] |" in md
    assert "1 of the 2 per-dimension SRCC differences" in md
    assert "ASO − GRPO Aesthetic Quality SRCC +0.040 [+0.002, +0.097]" in md
    assert "| 0.0006 | 0.0160 | 0.0002 | 0.3430 | 0.0026 |" in md
    assert "1 of the 3335 training (clip, dimension) pairs have π_ref(s*) < 0.001" in md
    assert "Nothing: every file and key the report reads was found." in md


def test_several_runs_get_the_mean_of_their_sft_rows(run, tmp_path):
    other = make_run(tmp_path / "sft_seed1", notebooks=("04_sft",))
    table = pd.read_csv(other / "04_sft/tables/sft_vs_base.csv")
    table.loc[table["model"] == "sft", "value"] = [0.76, 0.76, 0.66, 0.82, 0.71]
    table.to_csv(other / "04_sft/tables/sft_vs_base.csv", index=False)
    md = render_markdown([collect(run), collect(other)])
    assert "| **mean of 2 runs** | **0.77** | **0.73** | **0.69** | **0.82** | **0.71** |" in md
    assert md.count("## Run `") == 2


def test_runs_too_short_to_compare_are_flagged(run):
    """Notebook 07's own checks (vqalib.report.compare): fewer than MIN_STEPS steps, or a clock past OVERRUN x the
    budget, and the comparison is said not to compare trained methods."""
    from vqalib.report.compare import MIN_STEPS

    m = json.loads((run / "05_grpo/metrics.json").read_text())
    m |= {"grpo/steps/seed1": MIN_STEPS - 1, "grpo/train_seconds/seed0": 29.9}
    (run / "05_grpo/metrics.json").write_text(json.dumps(m))
    c = collect(run)["comparison"]
    assert [(x["method"], x["seed"]) for x in c["too_few_steps"]] == [("grpo", 1)]
    assert [(x["method"], x["seed"], x["train_seconds"]) for x in c["clock_overrun"]] == [("grpo", 0, 29.9)]
    md = render_markdown([collect(run)])
    assert f"**Not a comparison of trained methods:** GRPO seed 1 took {MIN_STEPS - 1} step(s)" in md
    assert "GRPO seed 0 ran 29.9 training s on a 10 s budget" in md


def test_excludes_zero():
    assert excludes_zero({"ci_low": 0.002, "ci_high": 0.1}) and excludes_zero({"ci_low": -0.2, "ci_high": -0.1})
    assert not excludes_zero({"ci_low": -0.1, "ci_high": 0.1}) and not excludes_zero({"ci_low": None, "ci_high": 0.1})


def test_command_line_json_and_markdown(run, tmp_path, capsys):
    from vqalib.cli import main

    assert main(["report", str(run)]) == 0
    fields = json.loads(capsys.readouterr().out)
    assert fields[0]["sft"]["steps"] == 800 and fields[0]["run_dir"] == str(run)
    out = tmp_path / "results.md"
    assert main(["report", str(run), "--markdown", "-o", str(out)]) == 0
    assert out.read_text().startswith("# Results of the embedded default")
    assert f"python -m vqalib report {run} --markdown" in out.read_text()


def test_a_folder_without_a_manifest_is_refused_with_the_fix(tmp_path, capsys):
    from vqalib.cli import main

    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "manifest.json not found" in err and "python -m vqalib run-notebooks --run-dir" in err
    with pytest.raises(RunFolderError):
        collect(tmp_path)


@pytest.mark.notebooks
def test_report_of_the_real_smoke_run(smoke_run, tmp_path):
    """The smoke chain's own folder: every notebook is found, the numbers equal the ones the notebooks
    logged, and only the pre-training (the smoke set uses the random ``tiny`` model) is missing."""
    if smoke_run.error is not None:
        pytest.fail(f"the smoke chain failed: {smoke_run.error}")
    res = collect(smoke_run.root)
    assert [n["notebook"] for n in res["notebooks"]["notebooks"]] == list(NOTEBOOKS)
    assert [m for m in res["missing"] if not m.startswith("04_sft/metrics.json: pretrain/*")] == []
    sft = smoke_run.metrics("04_sft")
    assert res["sft"]["steps"] == sft["sft/steps"] and res["sft"]["n_test_clips"] == sft["sft/n_test_clips"]
    m07 = smoke_run.metrics("07_evaluation")
    for meth in ("sft", "grpo", "aso"):
        assert res["comparison"]["methods"][meth]["seeds"] == m07[f"compare/{meth}/seeds"]
        assert res["comparison"]["methods"][meth]["mae_mean"]["estimate"] == m07[f"compare/method/{meth}/mean/mae/estimate"]
    assert res["zero_mass"]["counts"] and res["aso_diagnostics"]["kl_batches"] > 0
    assert "## Run `" in render_markdown([res])
