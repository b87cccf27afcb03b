"""The lean GPT: training lowers the loss, KV-cache decoding, HF export that loads with AutoModelForCausalLM."""

import random

import chess
import pytest
import torch

from lab_shared.errors import LabError
from lab_transcendence.export import export_model, load_model
from lab_transcendence.lichess import ingest, lichess_style_game
from lab_transcendence.model import GPT, preset_config
from lab_transcendence.tokenizer import get_tokenizer
from lab_transcendence.train import ChessTrainConfig, apply_preset_defaults, train


def random_dump(path, n=60, seed=0):
    rng = random.Random(seed)
    parts = []
    for i in range(n):
        board, sans = chess.Board(), []
        while not board.is_game_over() and len(sans) < 80:
            move = rng.choice(list(board.legal_moves))
            sans.append(board.san(move))
            board.push(move)
        parts.append(lichess_style_game(sans, "1/2-1/2", i, 900, 950))
    path.write_text("".join(parts))
    return path


@pytest.mark.parametrize("kind", ["char", "move"])
def test_export_loads_with_auto_model_and_same_logits(tmp_path, kind):
    from transformers import AutoModelForCausalLM

    tok = get_tokenizer(kind)
    torch.manual_seed(0)
    model = GPT(preset_config("tiny", tok.vocab_size)).eval()
    export_model(model, tmp_path / "m", kind, {"max_rating": 1000, "expert_ratings": {"e0": 990.0}})
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "m").eval()
    idx = torch.tensor([tok.encode(";1.e4 e5 2.Nf3 Nc6 3.Bb5 a6 4.Ba4 Nf6 5.O-O Be7")])
    with torch.no_grad():
        ours = model(idx)
        assert torch.allclose(ours, hf(idx).logits, atol=1e-5, rtol=1e-5)
        back, tok2, meta = load_model(tmp_path / "m")
        assert torch.equal(back(idx), ours)
    assert tok2.kind == kind and meta["max_rating"] == 1000 and meta["expert_ratings"] == {"e0": 990.0}


def test_kv_cache_matches_full_forward():
    torch.manual_seed(1)
    model = GPT(preset_config("tiny", 32)).eval()
    idx = torch.randint(0, 32, (2, 40))
    with torch.no_grad():
        full = model(idx)
        cache = model.new_cache(2)
        parts = [model(idx[:, :25], cache=cache)] + [
            model(idx[:, t : t + 1], cache=cache) for t in range(25, 40)
        ]
        assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)
        cache.truncate(30)  # rewind and resample: same logits again
        assert torch.allclose(model(idx[:, 30:33], cache=cache), full[:, 30:33], atol=1e-5)
    with pytest.raises(ValueError):
        model(torch.zeros(1, model.config.block_size + 1, dtype=torch.long))


def test_forward_with_targets_returns_loss():
    model = GPT(preset_config("tiny", 32))
    idx = torch.randint(0, 32, (2, 16))
    logits, loss = model(idx[:, :-1], idx[:, 1:])
    assert logits.shape == (2, 15, 32) and loss.ndim == 0
    assert loss.item() == pytest.approx(torch.log(torch.tensor(32.0)).item(), abs=0.3)


def test_presets():
    c = preset_config("50m", 32)
    assert (c.n_layer, c.n_head, c.n_embd, c.block_size, c.bias) == (16, 8, 512, 1023, False)
    small = GPT(preset_config("small", 32))
    assert small.num_params() == 4 * 12 * 128 * 128 + 32 * 128 + 4 * 2 * 128 + 128  # blocks + wte + norms
    assert (preset_config("300m", 32).n_layer, preset_config("300m", 32).n_embd) == (24, 1024)
    with pytest.raises(LabError):
        preset_config("1b", 32)
    cfg = apply_preset_defaults(ChessTrainConfig(preset="small"))
    assert cfg.trainer.batch_size == 16 and cfg.trainer.beta2 == 0.95 and cfg.trainer.weight_decay == 0.1
    cfg = apply_preset_defaults(ChessTrainConfig(preset="50m"))
    assert (cfg.trainer.batch_size, cfg.trainer.grad_accum, cfg.trainer.warmup_steps) == (125, 4, 2000)


def test_tiny_model_trains_and_loss_falls(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    ingest(random_dump(tmp_path / "d.pgn"), tmp_path / "data", show_progress=False)
    cfg = ChessTrainConfig(data=tmp_path / "data", preset="tiny", block_size=63)
    cfg.trainer.max_steps, cfg.trainer.log_every, cfg.trainer.progress = 40, 10, False
    res = train(cfg)
    from lab_shared.metrics import read_metrics

    rows = [r for r in read_metrics(f"{res['run_dir']}/metrics.jsonl") if "loss" in r]
    assert rows[0]["loss"] > rows[-1]["loss"] + 0.5  # from ~ln 32 = 3.47 towards the chars' statistics
    assert res["val_loss"] < 3.0 and res["tokens_per_s"] > 0
    model, tok, meta = load_model(res["run_dir"])
    assert model.config.block_size == 63 and meta["data"]["games_kept"] == 60
