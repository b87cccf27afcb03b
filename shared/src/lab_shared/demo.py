"""`lab demo`: every installed package's quick demo, gathered into one results page."""

from __future__ import annotations

import time
import traceback
from importlib.metadata import entry_points
from pathlib import Path

from lab_shared.errors import LabError
from lab_shared.logs import get_logger
from lab_shared.report import Section, write_index

PARTS = {
    "sfa": "SFA: continual fine-tuning with averaging",
    "chess": "Transcendence in chess",
    "sched": "Learned query scheduling",
}


def run_all(out: Path, only: list[str] | None = None) -> list[str]:
    """Run each demo into out/<name>/, write out/index.html; return the names of demos that failed."""
    log = get_logger("lab.demo")
    commands = {ep.name for ep in entry_points(group="lab.commands")}
    demos = {ep.name: ep for ep in entry_points(group="lab.demos")}
    unknown = sorted(set(only or ()) - commands - set(demos))
    if unknown:  # a typo must not give an empty results page and exit 0
        raise LabError(
            f"--only {', '.join(unknown)}: no such part (installed: {', '.join(sorted(commands))})"
        )
    out.mkdir(parents=True, exist_ok=True)
    names = [n for n in sorted(commands | set(demos)) if not only or n in only]
    sections, failed = [], []
    for name in names:
        title = PARTS.get(name, name)
        ep = demos.get(name)
        try:
            fn = ep.load() if ep else None
        except ModuleNotFoundError as e:
            if e.name and e.name.endswith(".demo"):
                fn = None
            else:
                raise
        if fn is None:
            sections.append(
                Section(title, f"`lab {name}` is installed but has no demo yet.", placeholder=True)
            )
            continue
        log.info("demo %s: starting", name)
        t0 = time.perf_counter()
        try:
            section = fn(out / name)
            section.text = (
                section.text + "\n" if section.text else ""
            ) + f"(demo took {time.perf_counter() - t0:.0f} s)"
        except Exception as e:
            failed.append(name)
            log.error("demo %s failed: %s", name, e)
            section = Section(title, f"demo failed: {e}\n\n{traceback.format_exc()}", ok=False)
        sections.append(section)
        write_index(out / "index.html", "lab demo", sections)
    page = write_index(
        out / "index.html", "lab demo", sections, intro="Quick end-to-end runs on embedded defaults."
    )
    log.info("results page: %s", page)
    return failed
