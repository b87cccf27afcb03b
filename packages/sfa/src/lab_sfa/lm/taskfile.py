"""Text task sequences declared in a TOML file: byte-LM text domains (`kind = "text"`) or JSONL tasks on a
Hugging Face causal LM (`kind = "lm"`, at the end of this docstring).

    kind = "text"              # marks a text sequence (handled here, not by the image task files)
    preset = "cpu"             # LM preset: tiny | tiny-gpt2 | cpu | cpu-large | gpu-small | gpu
    pretrain_steps = 600       # optional; -1 = the preset's default, 0 = no pretraining
    pretrain_blocks = 10000    # optional: blocks of general machine text to pretrain on
    math_max_value = 30        # optional: operand range of the generated math problems
    n_train = 800              # optional: train blocks per task (else the run's sequence.n_train)
    n_test = 64                # optional: held-out blocks per domain

    [[tasks]]
    name = "math"              # built-in: generated arithmetic and word problems (exact-match scored)

    [[tasks]]
    name = "notes"             # your own domain: files, folders (recursive) or glob patterns
    paths = ["notes/", "extra/*.txt"]
    include = ["*.md", "*.txt"]  # optional: file-name patterns inside folders
    exclude = ["*/drafts/*"]     # optional: path patterns to skip
    test_fraction = 0.1          # optional: share of paragraphs held out

Relative paths are relative to the TOML file. A task with `paths` is a text domain (a built-in name with
`paths` is overridden); without, it must name a built-in. Empty or binary files named explicitly, folders
with no readable text and unknown keys raise LabError with one line.

JSONL tasks on any Hugging Face causal LM (the `lm` sequence, `lab_sfa.lm.hf_sequence`):

    kind = "lm"
    model = "path/to/hf-folder"  # optional: folder or hub id (default: the embedded model); --model overrides
    lora_rank = 8                # optional: LoRA adapters (peft) instead of full fine-tuning
    block = 256                  # optional: tokens per packed block
    n_train = 500                # optional: train blocks per task (also n_test, n_val, n_em)

    [[tasks]]
    name = "qa"
    train = "qa_train.jsonl"     # {"prompt": ..., "response": ...} or {"text": ...} per line
    test = "qa_test.jsonl"       # optional: else test_fraction of train, held out by content hash
    test_fraction = 0.1
    [[tasks]]
    name = "math"                # built-in: math | law | code (the embedded model's task splits)
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from lab_sfa.lm.domains import DomainSpec, builtin_domains
from lab_shared.errors import LabError

_OPTION_KEYS = (
    "preset", "pretrain_steps", "pretrain_blocks", "math_max_value", "n_train", "n_test", "n_val", "n_math_eval",
)  # fmt: skip
_TOP_KEYS = {"kind", "tasks", *_OPTION_KEYS}


def _read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LabError(f"task-sequence file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise LabError(f"malformed task-sequence file {path}: {e}") from None


def sequence_kind(path: Path) -> str | None:
    """The `kind` a TOML task-sequence file declares ("text", "lm"; None for image task files)."""
    if path.suffix != ".toml" or not path.is_file():
        return None
    kind = _read(path).get("kind")
    return kind if isinstance(kind, str) else None


def is_text_sequence(path: Path) -> bool:
    """True when the TOML file declares `kind = "text"`."""
    return sequence_kind(path) == "text"


def options_from_file(path: Path, cfg=None):
    """LMOptions from a text task-sequence file (the run's SequenceConfig fills what the file leaves out)."""
    from lab_sfa.lm.sequence import LMOptions, options_from_config

    spec = _read(path)
    extra = set(spec) - _TOP_KEYS
    if extra:
        raise LabError(f"{path}: unknown key(s) {sorted(extra)}")
    opts = options_from_config(cfg) if cfg is not None else LMOptions()
    for key in _OPTION_KEYS:
        if key in spec:
            v, lo = spec[key], -1 if key in ("pretrain_steps", "math_max_value") else 0
            ok = isinstance(v, str) if key == "preset" else type(v) is int and v >= lo
            if not ok:
                want = "a string" if key == "preset" else f"an integer >= {lo}"
                raise LabError(f"{path}: {key} must be {want}, got {v!r}")
            setattr(opts, key, v)
    tasks = spec.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise LabError(f"{path}: declare the domains as [[tasks]] tables")
    order, builtins = [], set(builtin_domains()) | {"math"}
    for t in tasks:
        if not isinstance(t, dict) or "name" not in t:
            raise LabError(f"{path}: every [[tasks]] entry needs a name")
        if "paths" in t:
            t = dict(t)
            raw = [t["paths"]] if isinstance(t["paths"], str) else t["paths"]
            if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
                raise LabError(f"{path}: task {t['name']!r}: paths must be a string or a list of strings")
            t["paths"] = [str(p if Path(p).expanduser().is_absolute() else path.parent / p) for p in raw]
            opts.domains[t["name"]] = DomainSpec.from_dict(t)
        elif t["name"] not in builtins:
            raise LabError(
                f"{path}: task {t['name']!r} has no paths and is not a built-in ({', '.join(sorted(builtins))})"
            )
        elif set(t) - {"name"}:
            raise LabError(f"{path}: built-in task {t['name']!r} takes no options besides paths")
        order.append(t["name"])
    if len(set(order)) != len(order):
        raise LabError(f"{path}: task names must be unique")
    opts.order = tuple(order)
    return opts


_LM_TOP = {"kind", "model", "lora_rank", "block", "n_train", "n_test", "n_val", "n_em", "tasks"}
_LM_TASK = {"name", "train", "test", "test_fraction"}


def hf_options_from_file(path: Path, cfg=None):
    """HFOptions from a `kind = "lm"` file (the run's SequenceConfig fills what the file leaves out)."""
    from lab_sfa.lm.hf_sequence import HFOptions, TaskSource, builtin_sources, options_from_config
    from lab_sfa.lm.records import hash_split, read_jsonl

    spec = _read(path)
    extra = set(spec) - _LM_TOP
    if extra:
        raise LabError(f"{path}: unknown key(s) {sorted(extra)} (known: {sorted(_LM_TOP)})")
    opts = options_from_config(cfg) if cfg is not None else HFOptions()
    if "model" in spec:
        if not isinstance(spec["model"], str) or not spec["model"]:
            raise LabError(f"{path}: model must be a folder or hub id (a string)")
        if cfg is None or cfg.model in ("cnn", "resnet"):  # --model on the command line wins
            m = Path(spec["model"]).expanduser()
            opts.model = str(m if m.is_absolute() or not (path.parent / m).exists() else path.parent / m)
    for key in ("lora_rank", "block", "n_train", "n_test", "n_val", "n_em"):
        if key in spec:
            v = spec[key]
            if type(v) is not int or v < 0:
                raise LabError(f"{path}: {key} must be an integer >= 0, got {v!r}")
            setattr(opts, key, v)
    tasks = spec.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise LabError(f"{path}: declare the tasks as [[tasks]] tables")
    sources, names = [], []
    for t in tasks:
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise LabError(f"{path}: every [[tasks]] entry needs a name")
        if set(t) - _LM_TASK:
            raise LabError(f"{path}: task {t['name']!r}: unknown key(s) {sorted(set(t) - _LM_TASK)}")
        names.append(t["name"])
        if "train" not in t:
            if set(t) != {"name"}:
                raise LabError(
                    f"{path}: task {t['name']!r}: a built-in task takes no options (or give train)"
                )
            sources.extend(builtin_sources((t["name"],), opts.model))
            continue
        files = {k: t[k] for k in ("train", "test") if k in t}
        if not all(isinstance(v, str) for v in files.values()):
            raise LabError(f"{path}: task {t['name']!r}: train and test must be file paths (strings)")
        train = read_jsonl(path.parent / Path(files["train"]).expanduser())
        if "test" in files:
            test = read_jsonl(path.parent / Path(files["test"]).expanduser())
        else:
            frac = t.get("test_fraction", 0.1)
            if not isinstance(frac, int | float) or not 0 < frac < 1:
                raise LabError(f"{path}: task {t['name']!r}: test_fraction must be in (0, 1)")
            train, test = hash_split(train, float(frac))
        if not train or not test:
            raise LabError(f"{path}: task {t['name']!r}: too few records to hold some out")
        if {r.is_text for r in train} != {r.is_text for r in test}:
            raise LabError(f"{path}: task {t['name']!r}: train and test records differ in form")
        sources.append(TaskSource(t["name"], train, test))
    if len(set(names)) != len(names):
        raise LabError(f"{path}: task names must be unique")
    opts.tasks = sources
    return opts


def build_from_file(path: Path, cfg=None):
    """The TaskSequence of a text (`kind = "text"`) or Hugging Face LM (`kind = "lm"`) task-sequence file."""
    if sequence_kind(path) == "lm":
        from lab_sfa.lm.hf_sequence import build_hf_sequence

        seq = build_hf_sequence(hf_options_from_file(path, cfg))
        seq.name = path.stem
        return seq
    from lab_sfa.lm.sequence import build_lm_sequence

    seq = build_lm_sequence(options_from_file(path, cfg))
    seq.name = path.stem
    return seq
