"""lab_learnsched: buffer-pool-aware query scheduling.

Importing the package registers the Gymnasium environment, so `import lab_learnsched` then
`gymnasium.make("learnsched/BufferPool-v0")` works (gymnasium 1.x has no plugin autoload). Gymnasium itself is
not imported here (it costs ~0.2 s, and `lab --help` imports this package): when it is already loaded the id is
registered now, otherwise right after its first import, by a one-shot import hook.
"""

from __future__ import annotations

import importlib.abc
import sys

__version__ = "0.1.0"
ENV_ID = "learnsched/BufferPool-v0"


def register_env() -> None:
    """Register `learnsched/BufferPool-v0` with Gymnasium (idempotent; imports gymnasium)."""
    import gymnasium

    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point="lab_learnsched.env:BufferPoolEnv")


class _RegisterAfterGymnasium(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when `gymnasium` is about to be imported, it lets the other finders find it and
    wraps the loader so that the environment is registered once gymnasium's module has run."""

    def find_spec(self, name, path=None, target=None):
        if name != "gymnasium":
            return None
        sys.meta_path.remove(self)  # one shot; also keeps the search below from finding us again
        for finder in sys.meta_path:
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                run = spec.loader.exec_module

                def exec_module(module, run=run):
                    run(module)
                    register_env()

                spec.loader.exec_module = exec_module
                return spec
        return None


if "gymnasium" in sys.modules:
    register_env()
elif not any(isinstance(f, _RegisterAfterGymnasium) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterGymnasium())
