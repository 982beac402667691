"""Command line: ``python -m vqalib <command> ...`` (also installed as ``vqalib``).

Commands
  run-notebooks   execute every numbered notebook in order into a run folder (the main job)
  train           SFT / GRPO / ASO training (``python -m vqalib train sft --config FILE``);
                  the same functions the notebooks call, so ``accelerate launch -m vqalib train ...``
                  runs them on several GPUs
  sample-data     generate (or find in the cache) the embedded sample dataset and print its path
                  (``--schema mos9|qalign5|int10|FILE``: rated on another rating schema)
  import-labels   a public MOS label file and your copies of its videos as a training dataset
                  (``python -m vqalib import-labels KoNViD --videos DIR --out DIR [--labels FILE]
                  [--schema S] [--std-column COL] [--dmos]``; see data_cards/bring_your_own_shapes.md)
  score           score your videos: one row per video (five scores, 5 x 9 level distributions),
                  resumable (``python -m vqalib score VIDEOS --model M --output scores.csv``)
  benchmark       a Table 2 row on a public MOS benchmark (``python -m vqalib benchmark KoNViD
                  --videos DIR [--labels FILE] --model M``)
  benchmark-suite the standard cross-dataset protocol in one command: LSVQ-test, LSVQ-1080p, KoNViD-1k,
                  LIVE-VQC, YouTube-UGC from locked label files, one table, published numbers beside it
                  (``python -m vqalib benchmark-suite --model M --videos-root DIR``)
  report          the results of run folders, read from their files (``python -m vqalib report
                  runs/demo --markdown > docs/results.md``; JSON fields without ``--markdown``)

Paths typed on the command line (score's VIDEOS and ``--output``, benchmark's ``--videos``,
``--labels``, ``--output``, ``--table``, sample-data's ``--root`` and ``--schema`` (a file), import-labels'
``--videos``, ``--labels``, ``--out`` and ``--schema`` (a file), train's ``--config``,
run-notebooks' ``--run-dir``, report's RUN_DIR and ``--output``) are from the working directory; ``--model`` is a folder there when one
exists, else a folder under the project root, else a hub id. Paths inside a config, a ``--set`` or
a ``-p`` value are from the project root, where the trainers and notebooks read them. The project
root is the checkout (the folder with ``pyproject.toml``); for a package installed without a
checkout it is the working directory.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from vqalib.core.runs import cli_path

#: --model's rule, shown under score's and benchmark's --help
_MODEL_RULE = ("--model is a folder in the working directory when one exists there, else a folder under the project "
               "root, else a hub id or a tiny preset. Any of the three model families: Qwen2.5-VL "
               "(Qwen/Qwen2.5-VL-7B-Instruct, 'tiny', 'tiny-pretrained'), Qwen3-VL (Qwen/Qwen3-VL-8B-Instruct, "
               "'tiny-qwen3-vl') and Qwen3.5 (Qwen/Qwen3.5-9B, 'tiny-qwen3.5'); a folder's family is read from its "
               "config.json (a LoRA adapter's from its base model).")
_SCORE_EPILOG = ("Paths: VIDEOS and --output are from the working directory; the entries of a .txt or .csv video "
                 "list are from the list file's folder. " + _MODEL_RULE)
_BENCHMARK_EPILOG = "Paths: --videos, --labels, --output and --table are from the working directory. " + _MODEL_RULE


def _model_arg(p: str) -> str:
    """``--model``: a local folder (from the working directory) when one exists, else a hub id or a tiny preset
    (``tiny``, ``tiny-pretrained``, ``tiny-qwen3-vl``, ``tiny-qwen3.5``)."""
    return cli_path(p) if os.path.exists(os.path.expanduser(p)) else p


def _sample_data(argv: Sequence[str]) -> int:
    from vqalib.data.synth import ensure_sample_dataset

    args = sample_data_parser().parse_args(argv)
    print(ensure_sample_dataset(size=args.size, seed=args.seed, root=args.root, schema=args.schema))
    return 0


def sample_data_parser():
    """The arguments of ``python -m vqalib sample-data``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m vqalib sample-data")
    ap.add_argument("--size", default="default", help="smoke | default | large")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--root", default=None, type=cli_path, help="output folder (default: the cache)")
    ap.add_argument("--schema", default=None, type=_schema_arg,
                    help="rating schema the simulated raters use: a preset (paper, mos9, qalign5, int10) or a "
                         ".json/.yaml file (default: paper)")
    return ap


def _schema_arg(text: str):
    """``--schema``: a preset name, else a file path from the working directory; read at once, so a typo or a bad
    file is a usage error naming it (argparse prints it and exits 2)."""
    import argparse

    from vqalib.schema.rating import PRESETS, get_schema

    try:
        return get_schema(text if text in PRESETS else cli_path(text))
    except (ValueError, OSError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _import_labels(argv: Sequence[str]) -> int:
    from vqalib.data.dataset import dataset_from_label_file

    args = import_labels_parser().parse_args(argv)
    std = False if (args.std_column or "").lower() == "none" else args.std_column
    ds = dataset_from_label_file(args.name, args.videos, args.out, labels=args.labels, split=args.split,
                                 schema=args.schema, levels=_schema_arg(args.levels), std_column=std, dmos=args.dmos,
                                 test_fraction=args.test_fraction, probe=not args.no_probe, fmt=args.format)
    info = ds.info
    print(f"{args.out}: {len(ds.videos)} videos, {len(ds.ratings)} labels ({info['benchmark']}, {info['rows']} rows in "
          f"{info['source']}; {info['n_unmatched']} without a video"
          + (", listed in unmatched_labels.csv" if info["n_unmatched"] else "") + ")")
    print(f"rating schema: {ds.schema!r}" + (f"; std from {info['std_column']!r}" if info.get("std_column") else "")
          + ("; DMOS flipped" if info.get("dmos") else ""))
    if ds.report is not None and not ds.report.ok:  # rows refused: the written folder lacks them, so say so and fail
        print(ds.report.summary(), file=sys.stderr)
        print(f"error: {sum(ds.report.counts().values())} problem(s) in the labels (above); {args.out} holds only the "
              f"{len(ds.ratings)} accepted label(s). If scores are out of range, the schema's raw_range must be the "
              f"label file's scale ({info.get('scale')}): leave raw_range out of --schema to take it from the file",
              file=sys.stderr)
        return 1
    if len(ds.ratings) == 0:
        print(f"error: no label was imported into {args.out}", file=sys.stderr)
        return 1
    return 0


def import_labels_parser():
    """The arguments of ``python -m vqalib import-labels``."""
    import argparse

    from vqalib.data.mos import BENCHMARKS

    ap = argparse.ArgumentParser(
        prog="python -m vqalib import-labels",
        description="Turn a public MOS label file and your copies of its videos into a training dataset folder "
                    "(one MOS row per clip found, rating_schema.json beside it). Label rows whose video is not "
                    "found are counted and listed in OUT/unmatched_labels.csv.",
        epilog="Paths: --videos, --labels, --out and a --schema file are from the working directory.")
    ap.add_argument("name", help=f"the benchmark: one of {list(BENCHMARKS)}")
    ap.add_argument("--videos", required=True, type=cli_path, help="folder holding the videos (any subset)")
    ap.add_argument("--out", required=True, type=cli_path, help="the dataset folder to write")
    ap.add_argument("--labels", default=None, type=cli_path,
                    help="label file (the authors' file, a FAST-VQA list or a VIDEVAL metadata CSV; default: looked "
                         "for beside the videos, then ../shared/data/labels)")
    ap.add_argument("--split", default=None, help="LSVQ: test | 1080p | train")
    ap.add_argument("--schema", default=None, type=_schema_arg,
                    help="a rating schema (preset or .json/.yaml file) with the dimension the MOS rates; default: "
                         "one 'overall_quality' dimension on the levels of --levels, raw range the file's scale")
    ap.add_argument("--levels", default="mos9", help="levels of the default schema: mos9 (1.0..5.0 by 0.5, "
                                                     "default), qalign5 (bad..excellent), int10, or a schema file")
    ap.add_argument("--std-column", default=None,
                    help="column of the raters' standard deviation (raw scale) for Gaussian soft labels; default: "
                         "mos_std when the file has it (YouTube-UGC); 'none' for none")
    ap.add_argument("--dmos", action="store_true", help="the MOS column is a DMOS (higher = worse): flip it")
    ap.add_argument("--test-fraction", type=float, default=0.2, help="share of clips in the test split")
    ap.add_argument("--format", default="jsonl", choices=["jsonl", "parquet"])
    ap.add_argument("--no-probe", action="store_true", help="do not open the videos for duration, fps and size")
    return ap


def _scorer_args(ap) -> None:
    ap.add_argument("--model", default="tiny", type=_model_arg,
                    help="hub id (Qwen2.5-VL, Qwen3-VL or Qwen3.5, e.g. Qwen/Qwen3-VL-8B-Instruct), local folder, run "
                         "checkpoint (LoRA adapters too) or a tiny preset: tiny, tiny-pretrained, tiny-qwen3-vl, "
                         "tiny-qwen3.5")
    ap.add_argument("--mode", default="fast", choices=["fast", "generate"],
                    help="fast: level distributions only, one pass; generate: rationale + parsed scores + distributions")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--num-workers", type=int, default=2, help="DataLoader processes decoding videos (0 = none)")
    ap.add_argument("--device", default="auto", help="auto (CUDA if visible), cpu, cuda, cuda:1 ...")
    ap.add_argument("--dtype", default=None, help="default: bfloat16 on a GPU, float32 on the CPU")
    ap.add_argument("--max-new-tokens", type=int, default=256, help="generate mode: answer length limit")
    ap.add_argument("--fps", type=float, default=None, help="sampling fps (default: the checkpoint's, else 2.0)")
    ap.add_argument("--max-frames", type=int, default=None)
    ap.add_argument("--max-pixels", type=int, default=None, help="pixels per frame")
    ap.add_argument("--limit", type=int, default=0, help="score only the first N videos (0 = all)")
    ap.add_argument("--overwrite", action="store_true", help="start the output again instead of resuming")
    ap.add_argument("--no-progress", action="store_true")


class _UsageError(ValueError):
    """A command-line error found before the model loads: printed as one ``error:`` line, exit 2."""


class _Stopped(SystemExit):
    """Raised in the main process by the SIGTERM handler (SLURM, ``timeout``, ``kill``)."""


_STOP_SIGNAL: list[int] = []


def _on_sigterm(signum, _frame) -> None:
    """SIGTERM -> an exception in the main process, so the run unwinds: the DataLoader shuts its
    workers down, the output's lock is dropped, the rows written so far stay (rerun to resume)."""
    _STOP_SIGNAL.append(signum)
    raise _Stopped(128 + signum)


def _check_output(output, args) -> None:
    """The output checks that need no model (suffix, path, mode/model of an existing output, lock). Under a
    launcher only rank 0 checks (the ranks' lock probes would refuse each other); the run checks again."""
    from vqalib.inference.shards import world
    from vqalib.inference.store import check_output

    if world()[0] == 0:
        check_output(output, {"model": args.model, "mode": args.mode}, getattr(args, "overwrite", False))


def _preflight_score(args):
    """Everything ``score`` can check before loading the model: the output and the video list. Returns the
    listed videos (``video_id, path``; files skipped as not videos in ``attrs["skipped"]``)."""
    from vqalib.inference.scorer import Scorer
    from vqalib.inference.sources import list_videos

    _check_output(args.output, args)
    try:
        videos = list_videos(args.videos, warn=False)  # ids and skipped files are settled before the model loads
        Scorer.list_items(videos)
    except (FileNotFoundError, _UsageError):
        raise
    except ValueError as exc:  # an id or path used twice, a malformed list: the user's input
        raise _UsageError(str(exc)) from None
    return videos


def _make_scorer(args):
    import dataclasses

    from vqalib.inference.scorer import Scorer, default_sampling, load_scoring_model

    if getattr(args, "no_progress", False):  # also transformers' weight-loading bars, not only the scoring bar
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    net, processor, info = load_scoring_model(args.model, args.device, args.dtype)
    sampling = default_sampling(info)
    over = {k: v for k, v in (("fps", args.fps), ("max_frames", args.max_frames), ("max_pixels", args.max_pixels))
            if v is not None}
    sampling = dataclasses.replace(sampling, **over)
    return Scorer(net, processor=processor, mode=args.mode, sampling=sampling, batch_size=args.batch_size,
                  num_workers=args.num_workers, max_new_tokens=args.max_new_tokens)


def _score(argv: Sequence[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m vqalib score",
                                 description="Score videos: one row per video in a CSV / JSONL / Parquet file; "
                                             "rerunning resumes (videos already in the output are skipped).",
                                 epilog=_SCORE_EPILOG)
    ap.add_argument("videos", type=cli_path, help="a folder, a glob ('clips/*.mp4'), a .txt list or a .csv with a 'path' column")
    ap.add_argument("--output", "-o", required=True, type=cli_path, help="scores.csv, scores.jsonl or scores.parquet")
    _scorer_args(ap)
    args = ap.parse_args(argv)
    from vqalib.inference.sources import skipped_summary

    videos = _preflight_score(args)
    if skipped_summary(videos):
        print(skipped_summary(videos), file=sys.stderr)
    scorer = _make_scorer(args)
    run = scorer.score(videos, args.output, progress=not args.no_progress, overwrite=args.overwrite,
                       limit=args.limit or None)
    from vqalib.inference.shards import world

    if world()[0] != 0:  # a launched run: rank 0 reports for all (the counts are summed over the ranks)
        return 1 if run.n_failed else 0
    print(run.summary())
    if videos.attrs.get("skipped"):
        print(f"{len(videos.attrs['skipped'])} file(s) below {args.videos} were skipped as not videos (listed at the "
              "start: no or another extension, broken symlinks)", file=sys.stderr)
    if run.n_failed:
        print(f"{run.n_failed} video(s) failed to decode (listed above, status decode_error in {args.output}); fix or "
              "remove them and rerun the same command: scored videos are skipped, failed ones are tried again",
              file=sys.stderr)
        return 1
    return 0


def _benchmark(argv: Sequence[str]) -> int:
    import argparse

    import pandas as pd

    from vqalib.inference.benchmark import format_row, run_benchmark
    from vqalib.data.mos import BENCHMARKS

    ap = argparse.ArgumentParser(prog="python -m vqalib benchmark",
                                 description="Score a public MOS benchmark's videos and print a Table 2 row.",
                                 epilog=_BENCHMARK_EPILOG)
    ap.add_argument("name", help=f"one of {list(BENCHMARKS)}")
    ap.add_argument("--videos", required=True, type=cli_path, help="folder holding the benchmark's videos (any subset)")
    ap.add_argument("--labels", default=None, type=cli_path, help="label file as distributed (KoNViD_1k_mos.csv, data.mat, "
                    "MOS_for_YouTube_UGC_dataset.xlsx, labels_test_1080p.csv) or a FAST-VQA labels.txt")
    ap.add_argument("--split", default=None, help="LSVQ: test (default) | 1080p | train; each reads its own file "
                    "(labels_train_test.csv selects test/train by is_test, labels_test_1080p.csv is 1080p)")
    ap.add_argument("--output", "-o", default=None, type=cli_path, help="scores file (default runs/benchmarks/NAME/SPLIT/MODEL.MODE.csv)")
    ap.add_argument("--combination", default=None, help="which predicted dimensions answer the single MOS: "
                    "mean_quality, mean5 (the paper's five) or mean_all, a dimension key, or 'all' (one row each); "
                    "default: the checkpoint's rating schema's rule (mean_quality for the paper's)")
    ap.add_argument("--readout", default="expected_score", choices=["expected_score", "argmax_score", "parsed_score"])
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of the CIs")
    ap.add_argument("--table", default=None, type=cli_path, help="also write the rows to this CSV")
    _scorer_args(ap)
    args = ap.parse_args(argv)
    combos = None if args.combination is None else "all" if args.combination == "all" else [args.combination]
    from vqalib.inference.benchmark import check_readout, default_output

    try:
        check_readout(args.readout, args.mode)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    from vqalib.data.mos import LabelFileError, load_benchmark

    try:  # the labels before the model: a wrong split or label file costs no model load
        bench = load_benchmark(args.name, args.videos, split=args.split, label_file=args.labels)
    except LabelFileError:  # the file's own fault: reported as such by main()
        raise
    except ValueError as exc:  # an unknown split: what was typed
        raise _UsageError(str(exc)) from None
    _check_output(args.output or default_output(args.name, args.model, args.mode, bench.split), args)
    scorer = _make_scorer(args)
    table, info = run_benchmark(args.name, args.videos, labels=args.labels, split=args.split, output=args.output,
                                combinations=combos, readout=args.readout, n_boot=args.n_boot,
                                limit=args.limit or None, progress=not args.no_progress, scorer=scorer, bench=bench)
    from vqalib.inference.shards import world

    if world()[0] != 0:  # a launched run: rank 0 prints and writes the table
        return 0
    print(info["bench"].summary())
    print(info["run"].summary())
    for row in table.to_dict("records"):
        print(format_row(row))
    if args.table:
        table.to_csv(args.table, index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 3):
        print(table.drop(columns=["benchmark", "split"]).to_string(index=False))
    if info["run"].n_failed:  # as score: the failures are listed above, the exit status says there were some
        print(f"{info['run'].n_failed} video(s) failed to decode (listed above, status decode_error in "
              f"{info['output']}); fix or remove them and rerun the same command", file=sys.stderr)
        return 1
    return 0


def _videos_arg(text: str) -> tuple[str, str]:
    """``--videos KEY=DIR`` of benchmark-suite."""
    key, sep, folder = text.partition("=")
    if not sep or not key or not folder:
        raise _UsageError(f"--videos {text!r}: give KEY=DIR, e.g. --videos KoNViD=/data/KoNViD_1k_videos")
    return key, cli_path(folder)


def _benchmark_suite(argv: Sequence[str]) -> int:
    import argparse

    from vqalib.inference.shards import world
    from vqalib.inference.suite import format_markdown, run_suite, side_by_side

    ap = argparse.ArgumentParser(prog="python -m vqalib benchmark-suite",
                                 description="Score a model on every benchmark of a suite (default: LSVQ-test, "
                                             "LSVQ-1080p, KoNViD-1k, LIVE-VQC, YouTube-UGC) and print one table with "
                                             "the published numbers beside it.", epilog=_BENCHMARK_EPILOG)
    ap.add_argument("--suite", default="standard", help="a suite name (env/benchmark_suites/NAME.json) or file")
    ap.add_argument("--videos-root", default=None, type=cli_path, help="a folder holding one folder per benchmark "
                    "key: LSVQ/, KoNViD/, LIVE_VQC/, YouTubeUGC/")
    ap.add_argument("--videos", action="append", default=[], type=str, metavar="KEY=DIR",
                    help="one benchmark's video folder (repeatable; overrides --videos-root)")
    ap.add_argument("--labels-root", default=None, type=cli_path, help="where the suite's label files are "
                    "(default ../shared/data/labels)")
    ap.add_argument("--output-dir", default="runs/benchmarks/suite", type=cli_path,
                    help="scores files, suite.csv, suite.md and suite.json")
    ap.add_argument("--combination", default=None, help="which predicted dimensions answer the single MOS "
                    "(mean_quality, mean5, mean_all or a dimension key); default: the checkpoint's rating schema's rule")
    ap.add_argument("--readout", default="expected_score", choices=["expected_score", "argmax_score", "parsed_score"])
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of the CIs")
    _scorer_args(ap)
    args = ap.parse_args(argv)
    videos = dict(_videos_arg(v) for v in args.videos)
    from vqalib.inference.benchmark import check_readout

    try:
        check_readout(args.readout, args.mode)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    if not videos and not args.videos_root:
        raise _UsageError("give --videos-root ROOT (ROOT/LSVQ, ROOT/KoNViD, ...) or --videos KEY=DIR")
    table = run_suite(videos=videos, videos_root=args.videos_root, suite=args.suite, labels_root=args.labels_root,
                      output_dir=args.output_dir, combination=args.combination, readout=args.readout,
                      n_boot=args.n_boot, scorer=_make_scorer(args), progress=not args.no_progress)
    if world()[0] != 0:
        return 0
    md = format_markdown(side_by_side(table))
    from pathlib import Path

    Path(args.output_dir, "suite.md").write_text(md + "\n")
    print(md)
    print(f"\nwritten: {args.output_dir}/suite.csv (every column), suite.md (this table), suite.json (the locked "
          "label files and the protocol)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(__doc__)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "run-notebooks":
        from vqalib.notebook_runner import main as run_main

        return run_main(rest)
    if cmd == "train":
        from vqalib.train.cli import main as train_main

        return train_main(rest)
    if cmd == "sample-data":
        return _sample_data(rest)
    if cmd == "import-labels":
        from vqalib.data.mos import LabelFileError

        try:
            return _import_labels(rest)
        except (FileNotFoundError, LabelFileError, ValueError) as exc:  # names the file or option and the fix
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if cmd == "report":
        from vqalib.report.results import RunFolderError, main as report_main

        try:
            return report_main(rest)
        except RunFolderError as exc:  # the folder named is not a run folder: the message says how to make one
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if cmd in ("score", "benchmark", "benchmark-suite"):
        import signal
        import threading

        from vqalib.inference.sources import VideoListError
        from vqalib.inference.store import OutputError, OutputLocked, ResumeMismatch
        from vqalib.data.mos import LabelFileError

        _STOP_SIGNAL.clear()
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            return {"score": _score, "benchmark": _benchmark, "benchmark-suite": _benchmark_suite}[cmd](rest)
        except (FileNotFoundError, VideoListError, LabelFileError, OutputError, OutputLocked, ResumeMismatch,
                _UsageError) as exc:
            # what the user typed is wrong (a --model, video or label path, a video list, the output): the
            # message names the file and the fix, so no traceback; most are checked before the model loads
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except BaseException:
            if not _STOP_SIGNAL:
                raise
            # stopped by SIGTERM (also when a DataLoader worker, killed by the same signal, was noticed first)
            print(f"stopped by signal {_STOP_SIGNAL[0]} (SIGTERM); the rows written so far are kept: rerun the same "
                  "command to resume", file=sys.stderr)
            return 128 + _STOP_SIGNAL[0]
        finally:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, previous)
    print(f"unknown command {cmd!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
