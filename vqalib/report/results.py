"""The results of a run folder, written from its files: what ``docs/results.md`` shows (issue 22).

``python -m vqalib report RUN_DIR [RUN_DIR ...] [--markdown]`` calls :func:`collect` on each run folder
and prints the fields as JSON, or :func:`render_markdown` of them. No number is typed by hand: each one
is read from the run folder that ``python -m vqalib run-notebooks --run-dir RUN_DIR`` wrote
(:mod:`vqalib.core.runs`):

- ``manifest.json``: parameter set, ``-p`` overrides, wall time and status per notebook, versions and
  the git commit the run started on;
- ``NN_name/metrics.json``: the numbers each notebook logged (``01_data_statistics``: dataset size;
  ``04_sft``: pre-training, SFT steps and held-out SRCC; ``05_grpo`` / ``06_aso``: steps per seed,
  ASO's H(π*); ``06_aso``: the zero-mass case; ``07_evaluation``: the GRPO vs ASO bootstrap,
  ``compare/<kind>/<name>/<dimension>/<metric>/<estimate|ci_low|ci_high>``);
- tables where the metrics do not hold the number: ``04_sft/tables/sft_vs_base.csv`` (the SFT
  intervals), ``07_evaluation/tables/method_comparison.csv`` (clips and resamples of the bootstrap),
  ``0[56]_*/tables/curve.csv`` (clips per curve point), ``06_aso/tables/zero_mass_counts.csv``
  (pairs in the training set);
- ``checkpoints/<stage>/vqalib_train_manifest.json``: GRPO's group size, the curve interval, and ASO's
  KL(π* ‖ π_θ) per logged batch (``log_history``).

The machine (CPU cores, load) is not recorded in a run folder, so the report does not name it.

A file or key the run does not have (a notebook that did not run, ``--only``, a smoke run without
pre-training) is listed in ``missing`` as ``path: key`` and shown as ``—``; nothing is filled in.
A value the notebook logged as NaN (``null``) stays ``None`` and is shown as ``undefined``.

The dimensions are the run's rating schema's (:func:`run_schema`: the ``rating_schema.json`` its
checkpoints were saved with; the paper's five for a run without one). A run on another schema adds
``rating_schema`` (``schema.to_dict()``) to :func:`collect`'s fields; the paper's fields are as they were.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from vqalib.schema import rating
from vqalib.schema.rating import RatingSchema

#: The notebooks a full run holds, in order (``notebooks/NN_name.py``).
NOTEBOOKS: tuple[str, ...] = ("01_data_statistics", "02_annotator_agreement", "03_aso_derivation", "04_sft",
                              "05_grpo", "06_aso", "07_evaluation")
METHODS: tuple[str, ...] = ("sft", "grpo", "aso")
LABEL = {"sft": "SFT", "grpo": "GRPO", "aso": "ASO"}
#: ``aso/zero_mass/at_label/<key>`` of notebook 06, in the order shown
AT_LABEL = {"pi_ref": "π_ref", "pi_star": "π* (ε = 0, the paper)", "aso": "ASO model (ε = 0)",
            "pi_star_eps": "π* with the floor ε", "aso_eps": "ASO model trained with the floor ε"}
GENERATED_BY = "python -m vqalib report {runs} --markdown"


class RunFolderError(FileNotFoundError):
    """A folder given to ``report`` is not a run folder (no ``manifest.json``)."""


class _Reader:
    """Reads one run folder and records every file or key it looked for and did not find."""

    def __init__(self, run_dir: Path):
        self.root = run_dir
        self.missing: list[str] = []
        self._json: dict[str, Any] = {}
        self.schema = run_schema(run_dir)

    def json(self, rel: str) -> dict[str, Any] | None:
        if rel not in self._json:
            path = self.root / rel
            self._json[rel] = json.loads(path.read_text()) if path.is_file() else None
            if self._json[rel] is None:
                self.missing.append(f"{rel}: file not found")
        return self._json[rel]

    def table(self, rel: str) -> pd.DataFrame | None:
        path = self.root / rel
        if not path.is_file():
            self.missing.append(f"{rel}: file not found")
            return None
        return pd.read_csv(path)

    def get(self, rel: str, key: str) -> Any:
        """``key`` of the JSON file ``rel``; ``None`` (and a ``missing`` entry) when the file or key is absent."""
        data = self.json(rel)
        if data is None:
            return None
        if key not in data:
            self.missing.append(f"{rel}: {key}")
            return None
        return _num(data[key])


def run_schema(run_dir: str | os.PathLike) -> RatingSchema:
    """The rating schema of a run folder: ``rating_schema.json`` of its SFT checkpoint, else of any other
    checkpoint (``checkpoints/*/``), else of the folder itself; the paper's when none has one."""
    root = Path(run_dir)
    ckpts = root / "checkpoints"
    folders = [ckpts / "sft", *sorted(ckpts.glob("*"))] if ckpts.is_dir() else []
    for f in [*folders, root]:
        if (f / rating.SCHEMA_FILE).is_file():
            return rating.schema_of_folder(f)
    return rating.PAPER


def result_schema(res: dict[str, Any]) -> RatingSchema:
    """The rating schema of :func:`collect`'s fields (``rating_schema``; absent: the paper's)."""
    saved = res.get("rating_schema")
    return rating.schema_from_dict(saved, where=f"{res.get('run_dir')}: rating_schema") if saved else rating.PAPER


def _num(v: Any) -> Any:
    """NaN and infinities as ``None`` (metrics.json writes NaN as null: the same here for tables)."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _interval(est: Any, lo: Any, hi: Any) -> dict[str, float | None]:
    return {"estimate": _num(est), "ci_low": _num(lo), "ci_high": _num(hi)}


def _commit_date(sha: str | None) -> str | None:
    """The commit date (``YYYY-MM-DD``) from the checkout's git history, or ``None`` when git does not know it."""
    if not sha:
        return None
    from vqalib.core.runs import project_root

    try:
        out = subprocess.run(["git", "show", "-s", "--format=%cs", sha], cwd=project_root(), capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


# ------------------------------------------------------------------------------------------ sections


def _source(r: _Reader) -> dict[str, Any]:
    man = r.json("manifest.json") or {}
    env = man.get("environment") or {}
    commit = env.get("commit")
    sha = commit.removesuffix("-dirty") if commit else None
    mtime = (r.root / "manifest.json").stat().st_mtime
    return {"commit": sha, "dirty": bool(commit and commit.endswith("-dirty")), "commit_date": _commit_date(sha),
            "manifest_written": datetime.fromtimestamp(mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "params_set": man.get("params_set"), "overrides": man.get("overrides") or {},
            "versions": {k: env.get(k) for k in ("python", "torch", "transformers", "platform") if env.get(k)}}


def _notebooks(r: _Reader) -> dict[str, Any]:
    man = r.json("manifest.json") or {}
    rows = [{"notebook": Path(e["notebook"]).stem, "status": e.get("status"), "wall_s": e.get("wall_s")}
            for e in man.get("notebooks", [])]
    earlier = [Path(e["notebook"]).stem for e in man.get("earlier_notebooks", [])]
    ran = {row["notebook"] for row in rows}
    for nb in NOTEBOOKS:
        if nb not in ran:
            r.missing.append(f"manifest.json: notebook {nb} did not run in this run"
                             + (" (an earlier run into the folder did)" if nb in earlier else ""))
    if "total_wall_s" not in man:
        r.missing.append("manifest.json: total_wall_s")
    return {"notebooks": rows, "total_wall_s": man.get("total_wall_s"), "earlier_notebooks": earlier}


def _data(r: _Reader) -> dict[str, Any]:
    m = "01_data_statistics/metrics.json"
    return {k: r.get(m, k) for k in ("n_videos", "n_train_videos", "n_test_videos")}


def _sft(r: _Reader) -> dict[str, Any]:
    m = "04_sft/metrics.json"
    out: dict[str, Any] = {k: r.get(m, f"sft/{k}") for k in ("steps", "train_s", "n_test_clips", "parse_failures")}
    out["n_dims_srcc_ge_0.6"] = r.get(m, "sft/n_dims_srcc_ge_0.6")
    table = r.table("04_sft/tables/sft_vs_base.csv")
    srcc: dict[str, dict[str, float | None]] = {}
    for dim in r.schema.keys:
        row = None if table is None else table[(table["model"] == "sft") & (table["metric"] == "srcc")
                                               & (table["dimension"] == dim)]
        if row is None or not len(row):
            if table is not None:
                r.missing.append(f"04_sft/tables/sft_vs_base.csv: sft srcc {dim}")
            srcc[dim] = _interval(r.get(m, f"sft/test_srcc/{dim}"), None, None)
        else:
            srcc[dim] = _interval(row["value"].iloc[0], row["ci_low"].iloc[0], row["ci_high"].iloc[0])
    out["srcc"] = srcc
    data = r.json(m) or {}
    pre = {k.removeprefix("pretrain/"): _num(v) for k, v in data.items() if k.startswith("pretrain/")}
    if data and not pre:
        r.missing.append(f"{m}: pretrain/* (no pre-trained vision tower: MODEL was not tiny-pretrained)")
    out["pretrain"] = {"seconds": pre.get("seconds"), "steps": pre.get("steps"), "n_clips": pre.get("n_clips"),
                       "heldout_r2": {k.removeprefix("heldout_r2/"): v for k, v in pre.items()
                                      if k.startswith("heldout_r2/")}} if pre else None
    return out


def _train_manifest(r: _Reader, name: str) -> dict[str, Any] | None:
    rel = f"checkpoints/{name}/vqalib_train_manifest.json"
    return r.json(rel)


def _comparison(r: _Reader) -> dict[str, Any]:
    m07 = "07_evaluation/metrics.json"
    data = r.json(m07)
    boot: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for key, value in (data or {}).items():
        parts = key.split("/")
        if parts[0] == "compare" and len(parts) == 6:
            _, kind, name, dim, metric, stat = parts
            boot.setdefault((kind, name, dim, metric), {})[stat] = _num(value)
    if data is not None and not boot:
        r.missing.append(f"{m07}: compare/* (the comparison section did not run: no GRPO or ASO predictions)")

    def iv(kind: str, name: str, dim: str, metric: str) -> dict[str, float | None] | None:
        got = boot.get((kind, name, dim, metric))
        return None if got is None else _interval(got.get("estimate"), got.get("ci_low"), got.get("ci_high"))

    keys = r.schema.keys
    methods = {}
    for meth in METHODS:
        if any(k[:2] == ("method", meth) for k in boot):
            methods[meth] = {"srcc_mean": iv("method", meth, "mean", "srcc"), "mae_mean": iv("method", meth, "mean", "mae"),
                             "srcc": {d: iv("method", meth, d, "srcc") for d in keys},
                             "seeds": _num((data or {}).get(f"compare/{meth}/seeds"))}
    contrasts = {}
    for name in dict.fromkeys(k[1] for k in boot if k[0] == "difference"):
        contrasts[name] = {"srcc_mean": iv("difference", name, "mean", "srcc"),
                           "mae_mean": iv("difference", name, "mean", "mae"),
                           "srcc": {d: iv("difference", name, d, "srcc") for d in keys},
                           "mae": {d: iv("difference", name, d, "mae") for d in keys}}
    excluding = [{"contrast": name, "dimension": d, "metric": metric, **c[metric][d]}
                 for name, c in contrasts.items() for metric in ("srcc", "mae") for d in keys
                 if c[metric][d] and excludes_zero(c[metric][d])]
    n_per_dim = sum(1 for c in contrasts.values() for d in keys
                    if c["srcc"][d] and c["srcc"][d]["ci_low"] is not None)
    means_excluding = [{"contrast": name, "metric": metric, **c[f"{metric}_mean"]}
                       for name, c in contrasts.items() for metric in ("srcc", "mae")
                       if c[f"{metric}_mean"] and excludes_zero(c[f"{metric}_mean"])]

    table = r.table("07_evaluation/tables/method_comparison.csv") if data is not None and boot else None
    n_clips = int(table["n_clips"].iloc[0]) if table is not None and len(table) else None
    n_boot = int(table["n_boot"].max()) if table is not None and len(table) else None

    runs: dict[str, list[dict[str, Any]]] = {}
    for meth, nb in (("grpo", "05_grpo"), ("aso", "06_aso")):
        mdata = r.json(f"{nb}/metrics.json") or {}
        seeds = sorted(int(k.rsplit("seed", 1)[1]) for k in mdata if k.startswith(f"{meth}/steps/seed"))
        runs[meth] = [{"seed": s, "steps": _num(mdata.get(f"{meth}/steps/seed{s}")),
                       "train_seconds": _num(mdata.get(f"{meth}/train_seconds/seed{s}")),
                       "stopped_by": mdata.get(f"{meth}/stopped_by/seed{s}")} for s in seeds]
        if mdata and not seeds:
            r.missing.append(f"{nb}/metrics.json: {meth}/steps/seed<k>")
    budget = {meth: r.get(f"{nb}/metrics.json", f"{meth}/budget_s") for meth, nb in (("grpo", "05_grpo"), ("aso", "06_aso"))}
    grpo_cfg = ((_train_manifest(r, "grpo") or {}).get("config") or {}) if (r.root / "checkpoints" / "grpo").is_dir() else {}
    curve_clips: list[int] = []
    for nb in ("05_grpo", "06_aso"):
        path = r.root / nb / "tables" / "curve.csv"
        if path.is_file():
            curve = pd.read_csv(path)
            curve_clips += [int(n) for n in curve["n_clips"].dropna().unique()]
    from vqalib.report.compare import MIN_STEPS, OVERRUN

    # the same checks as notebook 07's verdict (vqalib.report.compare.verdicts): a run with too few steps, or whose
    # clock passed its budget by far, is not a trained method at equal compute
    few = [{"method": m, **x} for m, rs in runs.items() for x in rs
           if budget.get(m) and x["steps"] is not None and x["steps"] < MIN_STEPS]
    over = [{"method": m, **x} for m, rs in runs.items() for x in rs
            if budget.get(m) and x["train_seconds"] is not None and x["train_seconds"] > OVERRUN * budget[m]]
    return {"budget_s": budget, "num_generations": grpo_cfg.get("num_generations"),
            "too_few_steps": few, "clock_overrun": over, "min_steps": MIN_STEPS, "overrun": OVERRUN,
            "eval_every_s": grpo_cfg.get("eval_every_seconds"), "curve_clips": sorted(set(curve_clips)),
            "n_clips": n_clips, "n_boot": n_boot, "runs": runs, "methods": methods, "contrasts": contrasts,
            "intervals_excluding_zero": excluding, "mean_intervals_excluding_zero": means_excluding,
            "n_per_dimension_srcc_intervals": n_per_dim}


def excludes_zero(iv: dict[str, float | None]) -> bool:
    """True when the interval exists and 0 lies outside it."""
    lo, hi = iv.get("ci_low"), iv.get("ci_high")
    return lo is not None and hi is not None and not lo <= 0 <= hi


def _aso_diagnostics(r: _Reader) -> dict[str, Any]:
    """H(π*) (notebook 06's ``aso/target_entropy``: mean over the first seed's logged batches) and
    KL(π* ‖ π_θ) per logged batch of every seed's checkpoint (``aso``, ``aso_seed<k>``; not ``aso_eps``)."""
    ck = r.root / "checkpoints"
    names = sorted(p.name for p in ck.glob("aso*") if p.name == "aso" or p.name.startswith("aso_seed")) if ck.is_dir() else []
    kl: dict[str, list[float]] = {}
    for name in names:
        man = _train_manifest(r, name) or {}
        seed = (man.get("config") or {}).get("seed", name)
        kl[str(seed)] = [float(h["kl_to_target"]) for h in man.get("log_history", []) if h.get("kl_to_target") is not None]
    if (r.root / "06_aso").is_dir() and not names:
        r.missing.append("checkpoints/aso*/vqalib_train_manifest.json: file not found")
    values = [v for seq in kl.values() for v in seq]
    return {"target_entropy": r.get("06_aso/metrics.json", "aso/target_entropy"),
            "kl_first": {s: seq[0] for s, seq in kl.items() if seq}, "kl_last": {s: seq[-1] for s, seq in kl.items() if seq},
            "kl_range": [min(values), max(values)] if values else None, "kl_batches": sum(map(len, kl.values()))}


def _zero_mass(r: _Reader) -> dict[str, Any] | None:
    m = "06_aso/metrics.json"
    data = r.json(m)
    if data is None:
        return None
    if not any(k.startswith("aso/zero_mass/") for k in data):
        r.missing.append(f"{m}: aso/zero_mass/* (the limitation section did not run: on-policy or keyword target)")
        return None
    counts = []
    table = r.table("06_aso/tables/zero_mass_counts.csv")
    if table is not None:
        counts = [{"threshold": float(t.threshold), "n_pairs": int(t.n_pairs), "n_total": int(t.n_total)}
                  for t in table.itertuples()]
    return {"counts": counts, "at_label": {k: r.get(m, f"aso/zero_mass/at_label/{k}") for k in AT_LABEL},
            "eps": r.get(m, "aso/eps/eps"), "eps_steps": r.get(m, "aso/eps/steps")}


def collect(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Every number :func:`render_markdown` shows, read from ``run_dir`` (a run folder of ``run-notebooks``).

    Returns a JSON-able dict: ``run_dir``, ``source`` (commit, commit date, when the manifest was written,
    parameter set, overrides, versions), ``notebooks`` (status and wall seconds per notebook, total),
    ``data``, ``sft``, ``comparison``, ``aso_diagnostics``, ``zero_mass`` and ``missing`` (``"path: key"``
    for each file or key looked for and not found). Raises :class:`RunFolderError` when ``run_dir`` has no
    ``manifest.json``.
    """
    root = Path(run_dir)
    if not (root / "manifest.json").is_file():
        raise RunFolderError(f"{root}/manifest.json not found: {root} is not a run folder. Make one with "
                             f"`python -m vqalib run-notebooks --run-dir {run_dir}` (or `make demo` for runs/demo)")
    r = _Reader(root)
    out = {"run_dir": str(run_dir), "source": _source(r), "notebooks": _notebooks(r)}
    done = {row["notebook"] for row in out["notebooks"]["notebooks"]} | set(out["notebooks"]["earlier_notebooks"])
    out["data"] = _data(r) if "01_data_statistics" in done else None
    out["sft"] = _sft(r) if "04_sft" in done else None
    out["comparison"] = _comparison(r) if "07_evaluation" in done else None
    out["aso_diagnostics"] = _aso_diagnostics(r) if "06_aso" in done else None
    out["zero_mass"] = _zero_mass(r) if "06_aso" in done else None
    out["missing"] = list(dict.fromkeys(r.missing))
    if not r.schema.is_paper:
        out["rating_schema"] = r.schema.to_dict()
    return out


# ------------------------------------------------------------------------------------------ markdown

DASH = "—"


def _f(v: Any, digits: int = 3, signed: bool = False) -> str:
    if v is None:
        return "undefined"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _fiv(iv: dict[str, float | None] | None, digits: int = 3, signed: bool = False) -> str:
    """``0.77 [0.68, 0.85]``; ``—`` when not in the run, ``undefined`` for a NaN estimate."""
    if iv is None:
        return DASH
    text = _f(iv["estimate"], digits, signed)
    if iv["estimate"] is not None and iv["ci_low"] is not None and iv["ci_high"] is not None:
        text += f" [{_f(iv['ci_low'], digits, signed)}, {_f(iv['ci_high'], digits, signed)}]"
    return text


def _val(v: Any, fmt: str = "{}") -> str:
    return DASH if v is None else fmt.format(v)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |",
            *("| " + " | ".join(row) + " |" for row in rows)]


def _label(name: str) -> str:
    """``"aso − grpo"`` -> ``"ASO − GRPO"``."""
    return " − ".join(LABEL.get(p.strip(), p.strip()) for p in name.split("−"))


def _run_section(res: dict[str, Any]) -> list[str]:
    src, nbs = res["source"], res["notebooks"]
    run = res["run_dir"]
    out = [f"## Run `{run}`", ""]
    commit = (src["commit"] or "not recorded") + (" with uncommitted changes (-dirty)" if src["dirty"] else "")
    out += _table(["", ""], [
        ["commit", f"`{commit}`" + (f" ({src['commit_date']})" if src["commit_date"] else "")],
        ["manifest.json written", src["manifest_written"]],
        ["parameter set", f"`{src['params_set']}`" if src["params_set"] else "the notebooks' defaults"],
        ["overrides (`-p`)", ", ".join(f"`{k}={v}`" for k, v in src["overrides"].items()) or "none"],
        ["versions", ", ".join(f"{k} {v}" for k, v in src["versions"].items() if k != "platform") or DASH],
        ["platform", src["versions"].get("platform", DASH)],
    ])
    out += ["", f"Wall time per notebook (`{run}/manifest.json`; it depends on the machine and its load, which a run "
                "folder does not record):", ""]
    rows = [[f"`{n['notebook']}`", _val(n["status"]), _val(n["wall_s"], "{:.0f} s")] for n in nbs["notebooks"]]
    rows.append(["**total**", "", _val(nbs["total_wall_s"], "**{:.0f} s**")])
    out += _table(["notebook", "status", "wall time"], rows)
    sft = res["sft"]
    if sft and (sft["pretrain"] or sft["train_s"] is not None):
        pre = sft["pretrain"]
        out += ["", f"Inside `04_sft`: SFT training {_val(sft['train_s'], '{:.0f} s')}"
                + (f", building or reading the pre-trained vision tower {_val(pre['seconds'], '{:.0f} s')}" if pre else "")
                + " (`04_sft/metrics.json`: `sft/train_s`" + (", `pretrain/seconds`" if pre else "") + ")."]
    data = res["data"]
    if data:
        out += ["", f"Dataset (`01_data_statistics/metrics.json`): {_val(data['n_videos'])} clips, "
                    f"{_val(data['n_train_videos'])} train / {_val(data['n_test_videos'])} test."]
    out += [""]
    if sft:
        out += _sft_section(res)
    if res["comparison"]:
        out += _comparison_section(res)
    if res["zero_mass"]:
        out += _zero_mass_section(res)
    out += [f"### Not in this run", ""]
    out += [f"- `{m}`" for m in res["missing"]] or ["Nothing: every file and key the report reads was found."]
    return out + [""]


def _sft_section(res: dict[str, Any]) -> list[str]:
    sft, run = res["sft"], res["run_dir"]
    schema = result_schema(res)
    keys = schema.keys
    out = ["### SFT (notebook 04)", "",
           f"Held-out SRCC of the parsed answers on {_val(sft['n_test_clips'])} test clips after "
           f"{_val(sft['steps'])} steps, 95 % bootstrap intervals over clips (`{run}/04_sft/tables/sft_vs_base.csv`); "
           f"dimensions with SRCC ≥ 0.6: {_val(sft['n_dims_srcc_ge_0.6'])} of {len(keys)}; "
           f"unparsed answers: {_val(sft['parse_failures'])}.", ""]
    out += _table([schema.name_of(d) for d in keys], [[_fiv(sft["srcc"][d], 2) for d in keys]])
    pre = sft["pretrain"]
    if pre:
        r2 = ", ".join(f"{k} {_f(v, 2)}" for k, v in pre["heldout_r2"].items())
        out += ["", f"Vision tower pre-trained for {_val(pre['steps'])} steps on {_val(pre['n_clips'])} unrated "
                    f"clips; held-out R² of the renderer's settings: {r2 or DASH} (`04_sft/metrics.json`, `pretrain/*`)."]
    return out + [""]


def _comparison_section(res: dict[str, Any]) -> list[str]:
    c, run = res["comparison"], res["run_dir"]
    schema = result_schema(res)
    keys = schema.keys
    out = ["### GRPO vs ASO at equal compute (notebooks 05–07)", ""]
    steps = "; ".join(f"{LABEL[m]} " + ", ".join(f"seed {x['seed']}: {_val(x['steps'])}" for x in rs)
                      for m, rs in c["runs"].items() if rs)
    budgets = ", ".join(f"{LABEL[m]} {_val(b, '{:g} s')}" for m, b in c["budget_s"].items())
    curve = (f"held-out curve every {c['eval_every_s']:g} s on {'/'.join(map(str, c['curve_clips']))} clips; "
             if c["eval_every_s"] and c["curve_clips"] else "")
    out += [f"From the same SFT checkpoint, each seed trained for a training-clock budget ({budgets}; the steps a budget "
            "buys depend on the machine's speed and load, so these numbers move between runs, unlike SFT's); "
            + (f"GRPO with G = {c['num_generations']}; " if c["num_generations"] else "")
            + f"optimisation steps reached: {steps or DASH}; {curve}final predictions on {_val(c['n_clips'])} clips; "
            f"{_val(c['n_boot'])} resamples of a bootstrap over clips and seeds "
            f"(`{run}/07_evaluation/metrics.json`, `compare/*`; `07_evaluation/tables/method_comparison.csv`).", ""]
    if c["too_few_steps"] or c["clock_overrun"]:
        out += ["**Not a comparison of trained methods:** "
                + "; ".join([f"{LABEL[x['method']]} seed {x['seed']} took {x['steps']} step(s) (fewer than {c['min_steps']})"
                             for x in c["too_few_steps"]]
                            + [f"{LABEL[x['method']]} seed {x['seed']} ran {x['train_seconds']:.1f} training s on a "
                               f"{c['budget_s'][x['method']]:g} s budget (more than {c['overrun']:g}×)" for x in c["clock_overrun"]])
                + ". One step took a large share of the budget (a slow or busy machine), so the runs are close to the SFT "
                  "checkpoint and the differences below say nothing about the methods (notebook 07 gives no verdict); "
                  "rerun on an idle machine or with a larger `BUDGET_S`.", ""]
    out += _table(["method", "seeds", "mean SRCC [95 % CI]", "mean MAE [95 % CI]"],
                  [[LABEL[m], _val(v["seeds"]), _fiv(v["srcc_mean"]), _fiv(v["mae_mean"])] for m, v in c["methods"].items()])
    out += [""]
    out += _table(["difference", "mean SRCC [95 % CI]", "mean MAE [95 % CI]", *[schema.name_of(d) + " SRCC" for d in keys]],
                  [[_label(n), _fiv(v["srcc_mean"], signed=True), _fiv(v["mae_mean"], signed=True),
                    *[_fiv(v["srcc"][d], signed=True) for d in keys]] for n, v in c["contrasts"].items()])
    n_mean = len(c["mean_intervals_excluding_zero"])
    per_dim = [x for x in c["intervals_excluding_zero"] if x["metric"] == "srcc"]
    out += ["", f"Intervals that exclude 0: {n_mean} of the {2 * len(c['contrasts'])} mean-SRCC and mean-MAE "
                f"differences, {len(per_dim)} of the {c['n_per_dimension_srcc_intervals']} per-dimension SRCC differences"
                + ("" if not (per_dim or n_mean) else ": " + "; ".join(
                    [f"{_label(x['contrast'])} mean {x['metric'].upper()} {_fiv(x, signed=True)}"
                     for x in c["mean_intervals_excluding_zero"]]
                    + [f"{_label(x['contrast'])} {schema.name_of(x['dimension'])} {x['metric'].upper()} {_fiv(x, signed=True)}"
                       for x in c["intervals_excluding_zero"]])) + "."]
    diag = res["aso_diagnostics"]
    if diag and (diag["target_entropy"] is not None or diag["kl_range"]):
        first = ", ".join(f"seed {s} {_f(v)}" for s, v in diag["kl_first"].items())
        last = ", ".join(f"seed {s} {_f(v)}" for s, v in diag["kl_last"].items())
        rng = diag["kl_range"]
        out += ["", f"ASO's score loss is H(π*) + KL(π* ‖ π_θ) per score: H(π*) averaged "
                    f"{_f(diag['target_entropy'], 2)} nats over the first seed's logged batches "
                    f"(`06_aso/metrics.json`, `aso/target_entropy`); KL(π* ‖ π_θ) at the first logged batch {first or DASH}, "
                    f"at the last {last or DASH}, "
                    + (f"within {_f(rng[0])}–{_f(rng[1])} over all {diag['kl_batches']} logged batches"
                       if rng else "no logged batch")
                    + " (`log_history` in `checkpoints/aso*/vqalib_train_manifest.json`)."]
    return out + [""]


def _zero_mass_section(res: dict[str, Any]) -> list[str]:
    z = res["zero_mass"]
    out = ["### The paper's limitation: levels π_ref barely reaches (notebook 06)", ""]
    counts = "; ".join(f"{x['n_pairs']} of the {x['n_total']} training (clip, dimension) pairs have π_ref(s*) < {x['threshold']:g}"
                       for x in z["counts"])
    out += [(counts + ". " if counts else "") + "On the pair with the smallest π_ref(s*), the probability of the human "
            f"level under each distribution (ε = {_val(z['eps'], '{:g}')}, the floored run trained "
            f"{_val(z['eps_steps'])} steps; `06_aso/metrics.json`, `aso/zero_mass/*`):", ""]
    out += _table(list(AT_LABEL.values()), [[_f(z["at_label"][k], 4) for k in AT_LABEL]])
    return out + [""]


def _sft_across_runs(results: Sequence[dict[str, Any]]) -> list[str]:
    with_sft = [r for r in results if r["sft"]]
    if len(with_sft) < 2:
        return []
    out = ["## SFT held-out SRCC across the runs", "",
           "One row per run folder (each row's interval: 95 % bootstrap over clips), then the mean of the runs' estimates.", ""]
    schema = result_schema(with_sft[0])
    keys = schema.keys
    other = [r["run_dir"] for r in with_sft if result_schema(r) != schema]
    if other:
        raise ValueError(f"runs {other} were trained on another rating schema than {with_sft[0]['run_dir']} "
                         f"({schema!r}); report them separately")
    rows = [[f"`{r['run_dir']}`", *[_fiv(r["sft"]["srcc"][d], 2) for d in keys]] for r in with_sft]
    means = []
    for d in keys:
        vals = [r["sft"]["srcc"][d]["estimate"] for r in with_sft]
        means.append(DASH if any(v is None for v in vals) else f"**{sum(vals) / len(vals):.2f}**")
    rows.append([f"**mean of {len(with_sft)} runs**", *means])
    return out + _table(["run", *[schema.name_of(d) for d in keys]], rows) + [""]


def render_markdown(results: Sequence[dict[str, Any]]) -> str:
    """``docs/results.md``: a section per run folder (:func:`collect`), then the SFT rows of all of them."""
    runs = " ".join(r["run_dir"] for r in results)
    lines = ["# Results of the embedded default", "",
             f"Generated by `{GENERATED_BY.format(runs=runs)}` from the run folder(s) below; do not edit by hand. "
             "Every number is read from the run's `manifest.json`, `NN_name/metrics.json`, tables and training "
             "manifests (`vqalib/report/results.py` names each source); what a run does not hold is listed under "
             "\"Not in this run\", never filled in. The numbers describe a tiny model trained for minutes on generated "
             "clips: they test the pipeline and compare the methods on a controlled problem, and say nothing about "
             "Qwen2.5-VL-7B on UltraVQA (README, \"What the CPU demo can and cannot tell\").", ""]
    for res in results:
        lines += _run_section(res)
    lines += _sft_across_runs(results)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vqalib report RUN_DIR [RUN_DIR ...] [--markdown] [-o FILE]``."""
    import argparse

    from vqalib.core.runs import cli_path, jsonable

    ap = argparse.ArgumentParser(prog="python -m vqalib report",
                                 description="The results of run folders, read from their files: JSON fields, or the "
                                             "Markdown of docs/results.md with --markdown.")
    ap.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folder(s) of run-notebooks, e.g. runs/demo")
    ap.add_argument("--markdown", action="store_true", help="write Markdown (docs/results.md) instead of JSON")
    ap.add_argument("--output", "-o", default=None, type=cli_path, help="write to this file instead of stdout")
    args = ap.parse_args(argv)
    results = []
    for run_dir in args.run_dirs:
        res = collect(cli_path(run_dir))
        res["run_dir"] = run_dir  # as typed: the Markdown names the folder the way the reader runs it
        results.append(res)
    text = render_markdown(results) if args.markdown else json.dumps(jsonable(results), indent=1, ensure_ascii=False) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        print(text, end="")
    return 0
