"""`lab chess data vocab` (a move vocabulary from corpora) and `lab chess data tokenize` (pre-tokenized shards)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Corpora = Annotated[list[Path], typer.Argument(help="Data folders from `lab chess data synth|lichess`.")]


def register(data_app: typer.Typer) -> None:
    """Add `vocab` and `tokenize` to the `lab chess data` group."""

    @data_app.command("vocab")
    def data_vocab(
        corpora: Corpora,
        out: Annotated[Path, typer.Option("--out", "-o", help="The vocabulary file to write (JSON).")],
        min_count: Annotated[int, typer.Option(help="Keep the moves seen at least this often.")] = 5,
        max_moves: Annotated[int | None, typer.Option(help="Keep at most this many moves.")] = None,
    ) -> None:
        """Count the corpora's moves and keep the frequent ones; other moves are spelled in characters."""
        from lab_shared.errors import LabError
        from lab_transcendence.pretok import corpus_games_text
        from lab_transcendence.tokenizer import get_tokenizer
        from lab_transcendence.vocab import build_vocab, count_moves

        if out.exists() and out.is_dir():
            raise LabError(
                f"--out {out} is a folder; give the vocabulary file's path (e.g. {out}/vocab.json)"
            )
        if min_count < 1:
            raise LabError(f"--min-count must be >= 1, got {min_count}")
        sources = [corpus_games_text(c) for c in corpora]
        counts, games = count_moves(t for texts, _, _ in sources for t in texts)
        if not counts:
            raise LabError("the corpora hold no moves")
        vocab = build_vocab(
            counts, min_count, max_moves, {"corpus": [str(c) for c in corpora], "games": games}
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        vocab.save(out)
        full = get_tokenizer("move").vocab_size
        typer.echo(
            f"{out}: {len(vocab.moves):,} moves seen >= {min_count} times (of {len(counts):,} distinct, "
            f"{games:,} games) cover {vocab.info['coverage']:.2%} of {vocab.info['move_tokens']:,} moves; "
            f"vocab_size {vocab.vocab_size:,} (the move tokenizer: {full:,})"
        )

    @data_app.command("tokenize")
    def data_tokenize(
        corpora: Corpora,
        vocab: Annotated[
            Path, typer.Option("--vocab", help="A vocabulary file from `lab chess data vocab`.")
        ],
        out: Annotated[Path, typer.Option("--out", "-o", help="Output data folder (uint16 token shards).")],
        max_mib: Annotated[float | None, typer.Option(help="Cap the folder at this many MiB.")] = None,
        shard_games: Annotated[int, typer.Option(help="Games per shard.")] = 20000,
        force: Annotated[bool, typer.Option("--force", help="Replace a finished folder in --out.")] = False,
    ) -> None:
        """Encode the corpora with a move vocabulary into memory-mapped shards `lab chess train` reads."""
        from lab_transcendence.pretok import tokenize_corpus
        from lab_transcendence.vocab import VocabTokenizer

        tok = VocabTokenizer.load(vocab)
        meta = tokenize_corpus(corpora, tok, out, max_mib=max_mib, shard_games=shard_games, force=force)
        typer.echo(
            f"{out}: {meta['games_kept']:,} games, {meta['plies']:,} moves, {meta['tokens']:,} tokens "
            f"({meta['tokens_per_move']} a move; {meta['fallback_moves']:,} moves spelled), "
            f"{meta['bytes'] / (1 << 20):.2f} MiB in {meta['seconds']}s"
            + (" (cut at --max-mib)" if meta["truncated"] else "")
        )
