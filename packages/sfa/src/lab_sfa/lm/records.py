"""Task data for a Hugging Face causal LM: JSONL records, schema-checked, tokenized and packed into blocks.

A record is either ``{"prompt": str, "response": str}`` (instruction data: trained on the response tokens,
scored by exact match of the greedy completion of the prompt) or ``{"text": str}`` (plain text: trained
and scored on every token). A task's records must all have the same form. A bad line is one LabError
naming ``file:line``.

Packing: each record becomes ``tokenizer(prompt) + tokenizer(response, no specials) + [eos]``; whole records
are packed greedily into fixed-length blocks (a record never straddles two blocks, so the first record of a
block starts at position 0, as a prompt does at evaluation; a text record longer than a block is cut into
block-sized pieces). Every block carries input ids, labels (-100 on prompt and padding) and an attention
mask, stacked in one ``[n, 3, L]`` tensor (``blocks``), so data fingerprints cover all three and every block
has the same shape (torch's default collate batches blocks of different tasks together: replay, multitask).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from lab_shared.errors import LabError

IGNORE = -100


@dataclass(frozen=True)
class Record:
    """One example: prompt/response (response set) or plain text (prompt holds the text, response None)."""

    prompt: str
    response: str | None = None

    @property
    def is_text(self) -> bool:
        return self.response is None

    def key(self) -> str:
        """A hash of the normalised content (splits and de-duplication use it)."""
        body = self.prompt if self.is_text else f"{self.prompt}\x00{self.response}"
        return hashlib.sha1(" ".join(body.split()).lower().encode("utf-8")).hexdigest()


def read_jsonl(path: Path) -> list[Record]:
    """Records of a JSONL file; a malformed line is a LabError naming ``path:line``."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise LabError(f"task data file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LabError(f"cannot read {path}: {e}") from None
    out: list[Record] = []
    kind = None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{i}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise LabError(f"{where}: not valid JSON ({e.msg})") from None
        rec = _record(obj, where)
        form = "text" if rec.is_text else "prompt/response"
        if kind is not None and form != kind:
            raise LabError(f"{where}: a {form} record in a file of {kind} records (use one form per task)")
        kind = form
        out.append(rec)
    if not out:
        raise LabError(f"{path}: no records (need JSON lines with prompt/response or text)")
    return out


def _record(obj, where: str) -> Record:
    if not isinstance(obj, dict):
        raise LabError(f"{where}: a record must be a JSON object, got {type(obj).__name__}")
    keys = set(obj)
    if keys == {"text"}:
        if not isinstance(obj["text"], str) or not obj["text"].strip():
            raise LabError(f"{where}: 'text' must be a non-empty string")
        return Record(obj["text"])
    if keys == {"prompt", "response"}:
        p, r = obj["prompt"], obj["response"]
        if not isinstance(p, str) or not isinstance(r, str) or not p or not r.strip():
            raise LabError(f"{where}: 'prompt' and 'response' must be non-empty strings")
        return Record(p, r)
    raise LabError(
        f"{where}: a record has keys {{'prompt', 'response'}} or {{'text'}}, got {sorted(keys) or '{}'}"
    )


def write_jsonl(records: list[Record], path: Path) -> None:
    """Write records as JSONL (the format `read_jsonl` reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            obj = {"text": r.prompt} if r.is_text else {"prompt": r.prompt, "response": r.response}
            f.write(json.dumps(obj, ensure_ascii=False) + "\n")


def hash_split(records: list[Record], test_fraction: float) -> tuple[list[Record], list[Record]]:
    """De-duplicate, then split by content hash: the same record always lands on the same side."""
    seen, train, test = set(), [], []
    for r in records:
        k = r.key()
        if k in seen:
            continue
        seen.add(k)
        (test if int(k[:8], 16) % 10_000 < test_fraction * 10_000 else train).append(r)
    return train, test


class SFTBlocks(Dataset):
    """Packed blocks: ``blocks[i] = (input_ids, labels, attention_mask)``, each of length L."""

    def __init__(self, blocks: torch.Tensor, name: str = "", records: list[Record] | None = None):
        self.blocks = blocks
        self.name = name
        self.records = records or []  # the records packed (evaluation decodes their prompts)

    def __len__(self) -> int:
        return self.blocks.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        b = self.blocks[i]
        return {"input_ids": b[0], "labels": b[1], "attention_mask": b[2]}

    @property
    def n_tokens(self) -> int:
        return int((self.blocks[:, 1] != IGNORE).sum())


def encode_record(tok, rec: Record) -> tuple[list[int], list[int]]:
    """Token ids and labels of one record (prompt tokens are not trained on)."""
    eos = tok.eos_token_id
    if rec.is_text:
        ids = tok(rec.prompt, add_special_tokens=True)["input_ids"] + [eos]
        return ids, list(ids)
    p = tok(rec.prompt, add_special_tokens=True)["input_ids"]
    r = tok(rec.response, add_special_tokens=False)["input_ids"] + [eos]
    return p + r, [IGNORE] * len(p) + r


def pack_records(
    tok, records: list[Record], block: int, max_blocks: int = 0, seed: int = 0, name: str = ""
) -> SFTBlocks:
    """Shuffle (seeded) and pack whole records into ``block``-token blocks (0 = every record)."""
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    rows: list[tuple[list[int], list[int]]] = []
    cur_ids: list[int] = []
    cur_lab: list[int] = []
    used: list[Record] = []

    def flush() -> None:
        nonlocal cur_ids, cur_lab
        if cur_ids:
            rows.append((cur_ids, cur_lab))
        cur_ids, cur_lab = [], []

    for i in order:
        if max_blocks and len(rows) >= max_blocks:
            break
        ids, lab = encode_record(tok, records[i])
        if len(ids) > block:
            if not records[i].is_text:  # a prompt/response record must fit whole
                continue
            for s in range(0, len(ids), block):
                flush()
                cur_ids, cur_lab = ids[s : s + block], lab[s : s + block]
            flush()
        else:
            if len(cur_ids) + len(ids) > block:
                flush()
            cur_ids, cur_lab = cur_ids + ids, cur_lab + lab
        used.append(records[i])
    flush()
    if max_blocks:
        rows = rows[:max_blocks]
    rows = [r for r in rows if any(t != IGNORE for t in r[1])]
    if not rows:
        raise LabError(f"task {name!r}: no record fits in a block of {block} tokens")
    out = torch.full((len(rows), 3, block), 0, dtype=torch.long)
    out[:, 0] = pad
    out[:, 1] = IGNORE
    for n, (ids, lab) in enumerate(rows):
        out[n, 0, : len(ids)] = torch.tensor(ids)
        out[n, 1, : len(lab)] = torch.tensor(lab)
        out[n, 2, : len(ids)] = 1
    return SFTBlocks(out, name, used)


def sft_loss(model, batch) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled tokens (HF models shift labels inside)."""
    return model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
    ).loss
