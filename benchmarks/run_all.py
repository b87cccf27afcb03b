"""`make bench`: run the benchmark scripts here and print their RESULT lines together at the end.

Scripts ending in `_table`, and the experiments in TABLES, reproduce a results table (tens of minutes on a
CPU): they run only when named (`python benchmarks/run_all.py sfa_table`) or with `--tables`
(`make bench-tables`).
"""

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
TABLES = {"sfa_paper"}  # results-table experiments without the `_table` suffix (their docs name them)


def main() -> int:
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != "run_all.py")
    tables = "--tables" in sys.argv
    only = [a for a in sys.argv[1:] if not a.startswith("--")]
    results, failed = [], []
    for script in scripts:
        if only and script.stem not in only:
            continue
        if not only and (script.stem.endswith("_table") or script.stem in TABLES) and not tables:
            continue
        print(f"== {script.name}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
        sys.stdout.write(proc.stdout)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
        results += lines or [f"RESULT {script.stem}: no result line"]
        if proc.returncode:
            failed.append(script.name)
        print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)
    print("\n".join(["", "== summary", *results]))
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
