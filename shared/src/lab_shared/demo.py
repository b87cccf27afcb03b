"""`lab demo`: every installed package's quick demo, then `lab report` over the run folders they wrote.

A demo (entry-point group `lab.demos`) is `run_demo(out_dir) -> list[Path]`: it writes ordinary run
folders under out_dir and returns them; the page (out/index.html and one page per part) is the report of
those folders, so `lab runs ls --root OUT` and `lab runs compare` work on them too.
"""

from __future__ import annotations

import time
import traceback
from importlib.metadata import entry_points
from pathlib import Path

from lab_shared.errors import LabError
from lab_shared.io import atomic_write_text
from lab_shared.logs import get_logger


def run_all(out: Path, only: list[str] | None = None) -> list[str]:
    """Run each demo into out/<name>/, write out/index.html; return the names of demos that failed."""
    from lab_shared.report_html import build_report

    log = get_logger("lab.demo")
    commands = {ep.name for ep in entry_points(group="lab.commands")}
    demos = {ep.name: ep for ep in entry_points(group="lab.demos")}
    unknown = sorted(set(only or ()) - commands - set(demos))
    if unknown:  # a typo must not give an empty results page and exit 0
        raise LabError(
            f"--only {', '.join(unknown)}: no such part (installed: {', '.join(sorted(commands))})"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = [n for n in sorted(commands | set(demos)) if not only or n in only]
    groups: dict[str, list[Path]] = {}
    notes: dict[str, list[str]] = {}
    failed: dict[str, str] = {}
    no_demo: set[str] = set()
    t_all = time.perf_counter()
    for name in names:
        ep = demos.get(name)
        try:
            fn = ep.load() if ep else None
        except ModuleNotFoundError as e:
            if e.name and e.name.endswith(".demo"):
                fn = None
            else:
                raise
        if fn is None:
            failed[name] = f"{name}: `lab {name}` is installed but has no demo yet"
            no_demo.add(name)
            continue
        log.info("demo %s: starting", name)
        t0 = time.perf_counter()
        try:
            groups[name] = [Path(p) for p in fn(out / name)]
            notes[name] = [f"(The demo of this part took {time.perf_counter() - t0:.0f} s.)"]
        except Exception as e:  # one line on the page and in the log; the traceback goes to a file
            trace = out / name / "demo-error.log"
            trace.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(trace, traceback.format_exc())
            failed[name] = f"{name}: the demo failed: {type(e).__name__}: {e} (traceback: {trace})"
            log.error("%s", failed[name])
    outcome = build_report(
        out=out / "index.html",
        title="lab demo",
        intro=(
            "Quick end-to-end runs of each part on embedded defaults, far smaller than the papers' "
            f"experiments (all parts: {time.perf_counter() - t_all:.0f} s): read the intervals, not the "
            "point estimates; the parts' docs pages hold the full runs."
        ),
        groups=groups,
        notes=notes,
        failed=failed,
    )
    log.info("results page: %s", outcome.index)
    broken = {line.split(":", 1)[0] for line in outcome.problems}
    return sorted((set(failed) | (broken & set(names))) - no_demo)
