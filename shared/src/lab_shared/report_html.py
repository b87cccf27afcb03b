"""`lab report RUN...`: a results page of run folders that reads like a paper's results section.

The page is `index.html` (table of contents, every headline verdict, problems, provenance of every run) and
one page per part (`<part>.html`: verdicts, text, figures, tables, the part's runs). Each package adds its
part through the `lab.reports` entry-point group: the entry point names a module or object with

    TITLE: str                                   # the part's heading
    owns(run: Run) -> bool                       # whether a run folder is this part's
    section(runs: list[Run], fig_dir: Path) -> Section   # verdicts, figures (written under fig_dir), tables
    results_of(run: Run) -> dict | None          # optional: results kept elsewhere than results.json
    ORDER: int                                   # optional: the part's place on the page (low first)

The core imports no package. A run folder that is missing or corrupt, or a part whose section fails, is one
line on the page and on stderr, never a traceback.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from lab_shared.io import atomic_write_text
from lab_shared.provenance import FILE as PROVENANCE
from lab_shared.report import _CSS, Figure, Section, _html_table, integer
from lab_shared.runs import Run, find_runs, load_run, scalars

GROUP = "lab.reports"


@dataclass
class Part:
    """A part of the page: its name (the entry point's), heading, section and runs."""

    name: str
    title: str
    section: Section
    runs: list[Run] = field(default_factory=list)


@dataclass
class Outcome:
    """What `build_report` wrote and the one-line problems it met."""

    pages: list[Path]
    problems: list[str]
    parts: list[Part]

    @property
    def index(self) -> Path:
        return self.pages[0]


def reporters() -> dict[str, Any]:
    """The installed parts' reporters by name (a reporter that fails to load is skipped with a line)."""
    found = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            found[ep.name] = ep.load()
        except Exception as e:  # a broken package must not take the whole page down
            _warn(f"report part {ep.name}: cannot load {ep.value}: {type(e).__name__}: {e}")
    return found


def _warn(line: str) -> None:
    print(f"lab report: {line}", file=sys.stderr)


def check_run(path: Path) -> Run | str:
    """The run folder read from disk, or one line saying why it cannot be reported."""
    if not path.exists():
        return f"run folder not found: {path}"
    if not path.is_dir():
        return f"not a folder: {path}"
    for name in (PROVENANCE, "config.json", "results.json"):
        f = path / name
        if f.is_file():
            try:
                json.loads(f.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as e:
                return f"corrupt {name} in {path}: {type(e).__name__}: {str(e)[:80]}"
    if not (path / PROVENANCE).is_file() and not (path / "config.json").is_file():
        return f"not a run folder (no provenance.json or config.json): {path}"
    return load_run(path)


def expand(specs: Sequence[str | Path]) -> tuple[list[Run], list[str]]:
    """Run folders named on the command line (a folder holding runs, e.g. runs/demo, gives all of them)."""
    runs, problems, seen = [], [], set()
    for spec in specs:
        p = Path(spec)
        if p.is_dir() and not any((p / m).is_file() for m in (PROVENANCE, "config.json")):
            below = find_runs(p)
            if not below:
                problems.append(f"no run folders under {p}")
            paths = below
        else:
            paths = [p]
        for q in paths:
            key = str(q.resolve())
            if key in seen:
                continue
            seen.add(key)
            got = check_run(q)
            (problems.append(got) if isinstance(got, str) else runs.append(got))
    return runs, problems


def config_hash(config: Any) -> str:
    """sha256 (12 hex) of the config as canonical JSON: equal hashes, equal settings."""
    if config is None:
        return "-"
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _parse_time(s: str | None) -> float | None:
    if not s:
        return None
    try:
        return time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def duration(started: str | None, ended: str | None) -> str:
    a, b = _parse_time(started), _parse_time(ended)
    if a is None or b is None:
        return "-"
    s = max(0, int(b - a))
    return (
        f"{s // 3600}h{s % 3600 // 60:02d}m"
        if s >= 3600
        else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")
    )


def provenance_row(run: Run, page_dir: Path) -> dict:
    """One provenance table row: a link to the folder, commit (dirty), config hash, host, times."""
    prov = run.provenance or {}
    git = prov.get("git") or {}
    commit = str(git.get("commit") or "-")[:10]
    if git.get("dirty"):
        commit += " (dirty)"
    return {
        "run": _link(run.path, page_dir, f"{run.command}/{run.name}"),
        "status": run.status,
        "commit": commit if prov else "no provenance.json",
        "config hash": config_hash(run.config),
        "host": prov.get("host") or "-",
        "started": (run.started or "-").replace("T", " ")[:19],
        "took": duration(prov.get("started"), prov.get("ended")),
    }


class _Raw(str):
    """A cell that is already HTML (links)."""


def _link(target: Path, page_dir: Path, text: str) -> _Raw:
    rel = os.path.relpath(target.resolve(), page_dir.resolve())
    return _Raw(f'<a href="{html.escape(rel)}/">{html.escape(text)}</a>')


def _table(rows: list[dict]) -> str:
    """Like report._html_table, but cells that are _Raw stay HTML."""
    if not any(isinstance(v, _Raw) for r in rows for v in r.values()):
        return _html_table(rows)
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{v if isinstance(v, _Raw) else html.escape('' if v is None else str(v))}</td>"
            for v in (r.get(c) for c in cols)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def generic_section(title: str, runs: list[Run]) -> Section:
    """A part with no reporter: the scalar results of each run, side by side."""
    rows = []
    for r in runs:
        vals = scalars(r.results) if isinstance(r.results, dict) else {}
        rows.append({"run": r.name, **{k: v for k, v in list(vals.items())[:8]}})
    return Section(title, text="No report section is installed for these runs; their scalar results:",
                   tables=[("", rows)])  # fmt: skip


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


# ---- HTML ------------------------------------------------------------------------------------------------
_PAGE_CSS = (
    _CSS
    + """
.verdicts{border-left:4px solid #36c;background:#f4f7fc;padding:.4em 1em;margin:.8em 0}
.verdict{margin:.35em 0}.answer{font-weight:600}.answer.yes{color:#070}.answer.no{color:#b00}
.problem{color:#b00;font-family:monospace;margin:.2em 0}figure{display:inline-block;margin:6px;vertical-align:top;
max-width:48%}figure img{max-width:100%;border:1px solid #ddd}figcaption{font-size:85%;color:#444}
figure.wide{max-width:98%;display:block}td{white-space:nowrap}nav ul{margin:.2em 0}.small{font-size:85%;color:#555}"""
)
_IMG_CHECK = """<script>
addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.documentElement.setAttribute('data-images', ok + '/' + imgs.length);
});
</script>"""


def _head(title: str) -> list[str]:
    return [
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>",
        f"<style>{_PAGE_CSS}</style>{_IMG_CHECK}</head><body>",
    ]


def _verdicts_html(section: Section) -> str:
    if not section.verdicts:
        return ""
    items = []
    for v in section.verdicts:
        cls = {"yes": " yes", "no": " no"}.get(v.answer.lower().split()[0] if v.answer else "", "")
        items.append(
            f"<p class=verdict><span class=claim>{html.escape(v.claim)}</span> "
            f'<span class="answer{cls}">{html.escape(v.answer)}.</span> {html.escape(v.detail)}</p>'
        )
    return "<div class=verdicts>" + "".join(items) + "</div>"


def _figure_html(img: Path | Figure, page_dir: Path, n: int) -> str:
    fig = img if isinstance(img, Figure) else Figure(Path(img))
    rel = html.escape(os.path.relpath(Path(fig.path).resolve(), page_dir.resolve()))
    cap = f"Figure {n}. {fig.caption}" if fig.caption else f"Figure {n}."
    return (
        f'<figure id="fig{n}"{" class=wide" if fig.wide else ""}><a href="{rel}"><img src="{rel}" alt="{html.escape(cap)}"></a>'
        f"<figcaption>{html.escape(cap)}</figcaption></figure>"
    )


def _part_body(part: Part, page_dir: Path, runs_table: bool = True) -> list[str]:
    s = part.section
    out = [f'<h2 id="{_slug(part.name)}">{html.escape(part.title)}{"" if s.ok else " (FAILED)"}</h2>']
    out += [f"<p class=problem>{html.escape(n)}</p>" for n in s.notes]
    out.append(_verdicts_html(s))
    if s.text:
        out += [f"<p>{html.escape(p)}</p>" for p in s.text.split("\n\n") if p.strip()]
    for i, img in enumerate(s.images, 1):
        out.append(_figure_html(img, page_dir, i))
    for caption, rows in s.tables:
        if caption:
            out.append(f"<h3>{html.escape(caption)}</h3>")
        if rows:
            out.append(_table(rows))
    if part.runs and runs_table:
        out.append("<h3>Runs and provenance</h3>")
        out.append(_table([provenance_row(r, page_dir) for r in part.runs]))
    return out


def write_pages(out: Path, title: str, parts: list[Part], problems: list[str], intro: str = "") -> list[Path]:
    """index.html (contents, every verdict, problems, all provenance) and <part>.html for each part."""
    page_dir = out.parent
    pages = [out]
    body = _head(title) + [f"<h1>{html.escape(title)}</h1>"]
    if intro:
        body.append(f"<p>{html.escape(intro)}</p>")
    body.append("<nav><h2>Contents</h2><ul>")
    for p in parts:
        body.append(f'<li><a href="#{_slug(p.name)}">{html.escape(p.title)}</a> '
                    f'(<a href="{_slug(p.name)}.html">own page</a>)</li>')  # fmt: skip
    body.append('<li><a href="#problems">Problems</a></li>' if problems else "")
    body.append('<li><a href="#provenance">Runs and provenance</a></li></ul></nav>')
    if problems:
        body.append('<h2 id="problems">Problems</h2>')
        body += [f"<p class=problem>{html.escape(p)}</p>" for p in problems]
    for p in parts:
        body += _part_body(p, page_dir, runs_table=False)
        part_page = page_dir / f"{_slug(p.name)}.html"
        sub = _head(f"{title}: {p.title}") + [
            f'<p class=small><a href="{html.escape(out.name)}">&larr; all parts</a></p>'
        ]
        atomic_write_text(part_page, "\n".join(sub + _part_body(p, page_dir) + ["</body></html>"]) + "\n")
        pages.append(part_page)
    rows = [provenance_row(r, page_dir) for p in parts for r in p.runs]
    body.append('<h2 id="provenance">Runs and provenance</h2>')
    body.append(
        "<p class=small>Each run folder holds config.json, provenance.json (git commit and dirty flag, "
        "host, argv, versions, input hashes, times) and results.json; the config hash is sha256 of the "
        "resolved config (12 hex digits), equal for equal settings.</p>"
    )
    body.append(_table(rows) if rows else "<p>(no runs)</p>")
    body.append(f"<p class=small>Written {time.strftime('%Y-%m-%d %H:%M:%S %Z')} by lab report.</p>")
    atomic_write_text(out, "\n".join(body + ["</body></html>"]) + "\n")
    return pages


# ---- assembling --------------------------------------------------------------------------------------------
def _section(name: str, rep: Any, runs: list[Run], fig_dir: Path, problems: list[str]) -> Section:
    title = getattr(rep, "TITLE", name) if rep is not None else name
    load = getattr(rep, "results_of", None)  # optional: results a part keeps in another file
    for r in runs:
        if not isinstance(r.results, dict) and load is not None:
            try:
                r.results = load(r)
            except Exception as e:
                problems.append(f"{name}: cannot read the results of {r.path}: {type(e).__name__}: {e}")
    done = [r for r in runs if isinstance(r.results, dict)]
    for r in runs:
        if not isinstance(r.results, dict):
            problems.append(f"{name}: {r.command}/{r.name} has no results.json ({r.status}); left out")
    if not done:
        return Section(title, ok=False, notes=[f"{name}: no finished run to report"])
    if rep is None:
        return generic_section(title, done)
    try:
        fig_dir.mkdir(parents=True, exist_ok=True)
        sec = rep.section(done, fig_dir)
    except Exception as e:  # one line, never a traceback on the page
        line = f"{name}: the report section failed: {type(e).__name__}: {e}"
        problems.append(line)
        return Section(title, ok=False, notes=[line])
    sec.title = sec.title or title
    return sec


def build_report(
    specs: Sequence[str | Path] = (),
    out: str | Path = "report/index.html",
    title: str = "lab report",
    intro: str = "",
    groups: dict[str, list[Path]] | None = None,
    notes: dict[str, list[str]] | None = None,
    failed: dict[str, str] | None = None,
    order: Sequence[str] = (),
) -> Outcome:
    """Write the page for run folders `specs` (parts found by each reporter's `owns`) and/or `groups`
    (part name -> its run folders, as `lab demo` knows them); `failed` parts get their one line."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    reps = reporters()
    runs, problems = expand(specs)
    by_part: dict[str, list[Run]] = {}
    for r in runs:
        owner = None
        for name, rep in reps.items():
            try:
                if rep.owns(r):
                    owner = name
                    break
            except Exception as e:
                problems.append(f"{name}: owns() failed on {r.path}: {type(e).__name__}: {e}")
        by_part.setdefault(owner or "other runs", []).append(r)
    for name, paths in (groups or {}).items():
        got, bad = expand(paths)
        problems += bad
        by_part.setdefault(name, []).extend(got)
    for name in failed or {}:
        by_part.setdefault(name, [])
    rank = {n: getattr(reps.get(n), "ORDER", 99) for n in by_part}  # a part may say where it goes
    rank = {n: o if isinstance(o, int) else 99 for n, o in rank.items()}
    names = [n for n in order if n in by_part] + sorted(
        (n for n in by_part if n not in order), key=lambda n: (rank[n], n)
    )
    parts = []
    for name in names:
        rep = reps.get(name)
        if failed and name in failed:
            title = getattr(rep, "TITLE", name) if rep is not None else name
            problems.append(failed[name])
            sec = Section(title, ok=False, notes=[failed[name]])
        else:
            sec = _section(name, rep, by_part[name], out.parent / "figures" / _slug(name), problems)
        extra = (notes or {}).get(name)
        if extra:
            sec.text = (sec.text + "\n\n" if sec.text else "") + " ".join(extra)
        parts.append(Part(name, sec.title, sec, by_part[name]))
    for line in problems:
        _warn(line)
    pages = write_pages(out, title, parts, problems, intro)
    return Outcome(pages, problems, parts)


def headline(outcome: Outcome) -> str:
    """The verdicts as plain lines (printed by `lab report`)."""
    lines = []
    for p in outcome.parts:
        for v in p.section.verdicts:
            lines.append(f"[{p.name}] {v.claim} {v.answer}. {v.detail}")
    lines.append(f"results page: {outcome.index} ({integer(len(outcome.pages))} pages)")
    return "\n".join(lines)
