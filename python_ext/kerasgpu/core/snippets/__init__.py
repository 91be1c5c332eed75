"""The snippet catalog: one real Python file per snippet, with its metadata in a comment header.

A snippet file starts with `# key: value` lines (title, description, placement,
order; an indented `#   ...` line continues the previous value), then a blank
line, then the code. Placement says where the frontend puts it:

- `top`: above the first cell that imports TensorFlow (it must run before
  TensorFlow starts its runtime);
- `wrap`: around the selected cell's code; the line ending in `# {cell}` is
  replaced by that code, indented like the marker line (the file stays valid
  Python because the marker line is `pass  # {cell}`);
- `cursor`: at the cursor, or as a new cell below.

Files are Python (`.py`), or IPython (`.ipy`) where the cell is magics.
Tests run every file in a real kernel with TensorFlow (tests/snippets/).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PLACEMENTS = ("top", "wrap", "cursor")
MARKER = "# {cell}"
_KEY = re.compile(r"^#\s?([a-z_]+):\s*(.*)$")
_MORE = re.compile(r"^#\s{2,}(\S.*)$")


class SnippetError(ValueError):
    """A snippet file whose header or marker is malformed."""


def parse(text: str, snippet_id: str) -> dict[str, Any]:
    """One snippet file's text -> its catalog entry (id, title, description, placement, code, ...)."""
    lines = text.splitlines()
    header: dict[str, str] = {}
    last = None
    i = 0
    while i < len(lines):
        key = _KEY.match(lines[i])
        more = _MORE.match(lines[i])
        if more and last:
            header[last] += " " + more.group(1).strip()
        elif key:
            last = key.group(1)
            header[last] = key.group(2).strip()
        else:
            break
        i += 1
    code = "\n".join(lines[i:]).strip("\n") + "\n"
    for required in ("title", "description", "placement"):
        if not header.get(required):
            raise SnippetError(f"snippet {snippet_id!r} has no {required!r} in its header")
    placement = header["placement"]
    if placement not in PLACEMENTS:
        raise SnippetError(f"snippet {snippet_id!r}: placement {placement!r} is not one of {PLACEMENTS}")
    entry: dict[str, Any] = {
        "id": snippet_id,
        "title": header["title"],
        "description": header["description"],
        "placement": placement,
        "order": int(header.get("order", "100")),
        "code": code,
    }
    marked = [n for n, line in enumerate(code.splitlines()) if line.rstrip().endswith(MARKER)]
    if placement == "wrap":
        if len(marked) != 1:
            raise SnippetError(f"wrap snippet {snippet_id!r} needs exactly one line ending in {MARKER!r}")
        code_lines = code.splitlines(keepends=True)
        n = marked[0]
        marker_line = code_lines[n]
        entry["marker"] = MARKER
        entry["indent"] = marker_line[: len(marker_line) - len(marker_line.lstrip())]
        entry["prefix"] = "".join(code_lines[:n])
        entry["suffix"] = "".join(code_lines[n + 1 :])
    elif marked:
        raise SnippetError(f"only wrap snippets may contain {MARKER!r} ({snippet_id!r} is {placement})")
    return entry


def cell_source(entry: dict[str, Any]) -> str:
    """A snippet's code as a cell's source (no final newline)."""
    return entry["code"].rstrip("\n")


def load_catalog(directory: Path = HERE) -> list[dict[str, Any]]:
    """Every snippet in `directory`, in menu order (then by id)."""
    entries = [
        parse(path.read_text(encoding="utf-8"), path.stem)
        for path in [*directory.glob("*.py"), *directory.glob("*.ipy")]
        if not path.name.startswith("_")
    ]
    return sorted(entries, key=lambda e: (e["order"], e["id"]))


def get(snippet_id: str) -> dict[str, Any]:
    """One snippet by id (KeyError when there is none)."""
    for entry in load_catalog():
        if entry["id"] == snippet_id:
            return entry
    raise KeyError(snippet_id)
