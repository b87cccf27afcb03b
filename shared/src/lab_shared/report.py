"""Result tables (Markdown + CSV), matplotlib plots (PNG, Agg backend), number formatting for pages, and the
pieces of a results page (Section, Verdict, Figure; `lab report` assembles them in report_html.py)."""

from __future__ import annotations

import csv
import html
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab_shared.io import atomic_path, atomic_write_text


# ---- numbers as a paper prints them ----------------------------------------------------------------------
def sig(v: float | None, digits: int = 3) -> str:
    """`digits` significant digits, never in e-notation (1232.09 -> "1232", 0.01234 -> "0.0123")."""
    if v is None or not math.isfinite(v):
        return "n/a"
    if abs(v) < 1e-12:  # floating-point noise around an exact 0
        return "0"
    mag = math.floor(math.log10(abs(v)))
    if mag >= digits - 1:
        return _minus(f"{round(v):d}")
    return _minus(f"{v:.{digits - 1 - mag}f}")


def _minus(text: str) -> str:
    """A true minus sign for negatives (as printed in papers)."""
    return "\u2212" + text[1:] if text.startswith("-") else text


def fixed(v: float | None, decimals: int = 3) -> str:
    """A fixed number of decimals (accuracies and their differences: 0.780, \u22120.004)."""
    if v is None or not math.isfinite(v):
        return "n/a"
    text = f"{v:.{decimals}f}"
    return "0." + "0" * decimals if float(text) == 0 and decimals else _minus(text)


def integer(v: float | None, sep: bool = False) -> str:
    """A rounded integer (Elo, reads, games); `sep` adds thousands separators."""
    if v is None or not math.isfinite(v):
        return "n/a"
    return _minus(f"{round(v):,d}" if sep else f"{round(v):d}")


def signed(text: str) -> str:
    """A formatted number with its sign, a true minus for negatives."""
    text = _minus(text)
    return text if text.startswith("\u2212") or text == "0" else "+" + text


def pct(v: float | None, decimals: int = 1, sign: bool = True) -> str:
    """A fraction as a percentage ("+2.4%")."""
    if v is None or not math.isfinite(v):
        return "n/a"
    text = _minus(f"{100 * v:.{decimals}f}%")
    return signed(text) if sign else text


def interval(lo: float | None, hi: float | None, fmt=sig) -> str:
    """ "[lo, hi]" with each end formatted by `fmt`."""
    return f"[{fmt(lo)}, {fmt(hi)}]"


_T95 = {1: 12.71, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        15: 2.131, 20: 2.086, 30: 2.042, 60: 2.0}  # fmt: skip


def t95(dof: int) -> float:
    """Two-sided 95% Student-t quantile (the nearest tabulated degrees of freedom at or below; 1.96 past 60)."""
    if dof < 1:
        return math.inf
    if dof > 60:
        return 1.96
    return _T95[max(k for k in _T95 if k <= dof)]


def mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and its 95% t-interval (lo, hi); a single value gives an unbounded interval (nan, nan)."""
    n = len(values)
    m = sum(values) / n
    if n < 2:
        return m, math.nan, math.nan
    sd = math.sqrt(sum((x - m) ** 2 for x in values) / (n - 1))
    h = t95(n - 1) * sd / math.sqrt(n)
    return m, m - h, m + h


def _cell(v: Any, floatfmt: str | None) -> str:
    """A table cell: floats by `floatfmt`, or (None) as a page prints them: >= 100 as integers, else 3
    significant digits."""
    if isinstance(v, float):
        if floatfmt is not None:
            return format(v, floatfmt)
        return integer(v) if math.isfinite(v) and abs(v) >= 100 else sig(v)
    return "" if v is None else str(v)


def _columns(rows: Sequence[dict], columns: Sequence[str] | None) -> list[str]:
    if columns:
        return list(columns)
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    return cols


def markdown_table(rows: Sequence[dict], columns: Sequence[str] | None = None, floatfmt: str = ".3f") -> str:
    cols = _columns(rows, columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(c), floatfmt) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def csv_text(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_columns(rows, columns), extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_table(
    rows: Sequence[dict], path_stem: str | Path, columns: Sequence[str] | None = None, floatfmt: str = ".3f"
) -> tuple[Path, Path]:
    """Write <stem>.md and <stem>.csv atomically; returns both paths."""
    stem = Path(path_stem)
    md, cs = stem.with_suffix(".md"), stem.with_suffix(".csv")
    atomic_write_text(md, markdown_table(rows, columns, floatfmt))
    atomic_write_text(cs, csv_text(rows, columns))
    return md, cs


def pyplot():
    """matplotlib.pyplot on the Agg backend (figures for pages are files, never windows)."""
    return _plt()


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    plt = _plt()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)


def line_plot(
    path: str | Path,
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str = "",
    hlines: dict[str, float] | None = None,
    yerr: dict[str, Sequence[float]] | None = None,
    logx: bool = False,
) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, (xs, ys) in series.items():
        err = (yerr or {}).get(name)
        if err is not None:
            ax.errorbar(xs, ys, yerr=err, marker="o", ms=3, capsize=3, label=name)
        else:
            ax.plot(xs, ys, marker="o", ms=3, label=name)
    for i, (name, y) in enumerate((hlines or {}).items()):
        ax.axhline(y, ls="--", color=f"C{(i + len(series)) % 10}", label=name)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if series or hlines:
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def bar_plot(
    path: str | Path,
    labels: Sequence[str],
    values: Sequence[float],
    ylabel: str,
    title: str = "",
    yerr: Sequence[float] | None = None,
) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.7 * len(labels) + 1.5), 4.0))
    ax.bar(range(len(labels)), values, yerr=yerr, capsize=3, color=[f"C{i % 10}" for i in range(len(labels))])
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def heatmap_plot(
    path: str | Path,
    matrix: Sequence[Sequence[float]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str = "",
    fmt: str = ".2f",
) -> Path:
    import numpy as np

    plt = _plt()
    m = np.asarray(matrix, dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * m.shape[1], 1.0 + 0.6 * m.shape[0]))
    im = ax.imshow(m, cmap="viridis", aspect="auto")
    ax.set_xticks(range(m.shape[1]))
    ax.set_xticklabels(col_labels, rotation=30, ha="right")
    ax.set_yticks(range(m.shape[0]))
    ax.set_yticklabels(row_labels)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if np.isfinite(m[i, j]):
                ax.text(j, i, format(m[i, j], fmt), ha="center", va="center", color="w", fontsize=8)
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax)
    return save_figure(fig, path)


@dataclass
class Verdict:
    """A headline: the claim as a question, the answer, and the numbers (with intervals) behind it."""

    claim: str
    answer: str  # "yes", "no", "not resolved" or a short phrase
    detail: str = ""


@dataclass
class Figure:
    """An image on a page with its caption."""

    path: Path
    caption: str = ""
    wide: bool = False  # spans the page's width (multi-panel figures)


@dataclass
class Section:
    """One part of a results page: a heading, headline verdicts, a paragraph, figures and tables
    (caption, rows). `images` may hold paths or Figures."""

    title: str
    text: str = ""
    tables: list[tuple[str, list[dict]]] = field(default_factory=list)
    images: list[Path | Figure] = field(default_factory=list)
    placeholder: bool = False
    ok: bool = True
    verdicts: list[Verdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one-line problems shown under the heading


def _html_table(rows: list[dict], floatfmt: str | None = None) -> str:
    cols = _columns(rows, None)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c), floatfmt))}</td>" for c in cols) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #ccc;padding:3px 8px;font-size:90%}
th{background:#f3f3f3}img{max-width:48%;margin:4px;border:1px solid #ddd}.ph{color:#a60}.bad{color:#b00}
pre{background:#f6f6f6;padding:.6em;white-space:pre-wrap}"""


def write_index(path: str | Path, title: str, sections: Sequence[Section], intro: str = "") -> Path:
    """An HTML page with each section's text, tables and images (image paths made relative to the page)."""
    path = Path(path)
    parts = [f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title><style>{_CSS}</style>"]
    parts.append(f"<h1>{html.escape(title)}</h1>")
    if intro:
        parts.append(f"<p>{html.escape(intro)}</p>")
    for s in sections:
        cls = " class=ph" if s.placeholder else (" class=bad" if not s.ok else "")
        tag = " (placeholder)" if s.placeholder else ("" if s.ok else " (FAILED)")
        parts.append(f"<h2{cls}>{html.escape(s.title)}{tag}</h2>")
        if s.text:
            parts.append(f"<pre>{html.escape(s.text)}</pre>")
        for caption, rows in s.tables:
            if caption:
                parts.append(f"<h3>{html.escape(caption)}</h3>")
            if rows:
                parts.append(_html_table(rows))
        for img in s.images:
            img = img.path if isinstance(img, Figure) else img
            rel = os.path.relpath(Path(img).resolve(), path.parent.resolve())
            parts.append(
                f'<a href="{html.escape(rel)}"><img src="{html.escape(rel)}" alt="{html.escape(rel)}"></a>'
            )
    return atomic_write_text(path, "\n".join(parts) + "\n")
