"""Per-package installs: a fresh venv with only the core and `sfa` gets a `lab` that has sfa, not chess.

The third-party dependencies are linked in from this environment (a full resolve from the local index takes
minutes); the lab distributions themselves are built and installed fresh, which is what decides the commands.
The venv gets no pip of its own: this environment's pip installs into it (`pip --python`), building with the
linked setuptools (no isolated build env per package), which saves most of the test's time.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _setuptools_builds() -> bool:
    """This environment's setuptools meets the packages' build requirement (>= 68), so pip can build with it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return int(version("setuptools").split(".")[0]) >= 68
    except (PackageNotFoundError, ValueError):
        return False


@pytest.mark.slow
def test_core_plus_sfa_only(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True
    )
    py = venv / "bin" / "python"
    # Dependencies come from the parent environment (--system-site-packages points at the base Python, so
    # expose this venv's site-packages without its lab distributions); the lab distributions are installed fresh.
    site = subprocess.run(
        [sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deps = tmp_path / "deps"
    deps.mkdir()
    for entry in Path(site).iterdir():
        name = entry.name.lower()
        if name.startswith(("lab_", "__editable__", "_lab_", "lab-")) or name.endswith(".pth"):
            continue
        (deps / entry.name).symlink_to(entry)
    vsite = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(vsite, "deps.pth").write_text(str(deps) + "\n")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "-q",
            "--no-deps",
            *(["--no-build-isolation"] if _setuptools_builds() else []),
            str(ROOT / "shared"),
            str(ROOT / "packages" / "sfa"),
        ],
        check=True,
        env=env,
    )
    lab = str(venv / "bin" / "lab")
    out = subprocess.run([lab, "sfa", "--help"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    for missing in ("chess", "sched"):
        out = subprocess.run([lab, missing, "--help"], capture_output=True, text=True, env=env)
        assert out.returncode != 0 and "No such command" in out.stderr + out.stdout
