"""Stream a Lichess database dump (.pgn or .pgn.zst) into token shards of filtered transcripts.

The main process only decompresses and cuts the stream into blocks of whole games (cheap); workers split
blocks into games, read headers with plain string operations, filter, convert movetext (fast path, or full
python-chess replay with `validate`) and tokenize. Each block becomes one shard in DIR:

  shard-00000.tokens.npy    token ids (uint8 for char, uint16 for move), games back to back
  shard-00000.offsets.npy   int64 start of every game (+ the end), so blocks can be rebuilt for any size
  progress.json             blocks done and counters so far: a killed ingest resumes where it stopped
  meta.json                 written last: filters, counts, drops by reason, rating histogram, max_rating

Nothing is loaded whole: memory is a few blocks in flight.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lab_shared.errors import LabError
from lab_shared.io import atomic_path, atomic_write_json, read_json
from lab_transcendence.procs import die_with_parent
from lab_transcendence.tokenizer import get_tokenizer
from lab_transcendence.transcript import RESULTS, BadGame, fast_transcript, replay_transcript

TIME_CONTROLS = ("ultrabullet", "bullet", "blitz", "rapid", "classical", "correspondence")
HIST_BIN = 100


@dataclass
class IngestFilters:
    """Which games to keep. Ratings: both players must satisfy the bounds; '?' or missing ratings drop."""

    max_elo: int | None = None
    min_elo: int | None = None
    min_plies: int = 1
    max_plies: int | None = None
    rated_only: bool = False
    time_controls: list[str] = field(default_factory=list)  # empty = all classes
    require_ratings: bool = True
    require_result: bool = True  # a movetext without a result is treated as truncated

    def check(self) -> None:
        bad = [t for t in self.time_controls if t not in TIME_CONTROLS]
        if bad:
            raise LabError(f"unknown time control class {bad[0]!r} (choose from {', '.join(TIME_CONTROLS)})")
        if self.min_plies < 0:
            raise LabError(f"--min-plies must be >= 0, got {self.min_plies}")
        if self.max_plies is not None and self.max_plies < max(1, self.min_plies):
            raise LabError(f"--max-plies must be >= 1 and >= --min-plies, got {self.max_plies}")
        for opt, v in (("--max-elo", self.max_elo), ("--min-elo", self.min_elo)):
            if v is not None and not 0 <= v <= 10_000:
                raise LabError(f"{opt} must be a rating in 0..10000, got {v}")
        if self.max_elo is not None and self.min_elo is not None and self.min_elo > self.max_elo:
            raise LabError(
                f"--min-elo ({self.min_elo}) is above --max-elo ({self.max_elo}): no game can pass"
            )


def time_control_class(tc: str) -> str | None:
    """Lichess's class of a TimeControl header ("180+2" -> blitz): estimated time = base + 40 * increment."""
    if tc in ("-", ""):
        return "correspondence"
    try:
        base, _, inc = tc.partition("+")
        est = int(base) + 40 * int(inc or 0)
    except ValueError:
        return None
    if est < 30:
        return "ultrabullet"
    if est < 180:
        return "bullet"
    if est < 480:
        return "blitz"
    if est < 1500:
        return "rapid"
    return "classical"


def parse_headers(lines: list[str]) -> dict[str, str]:
    headers = {}
    for line in lines:
        sp = line.find(" ")
        q0, q1 = line.find('"'), line.rfind('"')
        if line.startswith("[") and sp > 1 and q1 > q0 >= 0:
            headers[line[1:sp]] = line[q0 + 1 : q1]
    return headers


def split_games(text: str) -> Iterator[tuple[list[str], str]]:
    """Cut PGN text into (header lines, movetext) per game. A header line after movetext starts a new game."""
    headers: list[str] = []
    moves: list[str] = []
    ended = False  # the movetext ended with a result: a further non-header line is not part of this game
    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        if line[0] == "[" and line[-1] == "]" and '"' in line:
            if moves:
                yield headers, " ".join(moves)
                headers, moves, ended = [], [], False
            headers.append(line)
        elif line[0] == "%":  # PGN escape line
            continue
        else:
            if ended:
                yield headers, " ".join(moves)
                headers, moves = [], []
            moves.append(line)
            ended = line.rsplit(None, 1)[-1] in RESULTS
    if headers or moves:
        yield headers, " ".join(moves)


def _rating(value: str | None) -> int | None:
    if value is None or not value.isdigit():
        return None
    return int(value)


@dataclass
class BlockResult:
    tokens: bytes
    offsets: list[int]
    kept: int = 0
    seen: int = 0
    dropped: Counter = field(default_factory=Counter)
    hist: Counter = field(default_factory=Counter)
    max_rating: int | None = None
    plies: int = 0
    mismatches: int = 0
    mismatch_example: str | None = None


def process_block(text: str, filters: IngestFilters, tokenizer_kind: str, validate: bool) -> BlockResult:
    """Filter and convert every game in a block of PGN text; returns its tokens and counters."""
    tok = get_tokenizer(tokenizer_kind)
    res = BlockResult(tokens=b"", offsets=[0])
    pieces: list[str] = []
    f = filters
    tcs = set(f.time_controls)
    for header_lines, movetext in split_games(text):
        res.seen += 1
        if not header_lines:
            res.dropped["no_headers"] += 1
            continue
        h = parse_headers(header_lines)
        if "FEN" in h or h.get("Variant", "Standard").lower() not in ("standard", "chess", ""):
            res.dropped["non_standard_start"] += 1
            continue
        we, be = _rating(h.get("WhiteElo")), _rating(h.get("BlackElo"))
        if f.require_ratings and (we is None or be is None):
            res.dropped["missing_rating"] += 1
            continue
        rs = [r for r in (we, be) if r is not None]
        if f.max_elo is not None and any(r > f.max_elo for r in rs):
            res.dropped["rating_above_max"] += 1
            continue
        if f.min_elo is not None and any(r < f.min_elo for r in rs):
            res.dropped["rating_below_min"] += 1
            continue
        if f.rated_only and "rated" not in h.get("Event", "").lower().split():
            res.dropped["not_rated"] += 1
            continue
        if tcs and time_control_class(h.get("TimeControl", "")) not in tcs:
            res.dropped["time_control"] += 1
            continue
        try:
            transcript, plies = fast_transcript(movetext, require_result=f.require_result)
            if validate:
                pgn = "\n".join(header_lines) + "\n\n" + movetext + "\n"
                checked, plies = replay_transcript(pgn)
                if checked != transcript:
                    res.mismatches += 1
                    res.mismatch_example = res.mismatch_example or f"{transcript[:60]} != {checked[:60]}"
                    transcript = checked
        except BadGame as e:
            res.dropped[e.reason] += 1
            continue
        if plies < f.min_plies:
            res.dropped["too_short"] += 1
            continue
        if f.max_plies is not None and plies > f.max_plies:
            res.dropped["too_long"] += 1
            continue
        pieces.append(transcript)
        res.kept += 1
        res.plies += plies
        for r in rs:
            res.hist[r // HIST_BIN * HIST_BIN] += 1
        if rs:
            res.max_rating = max(res.max_rating or 0, *rs)
    if tokenizer_kind == "char":
        res.tokens = tok.encode_bytes("".join(pieces))
        lengths = [len(p) for p in pieces]
    else:
        ids = [tok.encode(p) for p in pieces]
        lengths = [len(i) for i in ids]
        res.tokens = np.array([t for seq in ids for t in seq], dtype=np.uint16).tobytes()
    res.offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).tolist() if lengths else [0]
    return res


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
READ_BYTES = 1 << 20


class CorruptInput(LabError):
    """The input file is broken (truncated or garbage zstd): the ingest stops and writes nothing finished."""


def _zstd_chunks(raw: io.BufferedReader, path: Path) -> Iterator[bytes]:
    """Decompressed bytes of every zstd frame in `raw`, checked to the end: a file that stops inside a frame
    (a truncated download) or holds bytes that are not zstd raises CorruptInput naming where."""
    import zstandard

    dctx = zstandard.ZstdDecompressor()
    obj = dctx.decompressobj()
    pos = 0  # compressed bytes consumed
    out_bytes = 0
    frames = 0
    in_frame = False
    while True:
        data = raw.read(READ_BYTES)
        if not data:
            break
        while data:
            try:
                out = obj.decompress(data)
            except zstandard.ZstdError as e:
                raise CorruptInput(
                    f"{path}: not valid zstd data after byte {pos:,} of {path.stat().st_size:,} "
                    f"({frames} whole frames, {out_bytes:,} bytes decompressed before it): {e}"
                ) from None
            if out:
                out_bytes += len(out)
                yield out
            if obj.eof:
                rest = obj.unused_data
                pos += len(data) - len(rest)
                frames += 1
                in_frame = False
                data = rest
                obj = dctx.decompressobj()
            else:
                pos += len(data)
                in_frame = True
                data = b""
    if in_frame:
        raise CorruptInput(
            f"{path}: truncated zstd file: the data stops inside frame {frames + 1} at byte {pos:,} "
            f"({out_bytes:,} bytes decompressed); `zstd -t` confirms, download it again"
        )


def _byte_chunks(path: Path) -> Iterator[bytes]:
    """The file's bytes (decompressed when it is zstd: by the .zst suffix or the zstd magic number)."""
    with open(path, "rb") as raw:
        head = raw.read(4)
        skippable = len(head) == 4 and head[1:] == b"\x2a\x4d\x18" and head[0] & 0xF0 == 0x50
        if head == ZSTD_MAGIC or skippable:
            raw.seek(0)
            yield from _zstd_chunks(raw, path)
            return
        if path.suffix == ".zst":
            what = "an empty file" if not head else f"it starts with {head!r}, not the zstd magic number"
            raise CorruptInput(f"{path}: not a zstd file ({what})")
        yield head
        while data := raw.read(READ_BYTES):
            yield data


def text_chunks(path: Path) -> Iterator[str]:
    """The file as text (UTF-8, undecodable bytes replaced), in pieces."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for data in _byte_chunks(path):
        text = decoder.decode(data)
        if text:
            yield text
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


class _TextReader:
    """read(n) over text_chunks: exactly n characters a call until the end (blocks keep their sizes)."""

    def __init__(self, chunks: Iterator[str]):
        self.chunks = chunks
        self.rest = ""
        self.pos = 0

    def read(self, n: int) -> str:
        parts = []
        want = n
        while want > 0:
            if self.pos >= len(self.rest):
                nxt = next(self.chunks, None)
                if nxt is None:
                    break
                self.rest, self.pos = nxt, 0
            piece = self.rest[self.pos : self.pos + want]
            self.pos += len(piece)
            want -= len(piece)
            parts.append(piece)
        return "".join(parts)


def read_blocks(path: Path, block_chars: int) -> Iterator[str]:
    """Whole-game blocks of about block_chars characters (cut before a line starting a header block)."""
    buf = ""
    f = _TextReader(text_chunks(path))
    while True:
        chunk = f.read(block_chars)
        if not chunk:
            break
        buf += chunk
        cut = buf.rfind("\n\n[")
        if cut < 0:
            cut = buf.rfind("\n[Event ")
        if cut <= 0:
            continue
        yield buf[: cut + 1]
        buf = buf[cut + 1 :]
    if buf.strip():
        yield buf


def _settings_key(
    source: Path, filters: IngestFilters, tokenizer: str, validate: bool, block_chars: int
) -> str:
    st = source.stat()
    blob = repr((str(source.resolve()), st.st_size, asdict(filters), tokenizer, validate, block_chars))
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def shard_paths(out: Path, i: int) -> tuple[Path, Path]:
    return out / f"shard-{i:05d}.tokens.npy", out / f"shard-{i:05d}.offsets.npy"


def _write_shard(out: Path, i: int, res: BlockResult, dtype) -> None:
    tok_path, off_path = shard_paths(out, i)
    with atomic_path(tok_path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.frombuffer(res.tokens, dtype=dtype))
    with atomic_path(off_path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(res.offsets, dtype=np.int64))


def ingest(
    source: str | Path,
    out: str | Path,
    filters: IngestFilters | None = None,
    tokenizer: str = "char",
    validate: bool = False,
    workers: int = 1,
    block_chars: int = 16 << 20,
    max_games: int | None = None,
    force: bool = False,
    show_progress: bool = True,
    extra_meta: dict | None = None,
    allow_empty: bool = False,
) -> dict:
    """Ingest a PGN(.zst) file into token shards in `out`; resumes an interrupted run. Returns meta.

    A truncated or garbage zstd file is a CorruptInput error, and a file that yields no game an error unless
    `allow_empty`: in both cases meta.json (the mark of a finished data set) is not written."""
    from lab_shared.progress import progress

    source, out = Path(source), Path(out)
    filters = filters or IngestFilters()
    filters.check()
    get_tokenizer(tokenizer)
    if workers < 1:
        raise LabError(f"--workers must be >= 1, got {workers}")
    if not 1 <= block_chars <= 1 << 30:
        raise LabError(f"--block-mb must be in 1..1024, got {block_chars / (1 << 20):g}")
    if max_games is not None and max_games < 1:
        raise LabError(f"--max-games must be >= 1, got {max_games}")
    if not source.exists():
        raise LabError(f"PGN file not found: {source}")
    if not source.is_file():
        raise LabError(f"{source} is not a file")
    if out.exists() and not out.is_dir():
        raise LabError(f"--out {out} exists and is not a folder")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    key = _settings_key(source, filters, tokenizer, validate, block_chars) + f"-{max_games}"
    state = {"key": key, "blocks_done": 0, "seen": 0, "kept": 0, "plies": 0, "tokens": 0, "mismatches": 0,
             "dropped": {}, "hist": {}, "max_rating": None, "mismatch_example": None, "shards": []}  # fmt: skip
    prog_file, meta_file = out / "progress.json", out / "meta.json"
    if force:
        meta_file.unlink(missing_ok=True)
        prog_file.unlink(missing_ok=True)
        for p in [*out.glob("shard-*.npy"), *out.glob("blocks-*.npy")]:
            p.unlink()
    if meta_file.is_file():
        meta = read_json(meta_file)
        if isinstance(meta, dict) and meta.get("settings_key") == key:
            return meta  # already complete
        raise LabError(
            f"{out} already holds a finished data set made with other settings (use --force or another --out)"
        )
    if prog_file.is_file():
        prev = read_json(prog_file)
        if not isinstance(prev, dict) or prev.get("key") != key or set(state) - set(prev):
            raise LabError(
                f"{out} holds an unfinished ingest with other settings (use --force or another --out)"
            )
        state = prev
    dtype = np.uint8 if tokenizer == "char" else np.uint16
    dropped, hist = Counter(state["dropped"]), Counter({int(k): v for k, v in state["hist"].items()})
    done_blocks = state["blocks_done"]
    size = source.stat().st_size

    def blocks() -> Iterator[tuple[int, str]]:
        for i, text in enumerate(read_blocks(source, block_chars)):
            if i >= done_blocks:
                yield i, text

    def results() -> Iterator[tuple[int, BlockResult]]:
        if workers <= 1:
            for i, text in blocks():
                yield i, process_block(text, filters, tokenizer, validate)
            return
        with ProcessPoolExecutor(workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            pending = []
            for i, text in blocks():
                pending.append((i, pool.submit(process_block, text, filters, tokenizer, validate)))
                if len(pending) >= 2 * workers:
                    j, fut = pending.pop(0)
                    yield j, fut.result()
            for j, fut in pending:
                yield j, fut.result()

    bar = progress(desc=f"ingest {source.name}", enabled=show_progress)
    try:
        for i, res in results():
            if max_games is not None and state["kept"] + res.kept > max_games:
                keep = max_games - state["kept"]
                res.offsets = res.offsets[: keep + 1]
                res.tokens = res.tokens[: res.offsets[-1] * np.dtype(dtype).itemsize]
                res.kept = keep
            _write_shard(out, i, res, dtype)
            state["blocks_done"] = i + 1
            state["seen"] += res.seen
            state["kept"] += res.kept
            state["plies"] += res.plies
            state["tokens"] += len(res.offsets) and res.offsets[-1]
            state["mismatches"] += res.mismatches
            state["mismatch_example"] = state["mismatch_example"] or res.mismatch_example
            state["shards"].append(i)
            dropped.update(res.dropped)
            hist.update(res.hist)
            if res.max_rating is not None:
                state["max_rating"] = max(state["max_rating"] or 0, res.max_rating)
            state["dropped"], state["hist"] = dict(dropped), {str(k): v for k, v in sorted(hist.items())}
            atomic_write_json(prog_file, state)
            bar.update(res.seen, kept=state["kept"], shards=len(state["shards"]))
            if max_games is not None and state["kept"] >= max_games:
                break
    except CorruptInput as e:
        _remove_if_empty(out, created)
        raise CorruptInput(
            f"{e}; {state['seen']:,} games ingested before it; no finished data set written in {out}"
        ) from None
    finally:
        bar.close()
    if state["kept"] == 0 and not allow_empty:
        for i in state["shards"]:
            for p in shard_paths(out, i):
                p.unlink(missing_ok=True)
        prog_file.unlink(missing_ok=True)
        _remove_if_empty(out, created)
        why = ", ".join(f"{k} {v:,}" for k, v in sorted(dropped.items())) or "no game text found"
        raise LabError(
            f"no games kept from {source} ({state['seen']:,} seen; dropped: {why}); nothing written "
            "(not a PGN file? pass --allow-empty to accept an empty data set)"
        )
    meta = {
        "source": str(source),
        "source_bytes": size,
        "tokenizer": tokenizer,
        "vocab_size": get_tokenizer(tokenizer).vocab_size,
        "dtype": np.dtype(dtype).name,
        "filters": asdict(filters),
        "validate": validate,
        "games_seen": state["seen"],
        "games_kept": state["kept"],
        "games_dropped": dict(sorted(dropped.items())),
        "plies": state["plies"],
        "tokens": state["tokens"],
        "rating_histogram": {str(k): v for k, v in sorted(hist.items())},
        "rating_bin": HIST_BIN,
        "max_rating": state["max_rating"],
        "validation_mismatches": state["mismatches"] if validate else None,
        "validation_mismatch_example": state["mismatch_example"],
        "shards": [shard_paths(out, i)[0].name.removesuffix(".tokens.npy") for i in sorted(state["shards"])],
        "settings_key": key,
        **(extra_meta or {}),
    }
    atomic_write_json(meta_file, meta)
    prog_file.unlink(missing_ok=True)
    return meta


def _remove_if_empty(folder: Path, created: bool) -> None:
    """Take back a folder this run created when the run failed before writing anything into it."""
    if created:
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty (or gone): leave it


def load_games(data_dir: str | Path) -> tuple[list[np.ndarray], dict]:
    """The data folder's games as memory-mapped token arrays, one per game (views, no copies), plus meta."""
    data_dir = Path(data_dir)
    meta_file = data_dir / "meta.json"
    if not meta_file.is_file():
        raise LabError(
            f"{data_dir} is not a finished chess data folder (no meta.json); run `lab chess data ...` first"
        )
    meta = read_json(meta_file)
    if not isinstance(meta, dict) or not isinstance(meta.get("shards"), list):
        raise LabError(f"{meta_file} is not a chess data set's meta.json (no list of shards)")
    games: list[np.ndarray] = []
    for name in meta["shards"]:
        if not isinstance(name, str) or "/" in name or name.startswith("."):
            raise LabError(f"{meta_file}: bad shard name {name!r}")
        try:
            toks = np.load(data_dir / f"{name}.tokens.npy", mmap_mode="r")
            offs = np.load(data_dir / f"{name}.offsets.npy")
        except (OSError, ValueError) as e:
            raise LabError(f"corrupt or missing shard {name} in {data_dir}: {e}") from None
        games.extend(toks[offs[j] : offs[j + 1]] for j in range(len(offs) - 1))
    return games, meta


def lichess_style_game(
    sans: list[str], result: str, index: int, white_elo: int | str, black_elo: int | str, seed: int = 0
) -> str:
    """A game written as the Lichess database writes it (its 17 headers, `[%clk]` comments after every
    move, `N...` after comments): realistic input for tests and the ingest benchmark."""
    import random

    rng = random.Random(f"{seed}-{index}")
    base, inc = rng.choice([(60, 0), (180, 0), (180, 2), (300, 3), (600, 0), (900, 10)])
    clocks = [base, base]
    headers = [
        ("Event", "Rated Blitz game"), ("Site", f"https://lichess.org/{index:08d}"), ("Date", "2024.01.01"),
        ("Round", "-"), ("White", f"player{rng.randrange(10**6)}"), ("Black", f"player{rng.randrange(10**6)}"),
        ("Result", result), ("UTCDate", "2024.01.01"), ("UTCTime", "00:00:00"), ("WhiteElo", str(white_elo)),
        ("BlackElo", str(black_elo)), ("WhiteRatingDiff", "+5"), ("BlackRatingDiff", "-5"), ("ECO", "C20"),
        ("Opening", "King's Pawn Game"), ("TimeControl", f"{base}+{inc}"), ("Termination", "Normal"),
    ]  # fmt: skip
    parts = []
    for i, san in enumerate(sans):
        side = i % 2
        clocks[side] = max(0, clocks[side] - rng.randrange(0, 8) + inc)
        c = clocks[side]
        clk = f"{{ [%clk {c // 3600}:{c // 60 % 60:02d}:{c % 60:02d}] }}"
        num = f"{i // 2 + 1}. " if side == 0 else f"{i // 2 + 1}... "
        parts.append(f"{num}{san} {clk}")
    head = "\n".join(f'[{k} "{v}"]' for k, v in headers)
    return f"{head}\n\n{' '.join(parts)} {result}\n\n"
