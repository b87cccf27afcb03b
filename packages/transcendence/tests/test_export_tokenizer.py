"""Exported chess model folders ship a tokenizer: `AutoTokenizer.from_pretrained(FOLDER)` gives lab's ids
(`;1.e4 e5` round-trips for the 32-character vocabulary), and with `AutoModelForCausalLM` the same logits."""

import os

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from lab_transcendence.export import export_model, load_model
from lab_transcendence.model import GPT, GPTConfig
from lab_transcendence.tokenizer import get_tokenizer

GAME = (
    ";1.e4 e5 2.Nf3 Nc6 3.Bb5 a6 4.O-O Nf6 5.Re1 b5 6.Bb3 d6 7.c3 O-O 8.h3 Bb7 9.d4 exd4 10.cxd4 Qd7 11.e8=Q+"
)


def _export(tmp_path, kind: str):
    torch.manual_seed(0)
    vocab = get_tokenizer(kind).vocab_size
    model = GPT(GPTConfig(vocab_size=vocab, block_size=128, n_layer=1, n_head=2, n_embd=16, bias=True)).eval()
    return model, export_model(model, tmp_path / "model", kind)


def test_char_tokenizer_round_trips(tmp_path):
    model, folder = _export(tmp_path, "char")
    assert not [f for f in os.listdir(folder) if f.startswith(".")]  # no temp leftovers
    hf = AutoTokenizer.from_pretrained(str(folder))
    assert isinstance(hf, PreTrainedTokenizerFast)
    lab = get_tokenizer("char")
    assert hf(";1.e4 e5")["input_ids"] == lab.encode(";1.e4 e5") == [15, 6, 4, 27, 9, 0, 27, 10]
    ids = hf(GAME)["input_ids"]
    assert ids == lab.encode(GAME)
    assert hf.decode(ids) == GAME
    assert len(hf) == 32
    with pytest.raises(Exception, match="UNK|unk"):  # outside the vocabulary: an error, never silent
        hf("1.e4 Z")
    # the HF pair reproduces lab's next-move distribution on the tokenizer's ids
    hf_model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    x = torch.tensor([ids[:64]])
    with torch.no_grad():
        ours = model(x)
        theirs = hf_model(x).logits
    assert ours.shape == theirs.shape and torch.allclose(ours, theirs, atol=1e-5)
    loaded, tok, _ = load_model(folder)  # lab still loads the folder
    assert tok.kind == "char"


def test_move_tokenizer_gives_lab_ids(tmp_path):
    _, folder = _export(tmp_path, "move")
    hf = AutoTokenizer.from_pretrained(str(folder))
    lab = get_tokenizer("move")
    assert hf(GAME)["input_ids"] == lab.encode(GAME)
    assert hf(";1.e4 e5;1.d4")["input_ids"] == lab.encode(";1.e4 e5;1.d4")


def test_model_card_snippet_runs(tmp_path):
    """The model card's usage code, run as written on the folder, predicts with lab's ids."""
    _, folder = _export(tmp_path, "char")
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers")
    code = card.split("```python\n", 1)[1].split("```", 1)[0].replace("FOLDER", str(folder))
    scope: dict = {}
    exec(code, scope)  # noqa: S102 - our own card's example
    assert scope["ids"].tolist() == [get_tokenizer("char").encode(";1.e4 e5 2.")]
    assert 0 <= int(scope["next_id"]) < 32
