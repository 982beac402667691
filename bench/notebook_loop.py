"""Run notebook executions in a loop to show that none hangs (issue 10; not part of CI).

Each iteration executes the chosen notebooks with their smoke parameters through
:func:`vqalib.notebook_runner.run_notebooks` (the main job's path: per-cell timeout, sliced socket
polling) into a fresh run folder, and records the status, the wall time and the slowest cell.
A cell that ran into the per-cell timeout is reported as ``timeout`` (with the cell), never waited on
forever.

    .venv/bin/python bench/notebook_loop.py --only 03 --runs 20 --cell-timeout 300
    .venv/bin/python bench/notebook_loop.py --runs 3                # the whole smoke chain

``--stock`` runs papermill's own nbclient engine instead (with the same per-cell timeout, else a hang
would block the loop): a cell that took about the full timeout there is a missed wake-up that the
project's engine would have caught within a second.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import nbformat


def slowest_cell(executed: Path) -> tuple[float, int, str]:
    """(seconds, index, first source line) of the slowest cell papermill timed in an executed notebook."""
    nb = nbformat.read(executed, as_version=4)
    best = (0.0, -1, "")
    for i, c in enumerate(nb.cells):
        d = (c.get("metadata", {}).get("papermill", {}) or {}).get("duration") or 0.0
        if d > best[0]:
            best = (float(d), i, (c.source.strip().splitlines() or [""])[0][:60])
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="iterations")
    ap.add_argument("--only", default="", help="comma-separated notebook numbers (default: the whole chain)")
    ap.add_argument("--cell-timeout", type=float, default=300.0, help="per-cell timeout in seconds")
    ap.add_argument("--stock", action="store_true", help="papermill's nbclient engine instead of vqalib's")
    ap.add_argument("--out", default="", help="write the per-run results as JSON here")
    args = ap.parse_args(argv)

    from vqalib import notebook_runner as nr

    if args.stock:  # same runner, papermill's engine (execute_notebook passes engine_name through)
        nr.ENGINE_NAME = "nbclient"
        nr._register_engine = lambda: None
    only = [o for o in args.only.split(",") if o] or None
    rows = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="nbloop-") as tmp:
            t0 = time.perf_counter()
            status, err = "ok", ""
            try:
                nr.run_notebooks(tmp, params_set="smoke", only=only, progress_bar=False, cell_timeout=args.cell_timeout)
            except Exception as exc:  # noqa: BLE001 - recorded and counted
                status, err = "failed", str(exc)[:300]
            wall = time.perf_counter() - t0
            slow = max((slowest_cell(p) for p in (Path(tmp) / "notebooks").glob("*.ipynb")), default=(0.0, -1, ""))
        rows.append({"run": i, "status": status, "wall_s": round(wall, 1), "slowest_cell_s": round(slow[0], 1),
                     "slowest_cell": slow[1], "slowest_cell_source": slow[2], "error": err})
        print(json.dumps(rows[-1]), flush=True)
    n_ok = sum(r["status"] == "ok" for r in rows)
    near_timeout = sum(r["slowest_cell_s"] >= 0.9 * args.cell_timeout for r in rows)
    print(f"{n_ok}/{len(rows)} runs ok; {near_timeout} with a cell at >= 90% of the {args.cell_timeout:g} s timeout; "
          f"wall {min(r['wall_s'] for r in rows):.1f}-{max(r['wall_s'] for r in rows):.1f} s", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0 if n_ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
