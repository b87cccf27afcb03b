"""Evaluation of any Hugging Face causal LM on packed task blocks: per-token loss and greedy exact match."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lab_sfa.lm.evaluate import _autocast, _eval_mode  # the byte track's: no grad, eval mode, bf16 on CUDA
from lab_sfa.lm.records import IGNORE, Record, SFTBlocks


def token_metrics(model, data: SFTBlocks, batch_size: int = 32) -> dict[str, float]:
    """Mean loss per labelled token (nats), its perplexity, and top-1 accuracy on those tokens."""
    device = next(model.parameters()).device
    total, correct, n = 0.0, 0, 0
    with _eval_mode(model):
        for s in range(0, len(data), batch_size):
            b = data.blocks[s : s + batch_size].to(device)
            with _autocast(device):
                logits = model(input_ids=b[:, 0], attention_mask=b[:, 2]).logits
            logits, target = logits[:, :-1].float(), b[:, 1, 1:]
            keep = target != IGNORE
            total += F.cross_entropy(logits[keep], target[keep], reduction="sum").item()
            correct += (logits[keep].argmax(-1) == target[keep]).sum().item()
            n += int(keep.sum())
    loss = total / max(n, 1)
    return {"loss": loss, "ppl": math.exp(min(loss, 50.0)), "token_acc": correct / max(n, 1)}


def normalize_answer(text: str, multiline: bool) -> str:
    """What exact match compares: the first line (single-line responses) or the whole text, stripped."""
    text = text.strip()
    return " ".join(text.split()) if multiline else text.split("\n", 1)[0].strip()


def greedy_completions(
    model, tok, prompts: list[str], max_new_tokens: int, batch_size: int = 32
) -> list[str]:
    """Greedy continuations (left-padded batches through `model.generate`), cut at EOS."""
    device = next(model.parameters()).device
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out = [""] * len(prompts)
    enc = [tok(p, add_special_tokens=True)["input_ids"] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(enc[i]))
    with _eval_mode(model):
        for s in range(0, len(order), batch_size):
            chunk = order[s : s + batch_size]
            width = max(len(enc[i]) for i in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, i in enumerate(chunk):
                ids[r, width - len(enc[i]) :] = torch.tensor(enc[i])
                mask[r, width - len(enc[i]) :] = 1
            with _autocast(device):
                gen = model.generate(
                    input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                    do_sample=False, pad_token_id=pad, eos_token_id=tok.eos_token_id,
                )  # fmt: skip
            for r, i in enumerate(chunk):
                new = gen[r, width:].tolist()
                if tok.eos_token_id in new:
                    new = new[: new.index(tok.eos_token_id)]
                out[i] = tok.decode(new, skip_special_tokens=True)
    return out


def exact_match(model, tok, records: list[Record], batch_size: int = 32, max_new_tokens: int = 0) -> float:
    """Share of prompt/response records whose greedy completion equals the response (normalised)."""
    recs = [r for r in records if not r.is_text]
    if not recs:
        return float("nan")
    if max_new_tokens <= 0:  # enough for the longest response, plus a little
        max_new_tokens = min(
            256, 2 + max(len(tok(r.response, add_special_tokens=False)["input_ids"]) for r in recs)
        )
    comps = greedy_completions(model, tok, [r.prompt for r in recs], max_new_tokens, batch_size)
    hits = 0
    for c, r in zip(comps, recs):
        multi = "\n" in r.response.strip()
        hits += normalize_answer(c, multi) == normalize_answer(r.response, multi)
    return hits / len(recs)
