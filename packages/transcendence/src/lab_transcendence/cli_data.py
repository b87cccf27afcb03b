"""`lab chess data lichess|synth` (transcripts to token shards) and `lab chess train` (the GPT)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from lab_shared.backend import AddressOpt, BackendOpt
from lab_shared.cli_utils import ConfigOpt, ForceOpt, SetOpt, choice_option, config_defaults, with_default

# the registries behind these options live in modules that import python-chess or torch (kept out of
# `lab --help`); tests/test_cli_choices.py checks that the lists here are theirs
TOKENIZERS = ("char", "move")  # tokenizer.get_tokenizer (a corpus vocabulary is a file: `data vocab`)
EXPERT_PRESETS = ("default", "noisy")  # presets.PRESETS
MODEL_PRESETS = ("tiny", "small", "50m", "300m")  # model.PRESETS
MODELS = ("transcript", "position")  # train.ChessTrainConfig.model
DEVICES = ("auto", "cpu", "cuda", "mps")  # lab_shared.device.choose_device (also cuda:N)
TIME_CONTROLS = (
    "ultrabullet",
    "bullet",
    "blitz",
    "rapid",
    "classical",
    "correspondence",
)  # lichess.TIME_CONTROLS

data_app = typer.Typer(
    help="Build training data: Lichess dumps or synthetic Stockfish experts -> token shards.",
    no_args_is_help=True,
)

Workers = Annotated[int, typer.Option("--workers", "-j", help="Processes (default: all cores).")]
Tokenizer = Annotated[
    str,
    choice_option(
        "--tokenizer",
        choices=TOKENIZERS,
        help="char (the paper's 32 characters) or move (one token a move); for a corpus vocabulary see "
        "`data vocab` + `data tokenize`.",
    ),
]


def _workers(n: int) -> int:
    if n < 0:
        from lab_shared.errors import LabError

        raise LabError(f"--workers must be >= 0 (0 = all cores), got {n}")
    return n if n > 0 else max(1, os.cpu_count() or 1)


def _check_train(cfg) -> None:
    """Every chess training option in range before any data is read or any file written (one LabError
    naming the option): `--block-size 0` would otherwise train a NaN model and exit 0."""
    from lab_shared.errors import LabError
    from lab_transcendence.model import preset_config
    from lab_transcendence.train import apply_preset_defaults

    if not 0 <= cfg.val_fraction < 1:
        raise LabError(f"val_fraction must be in [0, 1), got {cfg.val_fraction}")
    if cfg.eval_batches < 1:
        raise LabError(f"eval_batches must be >= 1, got {cfg.eval_batches}")
    if not 0 <= cfg.dropout < 1:
        raise LabError(f"dropout must be in [0, 1), got {cfg.dropout}")
    if getattr(cfg, "model", "transcript") == "transcript":
        sizes = {k: getattr(cfg, k) for k in ("block_size", "n_layer", "n_head", "n_embd")}
        preset_config(apply_preset_defaults(cfg).preset, 32, dropout=cfg.dropout, **sizes).validate()
    cfg.trainer.validate()


def _print_summary(meta: dict, out: Path) -> None:
    typer.echo(
        f"{out}: kept {meta['games_kept']:,} of {meta['games_seen']:,} games, {meta['tokens']:,} tokens "
        f"({meta['tokenizer']}), max rating {meta.get('max_rating')}"
    )
    if meta.get("games_dropped"):
        typer.echo("dropped: " + ", ".join(f"{k} {v:,}" for k, v in meta["games_dropped"].items()))
    if meta.get("validation_mismatches"):
        typer.echo(
            f"warning: {meta['validation_mismatches']} games where the fast path and python-chess disagree"
        )


@data_app.command("lichess")
def data_lichess(
    pgn: Annotated[Path, typer.Argument(help="A Lichess database dump: .pgn or .pgn.zst.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output data folder.")],
    max_elo: Annotated[
        int | None, typer.Option(help="Keep games where BOTH players are rated at most this.")
    ] = None,
    min_elo: Annotated[int | None, typer.Option(help="... and at least this.")] = None,
    min_plies: Annotated[int, typer.Option(help="Drop games shorter than this many half-moves.")] = 1,
    max_plies: Annotated[
        int | None, typer.Option(help="Drop games longer than this many half-moves.")
    ] = None,
    rated_only: Annotated[
        bool, typer.Option("--rated-only", help="Keep only rated games (Event says 'Rated').")
    ] = False,
    time_control: Annotated[
        list[str] | None,
        choice_option(
            "--time-control",
            choices=TIME_CONTROLS,
            separator=",",
            help="Keep only these classes; repeatable or comma-separated.",
            default="all",
        ),
    ] = None,
    allow_missing_ratings: Annotated[
        bool, typer.Option(help="Keep games with '?' or missing ratings when no rating bound is set.")
    ] = False,
    validate: Annotated[
        bool,
        typer.Option(
            "--validate",
            help="Replay every game with python-chess (slow; drops illegal moves, checks the fast path).",
        ),
    ] = False,
    tokenizer: Tokenizer = "char",
    workers: Workers = 0,
    max_games: Annotated[int | None, typer.Option(help="Stop after keeping this many games.")] = None,
    block_mb: Annotated[int, typer.Option(help="Uncompressed MB of PGN per work unit / shard.")] = 16,
    force: Annotated[
        bool, typer.Option("--force", help="Start over instead of resuming an unfinished ingest in --out.")
    ] = False,
    allow_empty: Annotated[
        bool,
        typer.Option(
            "--allow-empty", help="Accept a file that yields no game (else: an error, nothing written)."
        ),
    ] = False,
) -> None:
    """Stream a Lichess PGN(.zst) dump into filtered transcripts and token shards (resumable, parallel)."""
    from lab_transcendence.lichess import IngestFilters, ingest

    tcs = [t.strip() for item in (time_control or []) for t in item.split(",") if t.strip()]
    filters = IngestFilters(
        max_elo=max_elo, min_elo=min_elo, min_plies=min_plies, max_plies=max_plies, rated_only=rated_only,
        time_controls=tcs, require_ratings=not allow_missing_ratings or max_elo is not None or min_elo is not None,
    )  # fmt: skip
    meta = ingest(pgn, out, filters, tokenizer=tokenizer, validate=validate, workers=_workers(workers),
                  block_chars=block_mb << 20, max_games=max_games, force=force,
                  allow_empty=allow_empty)  # fmt: skip
    _print_summary(meta, out)


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output data folder.")],
    players: Annotated[int, typer.Option("--players", "-k", help="Number of expert players.")] = 4,
    games: Annotated[int, typer.Option("--games", "-n", help="Games in the corpus.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed: experts' parameters and every game's moves.")] = 0,
    depth: Annotated[int, typer.Option(help="Experts' Stockfish search depth.")] = 2,
    rating_games: Annotated[
        int, typer.Option(help="Games per pairing in the rating round robin (0 = no ratings).")
    ] = 10,
    anchors: Annotated[
        str, typer.Option(help="Stockfish skill levels used as rating anchors (1-5), comma-separated.")
    ] = "1,3,5",
    vote_games: Annotated[
        int,
        typer.Option(help="Games of the experts' plurality vote (and of each expert) vs the first anchor."),
    ] = 0,
    max_plies: Annotated[int, typer.Option(help="Adjudicate a draw after this many half-moves.")] = 300,
    preset: Annotated[
        str,
        choice_option(
            choices=EXPERT_PRESETS,
            help="Experts: default, or noisy (weak experts, strong vote; see presets.py).",
        ),
    ] = "default",
    tokenizer: Tokenizer = "char",
    workers: Workers = 0,
    stockfish: Annotated[
        str | None,
        typer.Option(
            help="Stockfish binary: a path (./sf is relative to here) or a bare name looked up on PATH "
            "(default: LAB_STOCKFISH, PATH, /usr/games/stockfish)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Start over instead of resuming.")] = False,
    backend: BackendOpt = "local",
    address: AddressOpt = None,
) -> None:
    """Games between noisy Stockfish experts with measured ratings: PGN, experts.json and token shards."""
    import time

    from lab_shared.backend import Backend
    from lab_shared.errors import LabError
    from lab_transcendence.engines import resolve_stockfish
    from lab_transcendence.synth import SynthSettings, generate_corpus

    try:
        levels = [int(x) for x in anchors.split(",") if x.strip()]
    except ValueError:
        raise LabError(f"--anchors must be comma-separated skill levels, got {anchors!r}") from None
    settings = SynthSettings(players=players, games=games, seed=seed, depth=depth, rating_games=rating_games,
                             anchors=levels, max_plies=max_plies, vote_games=vote_games, preset=preset)  # fmt: skip
    engine = resolve_stockfish(stockfish)
    tasks = Backend(backend, address, workers=_workers(workers))
    tasks.start()  # Ray missing or unreachable: one line before any game
    t0 = time.perf_counter()
    meta = generate_corpus(out, settings, engine, workers=_workers(workers), tokenizer=tokenizer, force=force,
                           backend=tasks)  # fmt: skip
    dt = time.perf_counter() - t0
    for e in meta.get("experts", []):
        typer.echo(
            f"{e['name']}: random {e['random_rate']:.2f}, blind spot {e['blind_spot']}, depth {e['depth']}, "
            f"rating {e['rating']} +- {e['rating_se']}"
        )
    _print_summary(meta, out)
    from lab_shared.io import read_json

    rr = read_json(out / "experts.json").get("vote_round_robin")
    if rr:
        from lab_transcendence.presets import format_round_robin

        typer.echo(f"round robin, {rr['games_per_pair']} games a pair (Elo relative to the vote):")
        typer.echo(format_round_robin(rr))
    vote = read_json(out / "experts.json").get("vote_check")
    if vote:
        scores = ", ".join(f"{k} {v:.2f}" for k, v in vote["score"].items())
        typer.echo(f"score vs {vote['anchor']} over {vote['games_each']} games each: {scores}")
    typer.echo(f"took {dt:.1f}s")


def register(app: typer.Typer) -> None:
    """Add `data` (lichess, synth, vocab, tokenize) and `train` to the package's Typer app."""
    from lab_transcendence import cli_vocab

    cli_vocab.register(data_app)
    app.add_typer(data_app, name="data")

    @app.command(
        "train",
        cls=config_defaults(
            "lab_transcendence.train:ChessTrainConfig",
            {"model": "model", "preset": "preset", "device": "trainer.device", "seed": "trainer.seed"},
        ),
    )
    def train_cmd(
        data: Annotated[
            Path | None, typer.Option("--data", "-d", help="Data folder from `lab chess data`.")
        ] = None,
        model: Annotated[
            str | None,
            choice_option(
                "--model", choices=MODELS, help="The transcript GPT, or a position policy (positions folder)."
            ),
        ] = None,
        preset: Annotated[
            str | None, choice_option(choices=MODEL_PRESETS, help="Model size of the transcript GPT.")
        ] = None,
        max_steps: Annotated[
            int | None, typer.Option(help=with_default("Optimizer steps.", "per preset / model"))
        ] = None,
        batch_size: Annotated[
            int | None,
            typer.Option(help=with_default("Blocks per micro-batch (per process).", "per preset / model")),
        ] = None,
        grad_accum: Annotated[
            int | None, typer.Option(help=with_default("Micro-batches per step.", "per preset / model"))
        ] = None,
        lr: Annotated[
            float | None, typer.Option(help=with_default("Peak learning rate.", "per preset / model"))
        ] = None,
        block_size: Annotated[
            int | None, typer.Option(help="Context length (default: the preset's).")
        ] = None,
        device: Annotated[
            str | None, choice_option(choices=DEVICES, strict=False, help="Training device (or cuda:N).")
        ] = None,
        seed: Annotated[int | None, typer.Option(help="Seed.")] = None,
        name: Annotated[str, typer.Option(help="Run name (folder runs/chess-train/NAME-TIME).")] = "chess",
        resume: Annotated[
            Path | None, typer.Option(help="Continue a run directory from its last checkpoint.")
        ] = None,
        config: ConfigOpt = None,
        set_: SetOpt = None,
        force: ForceOpt = False,
    ) -> None:
        """Train the chess GPT with the core trainer (paper's optimizer defaults); exports RUN/model (HF GPT-2)."""
        from lab_shared.config import load_config
        from lab_shared.errors import LabError
        from lab_shared.rundir import RunDir
        from lab_transcendence.train import ChessTrainConfig, train

        values = {
            "data": data, "model": model, "preset": preset, "block_size": block_size, "trainer.max_steps": max_steps,
            "trainer.batch_size": batch_size, "trainer.grad_accum": grad_accum, "trainer.lr": lr,
            "trainer.device": device, "trainer.seed": seed,
        }  # fmt: skip
        run_dir = None
        if resume is not None:
            run_dir = RunDir.open(resume)
            if not run_dir.file("config.json").is_file():
                raise LabError(f"{resume} has no config.json: not a `lab chess train` run directory")
            cfg = load_config(ChessTrainConfig, run_dir.file("config.json"), set_ or (), values)
            # a changed setting needs --force; --max-steps may extend the run
            run_dir.check_resume(cfg, inputs=[cfg.data], force=force, allow=("trainer.max_steps",))
        else:
            cfg = load_config(ChessTrainConfig, config, set_ or (), values)
        _check_train(cfg)
        res = train(cfg, run_dir=run_dir, resume="auto" if resume is not None else None, name=name)
        typer.echo(
            f"step {res['step']}: train loss {res['train_loss']:.4f}"
            + (f", val loss {res['val_loss']:.4f}" if res.get("val_loss") is not None else "")
            + (
                f", {res['positions_per_s']:,.0f} positions/s"
                if res.get("model") == "position"
                else f", {res['tokens_per_s']:,.0f} tokens/s"
            )
            + f" on {res['device']}"
        )
        how = "a position policy" if res.get("model") == "position" else "loads with AutoModelForCausalLM"
        typer.echo(f"run: {res['run_dir']}  (model: {res['run_dir']}/model, {how})")
