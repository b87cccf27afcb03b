"""`lab sfa run`, `lab sfa sweep`, `lab sfa table`, `lab sfa list`: continual learning on task sequences.

Heavy modules (torch, the runner) are imported inside the commands so `lab --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lab_shared.backend import AddressOpt, BackendOpt
from lab_shared.cli_utils import ConfigOpt, ForceOpt, SetOpt


def register(app: typer.Typer) -> None:
    """Add this module's commands to the package's Typer app."""

    @app.command()
    def run(
        method: Annotated[
            str | None, typer.Option(help="seq|multitask|sfa|replay|l2|ewc|task_arithmetic|ties|wise_ft")
        ] = None,
        sequence: Annotated[
            str | None, typer.Option(help="Registered sequence or a task-sequence .toml file.")
        ] = None,
        beta: Annotated[
            float | None, typer.Option(help="SFA: weight of the old checkpoint, in [0, 1].")
        ] = None,
        p: Annotated[
            float | None, typer.Option(help="SFA: averaging interval as a fraction of a task, (0, 1].")
        ] = None,
        lam: Annotated[float | None, typer.Option(help="L2/EWC strength; TA/TIES scaling.")] = None,
        alpha: Annotated[float | None, typer.Option(help="WiSE-FT: weight of the fine-tuned model.")] = None,
        buffer_size: Annotated[
            float | None, typer.Option(help="Replay: count, or fraction of a task if < 1.")
        ] = None,
        steps: Annotated[int | None, typer.Option(help="Optimizer steps per task (T).")] = None,
        lr: Annotated[float | None, typer.Option(help="Learning rate of the tasks.")] = None,
        model: Annotated[str | None, typer.Option(help="cnn | resnet.")] = None,
        width: Annotated[int | None, typer.Option(help="Model width (channels of the first layer).")] = None,
        head: Annotated[str | None, typer.Option(help="auto | shared | multi.")] = None,
        seed: Annotated[
            int | None, typer.Option(help="Seed of the run (init, pretraining, data order).")
        ] = None,
        curves: Annotated[bool | None, typer.Option(help="Record accuracy curves during training.")] = None,
        name: Annotated[
            str | None, typer.Option(help="Run folder name prefix (default: the method).")
        ] = None,
        config: ConfigOpt = None,
        set_: SetOpt = None,
    ) -> None:
        """Run one method on one task sequence; writes runs/sfa/<name>-<time>/ (R, ACC, BWT, curves, plots)."""
        from lab_sfa.continual import RunConfig, validate_run
        from lab_shared.cli_utils import config_from_cli
        from lab_shared.rundir import RunDir

        cfg = config_from_cli(
            RunConfig,
            config,
            set_,
            **{
                "method.name": method,
                "sequence.name": sequence,
                "method.beta": beta,
                "method.p": p,
                "method.lam": lam,
                "method.alpha": alpha,
                "method.buffer_size": buffer_size,
                "trainer.max_steps": steps,
                "trainer.lr": lr,
                "sequence.model": model,
                "sequence.width": width,
                "sequence.head": head,
                "seed": seed,
                "curves": curves,
            },
        )
        validate_run(cfg)
        check_options(cfg)
        run_dir = RunDir.create("sfa", name or cfg.method.name, cfg)
        results = execute_run(cfg, run_dir)
        typer.echo(
            f"{cfg.method.name} on {results['sequence']}: ACC {results['acc']:.3f}  BWT {results['bwt']:+.3f}  "
            f"forgetting {results['forgetting']:.3f}  plasticity {results['plasticity']:.3f}"
        )
        typer.echo(f"results: {run_dir.path}/index.html")

    @app.command()
    def sweep(
        grid: Annotated[
            Path | None, typer.Argument(help="Sweep file (TOML/JSON): seeds, base, [[grid]].")
        ] = None,
        resume: Annotated[Path | None, typer.Option(help="Continue the sweep in this folder.")] = None,
        only: Annotated[
            str | None, typer.Option(help="Run only these methods' grid points (comma-separated).")
        ] = None,
        name: Annotated[str, typer.Option(help="Sweep folder name prefix.")] = "sweep",
        force: ForceOpt = False,
        set_: SetOpt = None,
        backend: BackendOpt = "local",
        address: AddressOpt = None,
    ) -> None:
        """Run a grid of methods x hyperparameters x seeds (resumable) and write the comparison table."""
        from lab_sfa.sweep import load_spec, resolved_spec, run_sweep
        from lab_shared.backend import Backend
        from lab_shared.errors import LabError
        from lab_shared.io import read_json
        from lab_shared.rundir import RunDir

        tasks = Backend(backend, address)
        tasks.start()  # Ray missing or unreachable: one line before the sweep folder is touched
        if resume is not None:
            run_dir = RunDir.open(resume, lock="shared" if only else True)  # --only: processes may share
            spec = read_json(run_dir.file("sweep.json")) if grid is None else load_spec(grid)
            run_dir.check_resume(resolved_spec(spec, set_ or []), force=force)  # changed spec: needs --force
        elif grid is not None:
            spec = load_spec(grid)
            run_dir = RunDir.create("sfa-sweep", name, config=resolved_spec(spec, set_ or []))
            if only:
                run_dir.share()
        else:
            raise LabError("give a sweep file, or --resume FOLDER")
        summary = run_sweep(spec, run_dir, list(set_ or []), only, tasks)
        _write_sweep_index(run_dir, summary)
        from lab_shared.report import markdown_table

        typer.echo(markdown_table(summary["table"]))
        typer.echo(f"results: {run_dir.path}")

    @app.command()
    def table(folder: Annotated[Path, typer.Argument(help="A sweep folder.")]) -> None:
        """Rebuild a sweep's tables and plots from its finished runs (also works on a partial sweep)."""
        from lab_sfa.sweep import parse_spec, summarize_sweep
        from lab_shared.io import read_json
        from lab_shared.report import markdown_table
        from lab_shared.rundir import RunDir

        run_dir = RunDir.open(folder)
        _, points, seeds, select = parse_spec(read_json(run_dir.file("sweep.json")))
        summary = summarize_sweep(run_dir, points, seeds, select)
        _write_sweep_index(run_dir, summary)
        typer.echo(markdown_table(summary["table"]))

    @app.command("list")
    def list_() -> None:
        """List the registered methods and task sequences."""
        from lab_sfa.methods.base import method_names
        from lab_sfa.sequences import sequence_names

        typer.echo("methods:   " + " ".join(method_names()))
        typer.echo("sequences: " + " ".join(sequence_names()) + "  (or a task-sequence .toml file)")


def check_options(cfg) -> None:
    """What validate_run leaves open, checked before the run folder is made: finite method values, the
    run's counts, and the sequence's sizes and choices (one LabError line each)."""
    import math

    from lab_sfa.sequences import validate_sequence
    from lab_shared.config import config_to_dict
    from lab_shared.errors import LabError

    for key, v in config_to_dict(cfg.method).items():
        if isinstance(v, float) and not math.isfinite(v):
            raise LabError(f"method.{key} must be a finite number, got {v}")
    for key, lo in (("curve_points", 1), ("curve_samples", 0), ("threads", 0), ("seed", 0)):
        if getattr(cfg, key) < lo:
            raise LabError(f"{key} must be >= {lo}, got {getattr(cfg, key)}")
    if not 0 < cfg.pretrain_lr < math.inf:
        raise LabError(f"pretrain_lr must be a finite number > 0, got {cfg.pretrain_lr}")
    validate_sequence(cfg.sequence)


def execute_run(cfg, run_dir) -> dict:
    """Run, then write results.json, the R table, plots and index.html into ``run_dir``."""
    from lab_sfa.continual import run_continual
    from lab_sfa.plots import run_plots
    from lab_shared.report import Section, write_index, write_table

    results = run_continual(cfg, run_dir)
    run_dir.write_results(results)
    rows = [
        {"after task": n, **{m: round(a, 4) for m, a in zip(results["tasks"], r)}}
        for n, r in zip(results["tasks"], results["R"])
    ]
    write_table(rows, run_dir.file("accuracy_matrix"))
    images = run_plots(results, run_dir.plots)
    summary = {
        k: results[k]
        for k in ("acc", "bwt", "forgetting", "plasticity", "max_extra_param_copies", "max_stored_examples")
    }
    write_index(
        run_dir.file("index.html"),
        f"lab sfa run: {cfg.method.name} on {results['sequence']}",
        [Section("Summary", tables=[("", [summary]), ("accuracy matrix R[i][j]", rows)], images=images)],
    )
    return results


def _write_sweep_index(run_dir, summary: dict) -> None:
    from lab_shared.report import Section, write_index

    write_index(
        run_dir.file("index.html"),
        "lab sfa sweep",
        [
            Section(
                "Best grid point per method",
                text=f"selected by mean {summary['select']} over seeds; test metrics mean ± std",
                tables=[("", summary["table"]), ("every grid point", summary["all"])],
                images=[Path(p) for p in summary["plots"]],
            )
        ],
    )
