"""mergekit YAML configs: read one into `lab sfa merge` options, and write the config of a lab merge.

The subset that maps onto the merges here (mergekit trims TIES per tensor, so a config read from mergekit
runs TIES with ``per_tensor``):

    merge_method: ties              # | task_arithmetic | linear (WiSE-FT: the base and one model)
    base_model: PRE
    models:
      - model: A
        parameters: {density: 0.2, weight: 1.0}
      - model: B
        parameters: {density: 0.2, weight: 1.0}
    parameters: {lambda: 1.0}       # TIES scale (task_arithmetic: the per-model weight is lambda)

Every model must carry the same density and weight (per-model values are not supported here): a config
that needs them is one LabError line naming the key.
"""

from __future__ import annotations

from pathlib import Path

from lab_shared.errors import LabError

METHODS = {"ties": "ties", "task_arithmetic": "task_arithmetic", "linear": "wise_ft"}


def _same(values: list, what: str, path: Path):
    if len(set(values)) > 1:
        raise LabError(f"{path}: every model needs the same {what} (got {sorted(set(values))})")
    return values[0]


def read_config(path: str | Path) -> dict:
    """Options for `merge_checkpoints` from a mergekit YAML file: method, base, models, lam, k, alpha."""
    import yaml

    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise LabError(f"cannot read mergekit config {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(spec, dict):
        raise LabError(f"{path}: a mergekit config is a mapping (merge_method, base_model, models)")
    unknown = set(spec) - {"merge_method", "base_model", "models", "parameters", "dtype", "tokenizer_source"}
    if unknown:
        raise LabError(f"{path}: unknown key '{sorted(unknown)[0]}'")
    method = METHODS.get(str(spec.get("merge_method")))
    if method is None:
        raise LabError(
            f"{path}: merge_method must be one of {', '.join(METHODS)}, got {spec.get('merge_method')!r}"
        )
    entries = spec.get("models")
    if (
        not isinstance(entries, list)
        or not entries
        or not all(isinstance(e, dict) and "model" in e for e in entries)
    ):
        raise LabError(f"{path}: models must be a list of {{model: PATH, parameters: ...}}")
    base = spec.get("base_model")
    params = [e.get("parameters") or {} for e in entries]
    glob = spec.get("parameters") or {}
    out: dict = {"method": method, "per_tensor": method == "ties"}
    if method == "wise_ft":  # linear over the base and one model: weights (1 - alpha, alpha)
        models = [str(e["model"]) for e in entries]
        if base is None or len(models) != 2 or str(base) not in models:
            raise LabError(
                f"{path}: linear (WiSE-FT) needs base_model and exactly two models, one of them the base"
            )
        weights = {str(e["model"]): float((e.get("parameters") or {}).get("weight", 1.0)) for e in entries}
        other = next(m for m in models if m != str(base))
        total = sum(weights.values())
        if total <= 0:
            raise LabError(f"{path}: linear weights must sum to > 0")
        return {**out, "base": str(base), "models": [other], "alpha": weights[other] / total}
    if base is None:
        raise LabError(f"{path}: {spec['merge_method']} needs base_model")
    weight = _same([float(p.get("weight", 1.0)) for p in params], "weight", path)
    out.update(base=str(base), models=[str(e["model"]) for e in entries])
    if method == "task_arithmetic":
        out["lam"] = weight * float(glob.get("lambda", 1.0))
        return out
    if weight != 1.0:
        raise LabError(
            f"{path}: ties with per-model weight {weight} is not supported (use parameters.lambda)"
        )
    out["k"] = float(_same([float(p.get("density", 1.0)) for p in params], "density", path))
    out["lam"] = float(glob.get("lambda", 1.0))
    return out


def write_config(path: str | Path, method: str, base, models, lam: float, k: float, alpha: float) -> Path:
    """The mergekit YAML equivalent of a lab merge (TIES: per-tensor trimming, as mergekit does it)."""
    import yaml

    if method == "wise_ft":
        spec = {
            "merge_method": "linear",
            "base_model": str(base),
            "models": [
                {"model": str(base), "parameters": {"weight": 1.0 - alpha}},
                {"model": str(models[0]), "parameters": {"weight": alpha}},
            ],
            "parameters": {"normalize": False},
        }
    elif method == "task_arithmetic":
        spec = {
            "merge_method": "task_arithmetic",
            "base_model": str(base),
            "models": [{"model": str(m), "parameters": {"weight": lam}} for m in models],
            "parameters": {"normalize": False},
        }
    else:
        spec = {
            "merge_method": "ties",
            "base_model": str(base),
            "models": [{"model": str(m), "parameters": {"density": k, "weight": 1.0}} for m in models],
            "parameters": {"lambda": lam, "normalize": True},
        }
    path = Path(path)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
