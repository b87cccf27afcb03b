"""`seq`: plain sequential fine-tuning, the floor every method must beat."""

from lab_sfa.methods.base import Method


class Sequential(Method):
    """Train each task in turn from where the previous one ended; nothing protects old tasks."""

    name = "seq"
    summary = "plain sequential fine-tuning, the floor every method must beat"
