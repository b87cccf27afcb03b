"""Where a workload comes from: `load_workload(spec)` for a built-in name, a generated family, a file or a trace.

It sits above workload.py (the format), builtin_workloads.py and families.py (which builds workloads in
that format), so none of those imports another in a circle.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from lab_learnsched.builtin_workloads import BUILTIN_WORKLOADS
from lab_learnsched.families import family_workload, parse_family_spec
from lab_learnsched.workload import (
    TRACE_FORMAT,
    Workload,
    parse_workload_file,
    trace_from_dict,
    trace_workload,
    workload_from_dict,
)
from lab_shared.errors import LabError


def load_workload(spec: str | Path) -> Workload:
    """A built-in name (`default`, `drift`, `small`), `family:NAME:SEED` (a generated workload, see
    families.py), a workload file (.toml/.json) or a trace (.json)."""
    if isinstance(spec, str) and spec.startswith("family:"):
        return family_workload(*parse_family_spec(spec))
    if isinstance(spec, str) and spec in BUILTIN_WORKLOADS:
        return workload_from_dict(tomllib.loads(BUILTIN_WORKLOADS[spec]), spec)
    path = Path(spec)
    if not path.exists():
        raise LabError(f"workload '{spec}' is neither a built-in ({', '.join(BUILTIN_WORKLOADS)}) nor a file")
    d = parse_workload_file(path)
    if isinstance(d, dict) and d.get("format") == TRACE_FORMAT:
        return trace_workload(*trace_from_dict(d, str(path)), name=path.stem)
    return workload_from_dict(d, str(path))
