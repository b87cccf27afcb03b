"""`lab chess eval | transcend | calibrate | analyze | uci`: play, rate and test transcendence.

Heavy modules (torch, the model, python-chess engines) are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lab_shared.backend import AddressOpt, BackendOpt
from lab_shared.cli_utils import ConfigOpt, SetOpt, choice_option, config_defaults
from lab_transcendence.cli_data import DEVICES

# the registries behind these options live in modules that import torch or python-chess (kept out of
# `lab --help`); tests/test_cli_choices.py checks that the lists here are theirs
POLICIES = ("paper", "masked")  # player.POLICIES
PROTOCOLS = ("lab", "paper")  # player.PROTOCOLS
DESIGNS = ("anchors", "pool")  # transcend.validate
RATING_METHODS = ("period", "sequential")  # rating.rate_games
SERVE = ("auto", "actor", "worker")  # arena_tasks.SERVE
# eval / transcend options declared `= None` -> the EvalConfig field whose default --help shows
_EVAL_DEFAULTS = {
    "protocol": "protocol",
    "levels": "levels",
    "games": "games",
    "limit": "limit",
    "concurrency": "concurrency",
    "engines": "engines",
    "rating_method": "rating_method",
    "seed": "seed",
}
_TRANSCEND_DEFAULTS = {
    **_EVAL_DEFAULTS,
    "temperatures": "temperatures",
    "policies": "policies",
    "design": "design",
    "selection_games": "selection_games",
    "confirm_games": "confirm_games",
    "h2h_games": "h2h_games",
    "positions": "positions",
    "position_depth": "position_depth",
}

LevelsOpt = Annotated[str | None, typer.Option("--levels", help="Stockfish Skill Levels, e.g. 1,3,5.")]
GamesOpt = Annotated[int | None, typer.Option("--games", help="Games per temperature, policy and level.")]
LimitOpt = Annotated[
    str | None,
    typer.Option("--limit", help="Engine move limit: time:0.1 (paper), nodes:N, depth:N, depth:level+1."),
]
MaxMovesOpt = Annotated[
    int | None, typer.Option("--max-moves", help="Draw after this many full moves (0 = off).")
]
ConcOpt = Annotated[
    int | None, typer.Option("--concurrency", help="Games played at once (model batch size).")
]
EnginesOpt = Annotated[int | None, typer.Option("--engines", help="Stockfish processes in the pool.")]
AnchorsOpt = Annotated[
    str | None, typer.Option("--anchors", help="Anchor ratings JSON (lab chess calibrate).")
]
MethodOpt = Annotated[
    str | None,
    choice_option(
        "--rating-method", choices=RATING_METHODS, help="period (order-free Glicko-2) or sequential (paper)."
    ),
]
StockfishOpt = Annotated[
    str | None,
    typer.Option(
        "--stockfish",
        help="Stockfish binary: a path (./sf is relative to here) or a bare name looked up on PATH "
        "(default: LAB_STOCKFISH, PATH, /usr/games/stockfish).",
    ),
]
ServeOpt = Annotated[
    str,
    choice_option(
        "--serve",
        choices=SERVE,
        help="--backend ray: the model in one batching actor (actor), in each worker (worker), or auto "
        "(actor on a GPU cluster, else worker).",
    ),
]
DeviceOpt = Annotated[
    str | None,
    choice_option("--device", choices=DEVICES, strict=False, help="Device (or cuda:N).", default="auto"),
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Sampling seed.")]
ResumeOpt = Annotated[Path | None, typer.Option("--resume", help="Continue an interrupted run directory.")]
NameOpt = Annotated[str, typer.Option("--name", help="Run name (runs/chess-<cmd>/<name>-<time>).")]


def _split(text: str | None, conv):
    if text is None:
        return None
    from lab_shared.errors import LabError

    try:
        return [conv(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError:
        raise LabError(f"bad list {text!r}: use comma-separated values") from None


def start_backend(backend: str, address: str | None, stockfish: str | None, serve: str = "auto"):
    """The games' backend, started, with Stockfish checked where the games will run: Ray missing, an
    unreachable --address or no working Stockfish on a worker is one line before anything is written."""
    from lab_shared.backend import Backend
    from lab_shared.errors import LabError
    from lab_transcendence.arena_tasks import SERVE, check_worker

    if serve not in SERVE:
        raise LabError(f"--serve must be auto, actor or worker, got {serve!r}")
    tasks = Backend(backend, address)
    tasks.start()
    tasks.check(check_worker, stockfish)
    return tasks


def _run_eval(command: str, name: str, resume: Path | None, config, sets, values: dict, backend: str = "local",
              address: str | None = None, serve: str = "auto") -> dict:  # fmt: skip
    from lab_shared.config import load_config
    from lab_shared.rundir import RunDir
    from lab_transcendence.transcend import EvalConfig, run_experiment

    if resume is not None:
        run = RunDir.open(resume)
        cfg = load_config(EvalConfig, run.file("config.json"), sets or ())
        tasks = start_backend(backend, address, cfg.stockfish, serve)
    else:
        from lab_shared.cli_utils import config_from_cli

        cfg = config_from_cli(EvalConfig, config, sets, **values)
        from lab_transcendence.transcend import validate

        validate(cfg)
        tasks = start_backend(backend, address, cfg.stockfish, serve)
        run = RunDir.create(f"chess-{command}", name, cfg)
    res = run_experiment(cfg, run, backend=tasks, serve=serve)
    typer.echo((run.path / "transcendence.md").read_text())
    for line in res["summary"]:
        typer.echo(line)
    typer.echo(f"run: {run.path}")
    if res["games_recorded"] == 0 or all(r["games"] == 0 for r in res["ratings"]):
        from lab_shared.errors import LabError

        raise LabError(f"no game could be played (see {run.path}/games.jsonl)")
    return res


def register(app: typer.Typer) -> None:
    """Add this module's commands to the package's Typer app."""
    from lab_transcendence import cli_positions
    from lab_transcendence.cli_data import data_app

    cli_positions.register(data_app)

    @app.command("eval", cls=config_defaults("lab_transcendence.transcend:EvalConfig", _EVAL_DEFAULTS))
    def eval_cmd(
        model: Annotated[Path | None, typer.Option("--model", help="Exported model folder.")] = None,
        temperature: Annotated[
            float, typer.Option("--temperature", "-t", help="Sampling temperature > 0.")
        ] = 0.001,
        policy: Annotated[
            str,
            choice_option("--policy", choices=POLICIES, help="paper (resample 5x then forfeit) or masked."),
        ] = "paper",
        protocol: Annotated[
            str | None,
            choice_option("--protocol", choices=PROTOCOLS, help="lab, or paper (the paper's exact rules)."),
        ] = None,
        levels: LevelsOpt = None,
        games: GamesOpt = None,
        limit: LimitOpt = None,
        max_moves: MaxMovesOpt = None,
        concurrency: ConcOpt = None,
        engines: EnginesOpt = None,
        anchors: AnchorsOpt = None,
        rating_method: MethodOpt = None,
        stockfish: StockfishOpt = None,
        device: DeviceOpt = None,
        seed: SeedOpt = None,
        resume: ResumeOpt = None,
        name: NameOpt = "eval",
        config: ConfigOpt = None,
        sets: SetOpt = None,
        backend: BackendOpt = "local",
        address: AddressOpt = None,
        serve: ServeOpt = "auto",
    ) -> None:
        """Play one model at one temperature and policy against Stockfish levels and rate it (Glicko-2)."""
        values = dict(
            protocol=protocol,
            models=[str(model)] if model else None,
            temperatures=[temperature],
            policies=[policy],
            levels=_split(levels, int),
            games=games,
            limit=limit,
            max_moves=max_moves,
            concurrency=concurrency,
            engines=engines,
            anchors=anchors,
            rating_method=rating_method,
            stockfish=stockfish,
            device=device,
            seed=seed,
            experts=False,
        )
        _run_eval("eval", name, resume, config, sets, values, backend, address, serve)

    @app.command(
        "transcend", cls=config_defaults("lab_transcendence.transcend:EvalConfig", _TRANSCEND_DEFAULTS)
    )
    def transcend_cmd(
        model: Annotated[
            list[Path] | None, typer.Option("--model", help="Model folder (repeatable).")
        ] = None,
        temperatures: Annotated[
            str | None, typer.Option("--temperatures", help="e.g. 0.001,0.01,0.1,0.3,0.5,0.75,1,1.5 (paper).")
        ] = None,
        policies: Annotated[
            str | None,
            choice_option("--policies", choices=POLICIES, separator=",", help="Legal-move policies."),
        ] = None,
        experts: Annotated[
            bool, typer.Option("--experts/--no-experts", help="Rate the data's synthetic experts too.")
        ] = True,
        expert_games: Annotated[
            int | None, typer.Option("--expert-games", help="Games per expert and level.")
        ] = None,
        protocol: Annotated[
            str | None,
            choice_option("--protocol", choices=PROTOCOLS, help="lab, or paper (the paper's exact rules)."),
        ] = None,
        design: Annotated[
            str | None,
            choice_option(
                "--design",
                choices=DESIGNS,
                help="anchors (vs Stockfish levels) or pool (experts' pool, selection + confirmation).",
            ),
        ] = None,
        selection_games: Annotated[
            int | None, typer.Option("--selection-games", help="pool: games a pair, selection set.")
        ] = None,
        confirm_games: Annotated[
            int | None,
            typer.Option("--confirm-games", help="pool: games a pair, confirmation set (fresh seeds)."),
        ] = None,
        h2h_games: Annotated[
            int | None, typer.Option("--h2h-games", help="pool: confirmation games vs the best expert.")
        ] = None,
        positions: Annotated[
            int | None,
            typer.Option("--positions", help="pool: held-out positions for the per-position measure."),
        ] = None,
        position_depth: Annotated[
            int | None, typer.Option("--position-depth", help="Stockfish depth of the per-position measure.")
        ] = None,
        levels: LevelsOpt = None,
        games: GamesOpt = None,
        limit: LimitOpt = None,
        max_moves: MaxMovesOpt = None,
        concurrency: ConcOpt = None,
        engines: EnginesOpt = None,
        anchors: AnchorsOpt = None,
        rating_method: MethodOpt = None,
        stockfish: StockfishOpt = None,
        device: DeviceOpt = None,
        seed: SeedOpt = None,
        resume: ResumeOpt = None,
        name: NameOpt = "transcend",
        config: ConfigOpt = None,
        sets: SetOpt = None,
        backend: BackendOpt = "local",
        address: AddressOpt = None,
        serve: ServeOpt = "auto",
    ) -> None:
        """Rate models at every temperature and policy; compare with the best expert / data max (Figure 1)."""
        values = dict(
            models=[str(m) for m in model] if model else None,
            temperatures=_split(temperatures, float),
            policies=_split(policies, str),
            experts=experts,
            expert_games=expert_games,
            protocol=protocol,
            design=design,
            selection_games=selection_games,
            confirm_games=confirm_games,
            h2h_games=h2h_games,
            positions=positions,
            position_depth=position_depth,
            levels=_split(levels, int),
            games=games,
            limit=limit,
            max_moves=max_moves,
            concurrency=concurrency,
            engines=engines,
            anchors=anchors,
            rating_method=rating_method,
            stockfish=stockfish,
            device=device,
            seed=seed,
        )
        _run_eval("transcend", name, resume, config, sets, values, backend, address, serve)

    @app.command("calibrate")
    def calibrate_cmd(
        levels: Annotated[str, typer.Option("--levels", help="Skill Levels to measure.")] = "1,2,3,4,5",
        games: Annotated[int, typer.Option("--games", help="Games per pair of levels.")] = 20,
        limit: Annotated[str, typer.Option("--limit", help="Engine move limit (as in eval).")] = "time:0.1",
        pin: Annotated[
            str, typer.Option("--pin", help="LEVEL=RATING fixing the scale, e.g. 1=1554.")
        ] = "1=1554",
        engines: Annotated[int, typer.Option("--engines", help="Stockfish processes.")] = 2,
        concurrency: Annotated[int, typer.Option("--concurrency", help="Games at once.")] = 8,
        max_moves: Annotated[int, typer.Option("--max-moves", help="Draw after this many full moves.")] = 89,
        stockfish: StockfishOpt = None,
        out: Annotated[Path | None, typer.Option("--out", help="Also write the anchors JSON here.")] = None,
        name: NameOpt = "calibrate",
        backend: BackendOpt = "local",
        address: AddressOpt = None,
    ) -> None:
        """Re-measure the Stockfish anchor ratings on this machine by a round robin between levels."""
        from lab_shared.errors import LabError
        from lab_shared.io import atomic_write_json
        from lab_shared.report import markdown_table
        from lab_shared.rundir import RunDir
        from lab_transcendence.rating import PAPER_ANCHORS, calibrate, parse_levels

        lv = parse_levels(levels)
        try:
            pin_level, pin_rating = pin.split("=")
            pin_level, pin_rating = int(pin_level), float(pin_rating)
        except ValueError:
            raise LabError(f"bad --pin {pin!r}: use LEVEL=RATING, e.g. 1=1554") from None
        if pin_level not in lv or len(lv) < 2:
            raise LabError("--levels needs at least two levels including the pinned one")
        cfg = dict(
            levels=lv,
            games=games,
            limit=limit,
            pin=[pin_level, pin_rating],
            engines=engines,
            concurrency=concurrency,
            max_moves=max_moves,
        )
        from lab_transcendence.engines import parse_limit

        parse_limit(limit)
        tasks = start_backend(backend, address, stockfish)
        run = RunDir.create("chess-calibrate", name, cfg)
        res = calibrate(run, lv, games, limit, pin_level, pin_rating, engines, concurrency, max_moves, stockfish,
                        backend=tasks)  # fmt: skip
        rows = [
            {"level": k, "rating": v["rating"], "se": v["rd"], "paper": PAPER_ANCHORS.get(k, "")}
            for k, v in ((int(k), v) for k, v in res["anchors"].items())
        ]
        typer.echo(markdown_table(rows, floatfmt=".0f"))
        if out is not None:
            atomic_write_json(out, {"anchors": res["anchors"], "limit": limit, "pin": pin})
        typer.echo(f"anchors: {run.file('anchors.json')}")

    analyze = typer.Typer(
        help="The paper's analyses: dataset diversity and reward of low temperature.", no_args_is_help=True
    )
    app.add_typer(analyze, name="analyze")

    @analyze.command("diversity")
    def diversity_cmd(
        corpus: Annotated[list[Path], typer.Argument(help="PGN file(s) or folders, one per corpus.")],
        plies: Annotated[int, typer.Option("--plies", help="Positions within the first N plies.")] = 16,
        min_count: Annotated[
            int, typer.Option("--min-count", help="Positions seen more than N times.")
        ] = 100,
        max_games: Annotated[
            int | None, typer.Option("--max-games", help="Read at most N games per corpus.")
        ] = None,
        name: NameOpt = "diversity",
    ) -> None:
        """Normalised entropy of the move distribution in frequent early positions, per corpus."""
        from lab_transcendence.analyze import run_diversity

        typer.echo(run_diversity(corpus, plies, min_count, max_games, name))

    @analyze.command("rewards")
    def rewards_cmd(
        run_dir: Annotated[Path, typer.Option("--run", help="An eval/transcend run directory.")],
        model: Annotated[Path, typer.Option("--model", help="The model folder that played those games.")],
        player: Annotated[
            str | None,
            typer.Option("--player", help="Player name in the games (default: first model player)."),
        ] = None,
        temperatures: Annotated[
            str, typer.Option("--temperatures", help="Temperatures to compare.")
        ] = "0.001,0.1,0.5,1",
        depth: Annotated[int, typer.Option("--depth", help="Stockfish depth for move values.")] = 8,
        max_positions: Annotated[int, typer.Option("--max-positions", help="Positions to analyse.")] = 200,
        stockfish: StockfishOpt = None,
        device: DeviceOpt = None,
        name: NameOpt = "rewards",
    ) -> None:
        """Replay the model's games; expected reward per temperature and where low temperature gains."""
        from lab_transcendence.analyze import run_rewards

        typer.echo(
            run_rewards(
                run_dir,
                model,
                player,
                _split(temperatures, float),
                depth,
                max_positions,
                stockfish,
                device or "auto",
                name,
            )
        )

    @app.command("uci")
    def uci_cmd(
        model: Annotated[Path, typer.Option("--model", help="Exported model folder.")],
        temperature: Annotated[
            float, typer.Option("--temperature", help="Sampling temperature > 0.")
        ] = 0.001,
        policy: Annotated[
            str, choice_option("--policy", choices=POLICIES, help="masked or paper.")
        ] = "masked",
        seed: Annotated[int, typer.Option("--seed")] = 0,
        device: Annotated[
            str, choice_option("--device", choices=DEVICES, strict=False, help="Device (or cuda:N).")
        ] = "cpu",
    ) -> None:
        """Serve the model as a UCI engine on stdin/stdout (for GUIs, cutechess-cli, lichess-bot)."""
        from lab_shared.device import choose_device
        from lab_shared.errors import LabError
        from lab_transcendence.loading import load_any
        from lab_transcendence.uci import UciEngine, serve

        if not temperature > 0:
            raise LabError(f"temperature must be > 0, got {temperature}")
        if policy not in ("masked", "paper"):
            raise LabError(f"unknown policy {policy!r} (choose masked or paper)")
        if not model.exists():
            raise LabError(f"model folder not found: {model}")
        kind, m, tok, _meta = load_any(model, choose_device(device))
        if kind == "position" and policy == "paper":
            raise LabError(f"{model} is a position model: it has no paper policy; use --policy masked")
        serve(UciEngine(m, tok, temperature, policy, seed))
