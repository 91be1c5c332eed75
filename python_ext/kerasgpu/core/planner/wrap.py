"""The wrap: a cell's code run in the notebook's one strategy scope, as the wrap snippet
(core/snippets/mirrored_strategy.py) writes it; that file is the one source of its lines."""

from __future__ import annotations

import ast
import io
import tokenize

from ..snippets import get as snippet
from .cells import CELL_MAGIC, Cell, Notebook, is_compile, mask_ipython, parse_python

_WRAP = snippet("mirrored_strategy")
# "import kerasgpu", "", then the `with ...scope():  # kerasgpu: ...` line the cell goes under.
_WRAP_HEAD = _WRAP["prefix"].rstrip("\n").split("\n")
WRAP_LINE = _WRAP_HEAD[-1]
WRAP_COMMENT = WRAP_LINE[WRAP_LINE.index("# ") :]
_INDENT = _WRAP["indent"]


def string_continuation_lines(source: str) -> set[int]:
    """0-based numbers of the lines that start inside a multi-line string: indenting them would
    change the string's value."""
    inside: set[int] = set()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(mask_ipython(source)).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return inside
    starts: list[tuple[int, int]] = []
    for tok in tokens:
        kind = tok.type
        if kind == tokenize.STRING:
            inside.update(range(tok.start[0], tok.end[0]))
        elif kind == getattr(tokenize, "FSTRING_START", -1):
            starts.append(tok.start)
        elif kind == getattr(tokenize, "FSTRING_END", -2) and starts:
            begin = starts.pop()
            inside.update(range(begin[0], tok.end[0]))
    # tokenize lines are 1-based; a string starting on line L makes lines L+1.. continuation lines.
    return {line for line in inside}


def wrap_source(source: str) -> str:
    """The cell's code run in the notebook's one strategy scope: leading cell magics stay first,
    string contents are untouched, and a last expression stays outside so Jupyter still shows it."""
    lines = source.strip("\n").split("\n") if source.strip() else []
    head: list[str] = []
    while lines and CELL_MAGIC.match(lines[0]):
        head.append(lines.pop(0))
    body = "\n".join(lines)
    keep = string_continuation_lines(body)
    tail_from = len(lines)
    tree = parse_python(body)
    if tree is not None and tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body[-1]
        nb = Notebook.of([Cell(0, body, tree=tree)])
        if not any(nb.is_build_call(n) for n in ast.walk(last) if isinstance(n, ast.Call)) and not any(
            is_compile(n) for n in ast.walk(last)
        ):
            tail_from = last.lineno - 1
    inner = [
        line if (not line.strip() or n in keep) else _INDENT + line
        for n, line in enumerate(lines[:tail_from])
    ]
    while inner and not inner[-1].strip():
        inner.pop()
    if not any(line.strip() and not line.strip().startswith("#") for line in inner):
        inner.append(_INDENT + "pass")
    out = [*head, *_WRAP_HEAD, *inner]
    tail = lines[tail_from:]
    if tail:
        out += tail
    return "\n".join(out)


def is_wrapped(source: str) -> bool:
    return WRAP_COMMENT in source
