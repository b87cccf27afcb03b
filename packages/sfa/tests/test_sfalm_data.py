"""Text domains (reading, bad input, deduplication, splits), the math generator and scorer, packing, greedy."""

from __future__ import annotations

import gzip
import os

import pytest
import torch

from lab_sfa.lm.data import pack_texts
from lab_sfa.lm.domains import DomainSpec, load_domain, normalize, paragraphs, read_text_file, strip_roff
from lab_sfa.lm.mathgen import exact_match, extract_answer, math_splits
from lab_sfa.lm.tokenizer import EOS_ID, ByteTokenizer
from lab_shared.errors import LabError

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PARAS = [
    f"Paragraph number {i}: the licensee may copy and distribute item {i * 7} freely." for i in range(200)
]


def _write_corpus(folder, n_files=5, shared="This SHARED clause repeats in every file of the corpus."):
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(n_files):
        body = [shared] + PARAS[f * 40 : (f + 1) * 40] + [shared.upper()]
        (folder / f"doc{f}.txt").write_text("\n\n".join(body))
    return folder


def test_domain_dedup_and_disjoint_splits(tmp_path):
    folder = _write_corpus(tmp_path / "legal")
    spec = DomainSpec("legal", [str(folder)], test_fraction=0.2)
    d = load_domain(spec)
    assert len(d.train) + len(d.test) == 201  # 200 distinct + the shared clause once (case/space-insensitive)
    assert d.stats["duplicates_removed"] == 9
    train_norm = {normalize(p) for p in d.train}
    assert not any(normalize(p) in train_norm for p in d.test)
    assert 10 < len(d.test) < 80
    again = load_domain(spec)
    assert again.train == d.train and again.test == d.test
    # exclusion: another domain's held-out text never reaches this one
    other = tmp_path / "other"
    other.mkdir()
    (other / "mix.txt").write_text(
        "\n\n".join(d.test + [f"Other text {i} about general topics here." for i in range(300)])
    )
    ex = load_domain(DomainSpec("other", [str(other)]), exclude=d.test_hashes())
    assert not set(map(normalize, ex.train + ex.test)) & set(map(normalize, d.test))
    assert ex.stats["duplicates_removed"] == len(d.test)


def test_domain_bad_input(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(LabError, match="empty"):
        load_domain(DomainSpec("x", [str(empty)]))
    binary = tmp_path / "blob.txt"
    binary.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(LabError, match="binary"):
        load_domain(DomainSpec("x", [str(binary)]))
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.bin").write_bytes(b"\x00\x01\x02" * 100)
    (junk / "b.txt").write_text("")
    with pytest.raises(LabError, match="no readable text"):
        load_domain(DomainSpec("x", [str(junk)]))
    (tmp_path / "nothing").mkdir()
    with pytest.raises(LabError, match="no readable text files"):
        load_domain(DomainSpec("x", [str(tmp_path / "nothing")]))
    with pytest.raises(LabError, match="does not exist"):
        load_domain(DomainSpec("x", [str(tmp_path / "missing")]))
    with pytest.raises(LabError, match="matches no file"):
        load_domain(DomainSpec("x", [str(tmp_path / "*.nope")]))
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("one short paragraph only, not enough to split")
    with pytest.raises(LabError, match="too little text"):
        load_domain(DomainSpec("x", [str(tiny)]))
    with pytest.raises(LabError, match="unknown key"):
        DomainSpec.from_dict({"name": "x", "paths": ["a"], "colour": "red"})
    with pytest.raises(LabError, match="needs 'name' and 'paths'"):
        DomainSpec.from_dict({"paths": ["a"]})


def test_folder_skips_binary_and_reads_gzip_and_man_pages(tmp_path):
    folder = _write_corpus(tmp_path / "mixed", n_files=2)
    (folder / "image.txt").write_bytes(b"\x89PNG\x00\x00" * 50)
    with gzip.open(folder / "notes.txt.gz", "wt") as f:
        f.write("\n\n".join(PARAS[150:170]))
    d = load_domain(DomainSpec("m", [str(folder)]))
    assert d.stats["files_skipped"] == 1 and d.stats["files_read"] == 3
    assert any("Paragraph number 160" in p for p in d.train + d.test)
    text = strip_roff(
        '.TH LS 1\n.SH NAME\nls \\- list \\fBdirectory\\fR contents\n.\\" comment\n.PP\nMore text.'
    )
    assert "ls - list directory contents" in text and "comment" not in text and "\\f" not in text
    assert read_text_file(folder / "notes.txt.gz").startswith("Paragraph number 150")


def test_paragraphs_cut_long_blocks():
    long = "\n".join(f"line {i} " + "x" * 50 for i in range(100))
    parts = paragraphs(long, max_chars=500)
    assert all(len(p) <= 500 for p in parts) and len(parts) > 10


def test_user_domain_from_dict(tmp_path):
    folder = _write_corpus(tmp_path / "u")
    spec = DomainSpec.from_dict(
        {"name": "mine", "paths": str(folder), "include": ["*.txt"], "test_fraction": 0.3}
    )
    assert spec.paths == [str(folder)] and load_domain(spec).test


def test_math_generator_and_exact_match():
    train, test = math_splits(300, 80, seed=3, max_value=40)
    assert len(train) == 300 and len(test) == 80
    assert not {p.question for p in train} & {p.question for p in test}
    assert len({p.question for p in train}) == 300
    again, _ = math_splits(300, 80, seed=3, max_value=40)
    assert again == train
    for p in train + test:
        if p.question.startswith("What is"):
            expr = p.question[len("What is ") : -1]
            assert int(eval(expr)) == int(p.answer)  # noqa: S307 - generated arithmetic only
        assert p.text == f"{p.prompt} {p.answer}\n" and int(p.answer) >= 0
    kinds = {p.question.split()[3] if p.question.startswith("What is") else "word" for p in train}
    assert kinds == {"+", "-", "*", "word"}
    assert exact_match(" 42\nQuestion: foo", "42")
    assert exact_match(" 1,024", "1024")
    assert not exact_match(" 41", "42")
    assert not exact_match("", "42") and not exact_match(" none", "42")
    assert extract_answer(" 7 apples") == "7"
    with pytest.raises(LabError, match="unknown math problem kind"):
        math_splits(10, 10, kinds=("div",))
    with pytest.raises(LabError, match="distinct math problems"):
        math_splits(500, 100, max_value=2, kinds=("add",))


def test_pack_texts_and_tokenizer():
    tok = ByteTokenizer()
    assert tok.decode(tok.encode("héllo", add_eos=True)) == "héllo"
    blocks = pack_texts(["abc", "defg"] * 20, block_size=8, seed=0)
    assert blocks.blocks.shape == (len(blocks), 8) and (blocks.blocks == EOS_ID).any()
    assert len(pack_texts(PARAS, 16, max_blocks=5)) == 5
    with pytest.raises(LabError, match="not enough text"):
        pack_texts(["ab"], block_size=64)


def test_greedy_complete_matches_generate():
    from lab_sfa.lm.evaluate import greedy_complete, heldout_metrics, math_accuracy
    from lab_sfa.lm.models import make_model

    torch.manual_seed(0)
    model = make_model("tiny").eval()
    prompts = ["Question: What is 2 + 3?\nAnswer:", "Question: What is 10 - 4?\nAnswer:", "abc"]
    got = greedy_complete(model, prompts, max_new_tokens=5)
    tok = ByteTokenizer()
    for prompt, text in zip(prompts, got):
        ids = torch.tensor([tok.encode(prompt)])
        out = model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=256, eos_token_id=258)
        new = out[0, ids.shape[1] :].tolist()
        cut = next((i for i, t in enumerate(new) if t in (10, 258)), len(new))
        assert text == tok.decode(new[:cut])
    train, _ = math_splits(20, 5)
    acc = math_accuracy(model, train)
    assert 0.0 <= acc <= 1.0
    m = heldout_metrics(model, pack_texts(PARAS, 32, max_blocks=6))
    assert m["loss"] > 0 and m["ppl"] > 1 and 0 <= m["token_acc"] <= 1
