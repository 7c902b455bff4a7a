"""The demo's report: each study's figures (PNG files beside ``index.html``), each with a
caption and the code or query that made it, its key figures as a table, and the run's
timings; the same key figures as a table in the terminal."""

from __future__ import annotations

import html
import inspect
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Shown:
    """A figure of the report: its PNG file, what it shows, and the code that made it."""

    file: str
    caption: str
    code: str


@dataclass
class Metric:
    """One key figure: its name, value (as shown), and how it was measured."""

    name: str
    value: float
    text: str
    note: str = ""


@dataclass
class Table:
    """A small table of the report (before/after, per model)."""

    title: str
    header: list[str]
    rows: list[list[str]]


@dataclass
class Study:
    """What one study hands to the report."""

    name: str
    title: str
    summary: str
    figures: list[Shown] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def metric(self, name: str, value: float, fmt: str = "{:.3f}", note: str = "") -> None:
        """Add a key figure, formatted with ``fmt``.

        Examples
        --------
        >>> s = Study("x", "X", "")
        >>> s.metric("ROC AUC", 0.98765)
        >>> s.metrics[0].text
        '0.988'
        """
        self.metrics.append(Metric(name, float(value), fmt.format(value), note))


def source(*functions: Callable[..., object]) -> str:
    """The source of the functions that made a figure: what the report shows beside it,
    without their docstrings' examples and the formatter's and type checker's comments
    (which say nothing to a reader of the report).

    Examples
    --------
    >>> def f(x):
    ...     '''Add one.
    ...
    ...     Examples
    ...     --------
    ...     >>> f(1)
    ...     2
    ...     '''
    ...     return x + 1  # fmt: skip
    >>> print(source(f))
    def f(x):
        '''Add one.'''
        return x + 1
    """
    text = "\n\n".join(textwrap.dedent(inspect.getsource(f)).strip() for f in functions)
    text = re.sub(r"\n\n\s*Examples\n\s*-+\n.*?\n\s*(\"\"\"|\'\'\')", r"\1", text, flags=re.S)
    return re.sub(r"  # (fmt: skip|type: ignore\[[\w-]+\])", "", text)


def terminal(studies: Sequence[Study]) -> str:
    """The key figures of every study as a plain-text table.

    Examples
    --------
    >>> s = Study("adversarial", "A", "")
    >>> s.metric("AUC", 0.9)
    >>> print(terminal([s]))
    study        key figure  value
    -----------  ----------  -----
    adversarial  AUC         0.900
    """
    rows = [(s.name, m.name, m.text) for s in studies for m in s.metrics]
    head = ("study", "key figure", "value")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(3)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.95em; margin: 0.4em 0; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
td, th { border: 1px solid #ddd; padding: 0.3em 0.7em; text-align: left; }
th { background: #f3f3f3; } .note { color: #555; font-size: 0.92em; }
"""


def write_html(studies: Sequence[Study], out: Path, title: str, preface: str, runs: Table) -> Path:
    """Write ``out/index.html`` for the studies (their PNG files already in ``out``).

    Examples
    --------
    >>> import tempfile
    >>> s = Study("x", "A study", "What it shows.")
    >>> s.metric("AUC", 0.5)
    >>> path = write_html([s], Path(tempfile.mkdtemp()), "Demo", "Hello.", Table("t", ["a"], [["1"]]))
    >>> "<h2 id=\\"x\\">A study</h2>" in path.read_text()
    True
    """
    e = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{e(title)}</h1><p>{e(preface)}</p>",
        "<ul>" + "".join(f"<li><a href='#{e(s.name)}'>{e(s.title)}</a></li>" for s in studies),
        "</ul>",
    ]
    for s in studies:
        parts.append(f'<h2 id="{e(s.name)}">{e(s.title)}</h2><p>{e(s.summary)}</p>')
        if s.metrics:
            rows = [[m.name, m.text, m.note] for m in s.metrics]
            parts.append(_table(Table("Key figures", ["figure", "value", "measured on"], rows)))
        parts += [_table(t) for t in s.tables]
        for shown in s.figures:
            parts.append(
                f"<figure><img src='{e(shown.file)}' alt='{e(shown.caption)}'>"
                f"<figcaption>{e(shown.caption)}</figcaption>"
                f"<pre><code>{e(shown.code)}</code></pre></figure>"
            )
        parts += [f"<p class='note'>{e(n)}</p>" for n in s.notes]
        parts.append(f"<p class='note'>{s.seconds:.1f} s</p>")
    parts += [_table(runs), "</body></html>"]
    path = out / "index.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _table(table: Table) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in table.header)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in table.rows)
    return f"<p><b>{e(table.title)}</b></p><table><tr>{head}</tr>{body}</table>"
