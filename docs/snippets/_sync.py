"""Snippets: the code blocks of README.md and docs/*.md, kept as files the tests run (issue 22, part 5).

A Markdown file includes a snippet with a marker line, and the fenced block right after it holds the
snippet's text exactly::

    <!-- snippet: aso_quickstart.py -->
    ```python
    ...the whole of docs/snippets/aso_quickstart.py...
    ```

The snippet file is the single source: edit it, then run ``python docs/snippets/_sync.py --write`` to
copy it into every block that includes it; ``python docs/snippets/_sync.py`` (no option) only checks and
exits 1 naming each block that differs. ``tests/system/test_doc_commands.py`` runs the check and the snippets.
``.py`` snippets become ``python`` blocks, ``.sh`` snippets ``bash`` blocks.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SNIPPETS = Path(__file__).resolve().parent
ROOT = SNIPPETS.parents[1]
LANG = {".py": "python", ".sh": "bash"}
#: a marker line, then a fenced block (its language and body)
INCLUDE = re.compile(r"^<!-- snippet: (?P<name>[\w.-]+) -->\n```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.M | re.S)


def doc_files() -> list[Path]:
    """The Markdown files that may include snippets: README.md, CHANGELOG.md and docs/*.md."""
    return [p for p in (ROOT / "README.md", ROOT / "CHANGELOG.md") if p.is_file()] + sorted((ROOT / "docs").glob("*.md"))


def snippet_files() -> dict[str, Path]:
    """``{name: path}`` of every snippet (``docs/snippets/*.py|*.sh``, this tool excluded)."""
    return {p.name: p for p in sorted(SNIPPETS.iterdir()) if p.suffix in LANG and not p.name.startswith("_")}


def includes(text: str) -> list[re.Match]:
    return list(INCLUDE.finditer(text))


def synced(text: str, where: str) -> str:
    """``text`` with every included block replaced by its snippet file; raises for an unknown snippet."""
    files = snippet_files()

    def block(m: re.Match) -> str:
        name = m["name"]
        if name not in files:
            raise FileNotFoundError(f"{where}: <!-- snippet: {name} --> names no file in {SNIPPETS}; "
                                    f"create docs/snippets/{name} or fix the name (have: {sorted(files)})")
        body = files[name].read_text()
        return f"<!-- snippet: {name} -->\n```{LANG[files[name].suffix]}\n{body}```"

    return INCLUDE.sub(block, text)


def out_of_sync() -> list[str]:
    """``"README.md: aso_quickstart.py"`` for every included block that differs from its snippet."""
    bad = []
    for path in doc_files():
        text = path.read_text()
        for m in includes(text):
            if synced(m.group(0), path.name) != m.group(0):
                bad.append(f"{path.relative_to(ROOT)}: {m['name']}")
    return bad


def main(argv: list[str]) -> int:
    if "--write" in argv:
        for path in doc_files():
            text = path.read_text()
            new = synced(text, path.name)
            if new != text:
                path.write_text(new)
                print(f"updated {path.relative_to(ROOT)}")
        return 0
    bad = out_of_sync()
    for b in bad:
        print(f"{b}: the block differs from docs/snippets/{b.split(': ')[1]}", file=sys.stderr)
    if bad:
        print("run: python docs/snippets/_sync.py --write", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
