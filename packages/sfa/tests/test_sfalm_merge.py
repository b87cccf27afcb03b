"""`lab sfa merge` over safetensors files and HF model folders: round trips, loadability, ties, errors."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from lab_sfa.lm.models import make_model
from lab_sfa.merge.checkpoints import merge_checkpoints
from lab_shared.errors import LabError

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _save(tmp_path, name, seed, preset="tiny"):
    torch.manual_seed(seed)
    model = make_model(preset)
    model.save_pretrained(str(tmp_path / name))
    return tmp_path / name, model


def _state(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path)).state_dict()


@pytest.fixture
def models(tmp_path):
    return {n: _save(tmp_path, n, s) for n, s in [("pre", 0), ("a", 1), ("b", 2)]}


def test_merge_with_itself_is_the_model(tmp_path, models):
    pre, a = models["pre"][0], models["a"][0]
    want = _state(a)
    out = merge_checkpoints("task_arithmetic", pre, [a], tmp_path / "ta", lam=1.0)
    for k, v in _state(out).items():
        torch.testing.assert_close(v, want[k], rtol=0, atol=1e-6)
    out = merge_checkpoints("ties", pre, [a, a], tmp_path / "ties", k=1.0, lam=1.0)
    for k, v in _state(out).items():
        torch.testing.assert_close(v, want[k], rtol=0, atol=1e-6)
    out = merge_checkpoints("task_arithmetic", a, [a, a], tmp_path / "self", lam=0.7)
    assert all(torch.equal(v, want[k]) for k, v in _state(out).items())


def test_wise_ft_endpoints_and_midpoint(tmp_path, models):
    pre, a = models["pre"][0], models["a"][0]
    s_pre, s_a = _state(pre), _state(a)
    for alpha, want in [(0.0, s_pre), (1.0, s_a)]:
        out = merge_checkpoints("wise_ft", pre, [a], tmp_path / f"w{alpha}", alpha=alpha)
        assert all(torch.equal(v, want[k]) for k, v in _state(out).items())
    out = merge_checkpoints("wise_ft", pre, [a], tmp_path / "half.safetensors", alpha=0.5)
    flat = load_file(str(out))
    assert "lm_head.weight" not in flat  # stored like the base: tied output embedding left out
    for k, v in flat.items():
        torch.testing.assert_close(v, 0.5 * s_pre[k] + 0.5 * s_a[k])


def test_cli_ties_writes_a_loadable_hf_folder(tmp_path, models, lab_inproc):
    pre, a, b = (models[n][0] for n in ("pre", "a", "b"))
    out = tmp_path / "merged"
    r = lab_inproc("sfa", "merge", "ties", "--base", str(pre), "--models", str(a), str(b), "--k", "0.2", "--lambda", "1.0",
             "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert {"config.json", "model.safetensors", "merge.json"} <= {p.name for p in out.iterdir()}
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(out))
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # re-tied on load
    from lab_sfa.merge import state_dicts

    # the tied embedding counts once in TIES' global top-k: merge the stored tensors
    stored = [load_file(str(p / "model.safetensors")) for p in (pre, a, b)]
    want = state_dicts.ties(stored[0], stored[1:], k=0.2, lam=1.0)
    want["lm_head.weight"] = want["model.embed_tokens.weight"]
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, want[k])
    r = lab_inproc(
        "sfa",
        "merge",
        "task_arithmetic",
        "--base",
        str(pre),
        "--models",
        f"{a},{b}",
        "--out",
        str(out),
    )
    assert r.returncode == 2 and "already exists" in r.stderr
    r = lab_inproc("sfa", "merge", "task_arithmetic", "--base", str(pre), "--models", f"{a},{b}", "--out", str(out),
             "--lambda", "0.5", "--overwrite")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert '"task_arithmetic"' in (out / "merge.json").read_text()
    # no temp or parked-aside folder left
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_tied_names_stored_differently_still_merge(tmp_path, models):
    pre, a = models["pre"][0], models["a"][0]
    sd = {k: v.clone().contiguous() for k, v in _state(a).items()}  # a raw state dict: both tied names stored
    assert torch.equal(sd["lm_head.weight"], sd["model.embed_tokens.weight"])
    raw = tmp_path / "raw.safetensors"
    save_file(sd, str(raw))
    out = merge_checkpoints("task_arithmetic", pre, [raw], tmp_path / "m", lam=1.0)
    got = _state(out)
    torch.testing.assert_close(got["lm_head.weight"], sd["lm_head.weight"], rtol=0, atol=1e-6)
    sd["lm_head.weight"] = sd["lm_head.weight"] + 1.0  # now untied: the merge would lose it
    save_file(sd, str(raw))
    with pytest.raises(LabError, match="'lm_head.weight' is tied"):
        merge_checkpoints("task_arithmetic", pre, [raw], tmp_path / "m2")
    assert not (tmp_path / "m2").exists()


def test_gpt2_tied_weights(tmp_path):
    pre, _ = _save(tmp_path, "gpre", 0, "tiny-gpt2")
    ft, _ = _save(tmp_path, "gft", 1, "tiny-gpt2")
    out = merge_checkpoints("wise_ft", pre, [ft], tmp_path / "g", alpha=1.0)
    want = _state(ft)
    assert all(torch.equal(v, want[k]) for k, v in _state(out).items())


def test_mismatches_name_the_tensor_and_write_nothing(tmp_path, models, lab_inproc, lab_subprocess):
    pre = models["pre"][0]
    other, _ = _save(tmp_path, "gpt", 0, "tiny-gpt2")
    out = tmp_path / "bad"
    r = lab_subprocess("sfa", "merge", "ties", "--base", str(pre), "--models", str(other), "--out", str(out))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "tensor '" in r.stderr
    assert not out.exists()
    sd = _state(pre)
    sd["model.norm.weight"] = torch.ones(7)
    save_file(
        {k: v.contiguous() for k, v in sd.items() if k != "lm_head.weight"},
        str(tmp_path / "shape.safetensors"),
    )
    with pytest.raises(LabError, match=r"tensor 'model.norm.weight' has shape \(7,\)"):
        merge_checkpoints("task_arithmetic", pre, [tmp_path / "shape.safetensors"], out)
    del sd["model.norm.weight"]
    save_file(
        {k: v.contiguous() for k, v in sd.items() if k != "lm_head.weight"},
        str(tmp_path / "miss.safetensors"),
    )
    with pytest.raises(LabError, match="tensor 'model.norm.weight' is in .* but missing from"):
        merge_checkpoints("task_arithmetic", pre, [tmp_path / "miss.safetensors"], out)
    (tmp_path / "corrupt.safetensors").write_bytes(b"not a tensor file")
    r = lab_inproc("sfa", "merge", "wise_ft", "--base", str(pre), "--models", str(tmp_path / "corrupt.safetensors"),
             "--out", str(out))  # fmt: skip
    assert r.returncode == 2 and "not a valid safetensors file" in r.stderr
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(LabError, match="holds no model weights"):
        merge_checkpoints("ties", pre, [tmp_path / "empty_dir"], out)
    with pytest.raises(LabError, match="checkpoint not found"):
        merge_checkpoints("ties", pre, [tmp_path / "nope"], out)
    with pytest.raises(LabError, match="one --models"):
        merge_checkpoints("wise_ft", pre, [pre, pre], out)
    r = lab_inproc(
        "sfa",
        "merge",
        "average",
        "--base",
        str(pre),
        "--models",
        str(pre),
        "--out",
        str(out),
    )
    assert r.returncode == 2
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".bad")]
