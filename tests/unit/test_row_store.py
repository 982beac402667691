"""The scorer's output file without a model (``vqalib.inference.store.RowStore``): rows whose generated
text holds line-separator characters, and a row torn by a kill. Scorer runs:
``tests/integration/test_scorer.py``."""

from __future__ import annotations

import pandas as pd
import pytest


@pytest.mark.parametrize("sep", ["\x1e", "\x1c", "\x85", "\u2028"])
def test_torn_row_inside_generated_text_with_line_separators(tmp_path, sep):
    """A generated answer can hold characters that str.splitlines treats as line ends and the CSV
    writer leaves unquoted (seen: a tiny model wrote \x1e). A row torn right after one must still be
    seen as torn, and a complete row holding one must read as one row."""
    from vqalib.inference.store import RowStore

    cols = ["video_id", "rationale", "score"]
    out = tmp_path / "s.csv"
    store = RowStore(out, cols, {"mode": "generate"})
    assert store.open().empty
    store.append([{"video_id": "a", "rationale": f"fine{sep}more", "score": 3.0}])
    assert pd.read_csv(out)["rationale"].tolist() == [f"fine{sep}more"]
    store.append([{"video_id": "b", "rationale": f"blur{sep}noise{sep}grain", "score": 2.5}])
    text = out.read_text()
    out.write_text(text[:text.index(f"noise{sep}") + len(f"noise{sep}")])  # killed mid-write, right after one
    with pytest.warns(UserWarning, match="torn last row"):
        done = RowStore(out, cols, {"mode": "generate"}).open()
    assert done["video_id"].tolist() == ["a"] and done["rationale"].tolist() == [f"fine{sep}more"]
