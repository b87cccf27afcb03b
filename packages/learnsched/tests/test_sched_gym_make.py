"""`gym.make("learnsched/BufferPool-v0")` after `import lab_learnsched`, in either import order, without the
package import pulling gymnasium in (the `lab` command imports the package for its help)."""

import subprocess
import sys

import pytest

CASES = {
    "package first": "import lab_learnsched\nimport gymnasium as gym\n",
    "gymnasium first": "import gymnasium as gym\nimport lab_learnsched\n",
}


@pytest.mark.parametrize("order", sorted(CASES))
def test_gym_make_after_import(order):
    code = CASES[order] + (
        "env = gym.make('learnsched/BufferPool-v0', workload='small')\n"
        "from gymnasium.utils.env_checker import check_env\n"
        "check_env(env.unwrapped, skip_render_check=True)\n"
        "obs, info = env.reset(seed=0)\n"
        "mask = env.unwrapped.action_masks()\n"
        "obs, r, term, trunc, info = env.step(int(mask.nonzero()[0][0]))\n"
        "print(type(env.unwrapped).__name__, env.spec.id, r <= 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["BufferPoolEnv", "learnsched/BufferPool-v0", "True"]


def test_package_import_does_not_import_gymnasium():
    code = "import sys, lab_learnsched, lab_learnsched.cli; assert 'gymnasium' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
