"""Result tables (Markdown + CSV), matplotlib plots (PNG, Agg backend) and a run's HTML index page."""

from __future__ import annotations

import csv
import html
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab_shared.io import atomic_path, atomic_write_text


def _cell(v: Any, floatfmt: str) -> str:
    if isinstance(v, float):
        return format(v, floatfmt)
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
class Section:
    """One part of a results page: a heading, a paragraph, tables (caption, rows) and images."""

    title: str
    text: str = ""
    tables: list[tuple[str, list[dict]]] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    placeholder: bool = False
    ok: bool = True


def _html_table(rows: list[dict], floatfmt: str = ".3f") -> str:
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
            rel = os.path.relpath(Path(img).resolve(), path.parent.resolve())
            parts.append(
                f'<a href="{html.escape(rel)}"><img src="{html.escape(rel)}" alt="{html.escape(rel)}"></a>'
            )
    return atomic_write_text(path, "\n".join(parts) + "\n")
