"""Streaming merges equal the in-memory ones; per-tensor TIES equals mergekit's algorithm."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from lab_sfa.merge import state_dicts
from lab_sfa.merge.checkpoints import merge_checkpoints
from lab_sfa.merge.streaming import LazySafetensors
from lab_shared.errors import LabError


def _state(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "a.weight": torch.randn(17, 9, generator=g),
        "a.bias": torch.randn(9, generator=g),
        "b.half": torch.randn(5, 4, generator=g).to(torch.bfloat16),
        "steps": torch.tensor([3, 4], dtype=torch.int64),
        "scalar": torch.tensor(0.5),
    }


@pytest.fixture
def files(tmp_path):
    paths = []
    for i in range(4):
        p = tmp_path / f"m{i}.safetensors"
        save_file(_state(i), str(p))
        paths.append(p)
    return paths


def test_lazy_reader_reads_every_tensor_exactly(files):
    lazy = LazySafetensors(files[1])
    ref = _state(1)
    assert set(lazy.keys()) == set(ref)
    for k, v in ref.items():
        assert torch.equal(lazy.get(k), v) and lazy.get(k).dtype == v.dtype


@pytest.mark.parametrize(
    "method,kw",
    [
        ("task_arithmetic", {"lam": 0.7}),
        ("wise_ft", {"alpha": 0.3}),
        ("ties", {"k": 0.3, "lam": 1.2, "per_tensor": True}),
    ],
)
def test_streaming_equals_in_memory(files, tmp_path, method, kw):
    models = files[1:2] if method == "wise_ft" else files[1:]
    streamed = merge_checkpoints(method, files[0], models, tmp_path / "s.safetensors", **kw)
    loaded = merge_checkpoints(method, files[0], models, tmp_path / "m.safetensors", stream=False, **kw)
    a, b = load_file(str(streamed)), load_file(str(loaded))
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype
        torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-6)
    with open(streamed, "rb") as fh:  # the merge settings are recorded in the file's metadata
        n = int.from_bytes(fh.read(8), "little")
        meta = json.loads(fh.read(n))["__metadata__"]
    assert json.loads(meta["merge"])["method"] == method


def _mergekit_ties(base, models, density, lam):
    """mergekit's TIES for one tensor: magnitude sparsify (topk of int(density*n)), sum-sign mask, mean."""
    deltas = []
    for m in models:
        d = m.float() - base.float()
        k = int(density * d.numel())
        mask = torch.zeros_like(d)
        if k > 0:
            mask.view(-1)[torch.topk(d.abs().view(-1), k=k, largest=True).indices] = 1
        deltas.append(d * mask)
    deltas = torch.stack(deltas)
    sign = (deltas.sum(dim=0) >= 0).float() * 2 - 1
    mask = deltas.sign() == sign
    mixed = (deltas * mask).sum(0)
    divisor = mask.float().sum(0)
    divisor[divisor == 0] = 1
    return (base.float() + lam * mixed / divisor).to(base.dtype)


def test_per_tensor_ties_equals_mergekit(files, tmp_path):
    out = merge_checkpoints(
        "ties", files[0], files[1:], tmp_path / "t.safetensors", k=0.25, lam=0.9, per_tensor=True
    )
    got = load_file(str(out))
    states = [_state(i) for i in range(4)]
    for key in ("a.weight", "a.bias", "b.half"):
        want = _mergekit_ties(states[0][key], [s[key] for s in states[1:]], 0.25, 0.9)
        torch.testing.assert_close(got[key], want, rtol=1e-6, atol=1e-6)
    assert torch.equal(got["steps"], states[0]["steps"])  # non-float tensors come from the base
    in_memory = state_dicts.ties(states[0], states[1:], k=0.25, lam=0.9, per_tensor=True)
    torch.testing.assert_close(in_memory["a.weight"], got["a.weight"], rtol=1e-6, atol=1e-6)
    global_trim = state_dicts.ties(states[0], states[1:], k=0.25, lam=0.9)  # the paper's rule differs
    assert not torch.allclose(global_trim["a.weight"], got["a.weight"])


def test_streaming_checks_shapes_and_writes_nothing(files, tmp_path):
    bad = tmp_path / "bad.safetensors"
    save_file({**_state(5), "a.weight": torch.zeros(3, 3)}, str(bad))
    with pytest.raises(LabError, match="a.weight"):
        merge_checkpoints("task_arithmetic", files[0], [files[1], bad], tmp_path / "o.safetensors")
    assert not (tmp_path / "o.safetensors").exists() and not list(tmp_path.glob(".o.safetensors*"))


def test_cli_per_tensor_ties(files, tmp_path, lab_inproc):
    out = tmp_path / "cli.safetensors"
    r = lab_inproc("sfa", "merge", "ties", "--base", str(files[0]), "--models", str(files[1]), str(files[2]),
                   "--k", "0.25", "--lambda", "0.9", "--per-tensor", "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    want = merge_checkpoints(
        "ties", files[0], files[1:3], tmp_path / "api.safetensors", k=0.25, lam=0.9, per_tensor=True
    )
    a, b = load_file(str(out)), load_file(str(want))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "method,flags",
    [("ties", ["--k", "0.25", "--lambda", "0.9", "--per-tensor"]), ("task_arithmetic", ["--lambda", "0.4"]),
     ("wise_ft", ["--alpha", "0.3"])],
)  # fmt: skip
def test_mergekit_yaml_round_trip(files, tmp_path, lab_inproc, method, flags):
    models = files[1:2] if method == "wise_ft" else files[1:]
    direct, yml = tmp_path / "direct.safetensors", tmp_path / "merge.yaml"
    r = lab_inproc("sfa", "merge", method, "--base", str(files[0]), "--models", *map(str, models), *flags,
                   "--out", str(direct), "--write-config", str(yml))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "merge_method" in yml.read_text()
    r = lab_inproc("sfa", "merge-config", str(yml), "--out", str(tmp_path / "via-yaml.safetensors"))
    assert r.returncode == 0, r.stderr
    a, b = load_file(str(direct)), load_file(str(tmp_path / "via-yaml.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-6)


def test_mergekit_yaml_bad_input_is_one_line(tmp_path, lab_inproc):
    yml = tmp_path / "bad.yaml"
    yml.write_text("merge_method: ties\nbase_model: a\nmodels:\n  - model: b\nslices: []\n")
    r = lab_inproc("sfa", "merge-config", str(yml), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "unknown key 'slices'" in r.stderr and "Traceback" not in r.stderr
    yml.write_text("merge_method: dare_ties\nbase_model: a\nmodels:\n  - model: b\n")
    r = lab_inproc("sfa", "merge-config", str(yml), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "merge_method" in r.stderr
