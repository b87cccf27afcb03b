"""Pre-tokenized corpora: `lab chess data tokenize CORPUS... --vocab vocab.json --out DIR`.

Reads one or more `lab chess data` folders (any tokenizer), re-encodes every game with a move vocabulary
(vocab.py) and writes a data folder in the ingest's own format -- `shard-NNNNN.tokens.npy` (uint16 ids,
games back to back, memory-mapped on load), `shard-NNNNN.offsets.npy` (int64 game starts), `vocab.json`
and `meta.json` (written last: the mark of a finished folder) -- so `lab chess train --data DIR` reads it
directly and trains with that vocabulary. `--max-mib` caps the folder's size (the games that fit, in
order). A synthetic corpus's experts and ratings are carried into meta.json (the transcend command plays
the experts a model was trained on).
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import numpy as np

from lab_shared.errors import LabError
from lab_shared.io import atomic_path, atomic_write_json, read_json
from lab_transcendence.vocab import VOCAB_FILE, VocabTokenizer

FORMAT = "lab-chess-pretok-1"
CARRIED = ("synthetic", "synth_settings", "experts", "expert_ratings", "max_rating")


def corpus_games_text(corpus: Path):
    """(iterator over the games of a data folder as transcript text, its meta)."""
    from lab_transcendence.lichess import load_games
    from lab_transcendence.tokenizer import load_tokenizer

    games, meta = load_games(corpus)
    tok = load_tokenizer(meta.get("tokenizer", "char"), corpus)
    return (tok.decode(np.asarray(g).tolist()) for g in games), meta, len(games)


def _write(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, arr)


def tokenize_corpus(
    corpora: list[Path],
    vocab: VocabTokenizer,
    out: Path,
    max_mib: float | None = None,
    shard_games: int = 20000,
    force: bool = False,
) -> dict:
    """Write the corpora's games, encoded with `vocab`, as a data folder in `out`; returns its meta."""
    out = Path(out)
    corpora = [Path(c) for c in corpora]
    if not corpora:
        raise LabError("no corpus given")
    if max_mib is not None and not 0 < max_mib <= 1 << 20:
        raise LabError(f"--max-mib must be > 0, got {max_mib}")
    if shard_games < 1:
        raise LabError(f"shard_games must be >= 1, got {shard_games}")
    for c in corpora:
        if out.resolve() == c.resolve():
            raise LabError("--out must be a new folder, not a corpus")
    if out.exists() and not out.is_dir():
        raise LabError(f"--out {out} exists and is not a folder")
    if vocab.vocab_size > 1 << 16:
        raise LabError(f"a vocabulary of {vocab.vocab_size} ids does not fit uint16 shards")
    sources = [corpus_games_text(c) for c in corpora]  # every corpus checked before anything is written
    metas = [m for _, m, _ in sources]
    blob = repr(([(str(c.resolve()), m.get("settings_key")) for c, m in zip(corpora, metas, strict=True)],
                 vocab.moves, max_mib))  # fmt: skip
    key = hashlib.sha256(blob.encode()).hexdigest()[:16]
    if (out / "meta.json").is_file() and not force:
        meta = read_json(out / "meta.json")
        if isinstance(meta, dict) and meta.get("settings_key") == key:
            return meta
        raise LabError(f"{out} already holds a data set (use --force or another --out)")
    if force and out.exists():
        doc = read_json(out / "meta.json") if (out / "meta.json").is_file() else None
        if not (isinstance(doc, dict) and doc.get("format") == FORMAT) and any(out.iterdir()):
            raise LabError(
                f"--force replaces only a pre-tokenized folder; {out} is not one (nothing deleted)"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    vocab.save(out / VOCAB_FILE)
    # the cap covers every file: vocab.json, the shards (npy headers) and ~4 KB for meta.json
    budget = None if max_mib is None else int(max_mib * (1 << 20)) - (out / VOCAB_FILE).stat().st_size - 4096
    used = 0
    shards: list[str] = []
    cur: list[list[int]] = []
    games = tokens = plies = fallback_moves = 0
    full = False

    def flush() -> None:
        name = f"shard-{len(shards):05d}"
        lengths = [len(g) for g in cur]
        flat = np.fromiter((t for g in cur for t in g), dtype=np.uint16, count=sum(lengths))
        _write(out / f"{name}.tokens.npy", flat)
        _write(out / f"{name}.offsets.npy", np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
        shards.append(name)
        cur.clear()

    for texts, _, _ in sources:
        for text in texts:
            try:
                ids = vocab.encode(text)
            except ValueError as e:
                raise LabError(f"a game cannot be encoded with the vocabulary: {e}") from None
            cost = 2 * len(ids) + 8  # uint16 ids + an int64 offset
            if budget is not None and used + cost > budget - 256 * (len(shards) + 1):  # npy headers
                full = True
                break
            used += cost
            cur.append(ids)
            games += 1
            tokens += len(ids)
            n_moves = sum(1 for i in ids if i in vocab.final_ids)
            plies += n_moves
            fallback_moves += sum(1 for i in ids if i in vocab.last_ids)
            if len(cur) >= shard_games:
                flush()
        if full:
            break
    if cur:
        flush()
    if games == 0:
        shutil.rmtree(out, ignore_errors=True)
        raise LabError("no game fits (the corpora are empty or --max-mib is too small); nothing written")
    carried = {k: metas[0].get(k) for k in CARRIED if metas[0].get(k) is not None}
    if any({k: m.get(k) for k in carried} != carried for m in metas[1:]):
        carried = {}  # corpora of different experts: no single set to carry
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    meta = {
        "format": FORMAT,
        "source": [str(c) for c in corpora],
        "tokenizer": "vocab",
        "vocab_size": vocab.vocab_size,
        "dtype": "uint16",
        "games_seen": sum(n for _, _, n in sources),
        "games_kept": games,
        "games_dropped": {},
        "plies": plies,
        "tokens": tokens,
        "fallback_moves": fallback_moves,
        "tokens_per_move": round(tokens / max(1, plies), 4),
        "max_mib": max_mib,
        "truncated": full,
        "bytes": size,
        "seconds": round(time.perf_counter() - t0, 2),
        "shards": shards,
        "settings_key": key,
        **carried,
    }
    atomic_write_json(out / "meta.json", meta)
    return meta


def check_token_ids(data_dir: Path, meta: dict, vocab_size: int) -> None:
    """Every shard holds ids below vocab_size in the dtype meta.json names (LabError naming the shard)."""
    data_dir = Path(data_dir)
    want = meta.get("dtype")
    for name in meta.get("shards", []):
        try:
            toks = np.load(data_dir / f"{name}.tokens.npy", mmap_mode="r")
        except (OSError, ValueError) as e:
            raise LabError(f"corrupt or missing shard {name} in {data_dir}: {e}") from None
        if want and toks.dtype.name != want:
            raise LabError(f"{data_dir}/{name}.tokens.npy holds {toks.dtype.name}, meta.json says {want}")
        if toks.ndim != 1:
            raise LabError(f"{data_dir}/{name}.tokens.npy is not a flat token array")
        if len(toks) and int(toks.max()) >= vocab_size:
            raise LabError(
                f"{data_dir}/{name}.tokens.npy holds id {int(toks.max())}, the tokenizer has {vocab_size}"
            )
