"""One output object for every kernel command: an HTML card in notebooks,
plain text in terminals, and a JSON-able dict for scripts.

IPython picks the form: Jupyter front ends render `_repr_html_`, a terminal
prints `_repr_pretty_`; `to_json()` is what `--json` prints.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

LEVELS = ("ok", "info", "warning", "error")
_MARK = {"ok": "OK", "info": "--", "warning": "!!", "error": "XX"}
_COLOR = {
    "ok": "var(--jp-success-color1, #388e3c)",
    "info": "var(--jp-info-color1, #0288d1)",
    "warning": "var(--jp-warn-color1, #f57c00)",
    "error": "var(--jp-error-color1, #d32f2f)",
}


@dataclass
class Row:
    """One labelled value in a card section."""

    label: str
    value: str
    level: str | None = None


@dataclass
class Section:
    """A titled group of rows."""

    title: str
    rows: list[Row] = field(default_factory=list)
    collapsed: bool = False  # HTML: one line (title and first value) that opens to the rows

    def add(self, label: str, value: Any, level: str | None = None) -> Section:
        self.rows.append(Row(label, _fmt(value), level))
        return self


@dataclass
class Fix:
    """A problem found, what causes it and what to do about it."""

    code: str
    level: str
    problem: str
    fix: str
    commands: list[str] = field(default_factory=list)
    link: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "level": self.level,
            "problem": self.problem,
            "fix": self.fix,
            "commands": list(self.commands),
            "link": self.link,
        }


class TextRepr:
    """`str()`, `repr()` and IPython's pretty printer (terminals) all show `to_text()`."""

    def to_text(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_pretty_(self, p, cycle):
        p.text(self.to_text())


class Card(TextRepr):
    """What a command shows: a headline with a level, sections, fixes, and its data."""

    def __init__(
        self,
        title: str,
        level: str,
        summary: str,
        sections: list[Section] | None = None,
        fixes: list[Fix] | None = None,
        data: dict[str, Any] | None = None,
    ):
        assert level in LEVELS, level
        self.title = title
        self.level = level
        self.summary = summary
        self.sections = sections or []
        self.fixes = fixes or []
        self.data = data if data is not None else {}
        # The verdict's fix commands in the order to run them (diagnosis.fix_commands), under the headline.
        self.order: list[str] = []

    @property
    def ok(self) -> bool:
        return self.level in ("ok", "info")

    def to_json(self) -> dict[str, Any]:
        """The machine-readable form (what `--json` prints)."""
        out = dict(self.data)
        out.setdefault("level", self.level)
        out.setdefault("summary", self.summary)
        out.setdefault("fixes", [f.to_json() for f in self.fixes])
        return out

    def json(self) -> str:
        return json.dumps(self.to_json(), indent=2, default=str)

    def to_text(self) -> str:
        """The terminal form."""
        lines = [f"{self.title}: [{_MARK[self.level]}] {self.summary}"]
        if self.order:
            lines += ["Fix, in this order:", *(f"  {c}" for c in self.order)]
        for sec in self.sections:
            if not sec.rows:
                continue
            lines.append("")
            if sec.collapsed and len(sec.rows) == 1:
                lines.append(f"{sec.title}: {sec.rows[0].value}")
                continue
            lines.append(sec.title)
            width = max(len(r.label) for r in sec.rows)
            for r in sec.rows:
                mark = f" [{_MARK[r.level]}]" if r.level in ("warning", "error") else ""
                lines.append(f"  {r.label.ljust(width)}  {r.value}{mark}")
        if self.fixes:
            lines.append("")
            lines.append("What to do")
            for i, f in enumerate(self.fixes, 1):
                lines.append(f"  {i}. [{_MARK[f.level]}] {f.problem}")
                lines.append(f"     Fix: {f.fix}")
                for c in f.commands:
                    lines.append(f"       {c}")
                if f.link:
                    lines.append(f"     See: {f.link}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """The notebook form: a card styled with JupyterLab's theme variables."""
        e = html.escape
        color = _COLOR[self.level]
        parts = [
            f'<div class="kerasgpu-card kerasgpu-{e(self.level)}" style="border-left:4px solid {color};'
            "padding:6px 10px;margin:4px 0;font-family:var(--jp-ui-font-family);"
            'font-size:var(--jp-ui-font-size1);color:var(--jp-ui-font-color1)">',
            f'<div style="font-weight:600"><span style="color:{color}">{e(self.title)}</span>'
            f" &mdash; {e(self.summary)}</div>",
        ]
        if self.order:
            parts.append(
                '<div class="kerasgpu-order" style="margin-top:4px">Fix, in this order:'
                '<pre style="margin:2px 0;padding:2px 6px;background:var(--jp-layout-color2)">'
                + e("\n".join(self.order))
                + "</pre></div>"
            )
        for sec in self.sections:
            if not sec.rows:
                continue
            if sec.collapsed:
                parts.append(
                    '<details style="margin-top:6px"><summary style="cursor:pointer">'
                    f"<b>{e(sec.title)}</b>: {e(sec.rows[0].value)}</summary>"
                )
            else:
                parts.append(f'<div style="margin-top:6px;font-weight:600">{e(sec.title)}</div>')
            parts.append('<table style="border-collapse:collapse;margin:2px 0">')
            for r in sec.rows:
                color_css = f"color:{_COLOR[r.level]};" if r.level in ("warning", "error") else ""
                parts.append(
                    f'<tr><td style="padding:1px 12px 1px 0;color:var(--jp-ui-font-color2);'
                    f'text-align:left">{e(r.label)}</td><td style="{color_css}text-align:left">'
                    f"<code>{e(r.value)}</code></td></tr>"
                )
            parts.append("</table>" + ("</details>" if sec.collapsed else ""))
        if self.fixes:
            parts.append(
                '<div style="margin-top:6px;font-weight:600">What to do</div><ol style="margin:2px 0">'
            )
            for f in self.fixes:
                parts.append(
                    f'<li><span style="color:{_COLOR[f.level]}">{e(f.problem)}</span><br>'
                    f"<b>Fix:</b> {e(f.fix)}"
                )
                if f.commands:
                    parts.append(
                        '<pre style="margin:2px 0;padding:2px 6px;background:var(--jp-layout-color2)">'
                        + e("\n".join(f.commands))
                        + "</pre>"
                    )
                if f.link:
                    parts.append(f' <a href="{e(f.link)}" target="_blank" rel="noopener">{e(f.link)}</a>')
                parts.append("</li>")
            parts.append("</ol>")
        parts.append("</div>")
        return "".join(parts)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value) if value else "none"
    return str(value)


def worst(levels: list[str]) -> str:
    """The most severe of some levels ("ok" when empty)."""
    return max(levels, key=LEVELS.index) if levels else "ok"
