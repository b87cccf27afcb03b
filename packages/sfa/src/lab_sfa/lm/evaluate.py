"""Evaluation of a causal LM: held-out loss / perplexity / next-token accuracy, and math exact match."""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from lab_sfa.lm.data import TokenBlocks
from lab_sfa.lm.mathgen import Problem, exact_match
from lab_sfa.lm.tokenizer import EOS_ID, PAD_ID, ByteTokenizer

_NEWLINE = ord("\n")


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _eval_mode(model):
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was)


def heldout_metrics(model, blocks: TokenBlocks, batch_size: int = 64) -> dict[str, float]:
    """Mean next-token loss, perplexity and top-1 next-token accuracy over every block."""
    device = next(model.parameters()).device
    total_loss, total_correct, total = 0.0, 0, 0
    with _eval_mode(model):
        for s in range(0, len(blocks), batch_size):
            ids = blocks.blocks[s : s + batch_size].to(device)
            with _autocast(device):
                logits = model(input_ids=ids).logits
            logits, target = logits[:, :-1].float(), ids[:, 1:]
            total_loss += F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="sum"
            ).item()
            total_correct += (logits.argmax(-1) == target).sum().item()
            total += target.numel()
    loss = total_loss / max(total, 1)
    return {"loss": loss, "ppl": math.exp(min(loss, 50.0)), "token_acc": total_correct / max(total, 1)}


def greedy_complete(model, prompts: list[str], max_new_tokens: int = 8, batch_size: int = 64) -> list[str]:
    """Greedy continuation of each prompt until a newline/EOS, batched with left padding.

    Padding is masked out and positions count from each prompt's first real token, so a prompt's answer
    does not depend on its batch. Prompts are sorted by length so batches carry little padding.
    """
    tok = ByteTokenizer()
    device = next(model.parameters()).device
    ctx = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", 1024)
    encoded = [tok.encode(p)[-(ctx - max_new_tokens) :] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    out = [""] * len(prompts)
    with _eval_mode(model):
        for s in range(0, len(order), batch_size):
            chunk = order[s : s + batch_size]
            width = max(len(encoded[i]) for i in chunk)
            ids = torch.full((len(chunk), width), PAD_ID, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, i in enumerate(chunk):
                n = len(encoded[i])
                ids[r, width - n :] = torch.tensor(encoded[i])
                mask[r, width - n :] = 1
            ids, mask = ids.to(device), mask.to(device)
            done = torch.zeros(len(chunk), dtype=torch.bool, device=device)
            new = []
            for _ in range(max_new_tokens):
                pos = (mask.cumsum(-1) - 1).clamp(min=0)
                with _autocast(device):
                    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1]
                nxt = logits.argmax(-1)
                new.append(nxt)
                ids = torch.cat([ids, nxt[:, None]], dim=1)
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
                done |= (nxt == _NEWLINE) | (nxt == EOS_ID)
                if bool(done.all()):
                    break
            gen = torch.stack(new, 1).tolist()
            for row, i in zip(gen, chunk):
                cut = next((k for k, t in enumerate(row) if t in (_NEWLINE, EOS_ID)), len(row))
                out[i] = tok.decode(row[:cut])
    return out


def math_accuracy(model, problems: list[Problem], batch_size: int = 64, max_new_tokens: int = 8) -> float:
    """Fraction of problems whose greedy answer matches exactly (see mathgen.exact_match)."""
    if not problems:
        return float("nan")
    completions = greedy_complete(model, [p.prompt for p in problems], max_new_tokens, batch_size)
    return sum(exact_match(c, p.answer) for c, p in zip(completions, problems)) / len(problems)
