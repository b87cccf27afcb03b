"""`lab sfa run`, `lab sfa sweep`, `lab sfa table`, `lab sfa list`, `lab sfa methods`: continual learning on
task sequences.

Heavy modules (torch, the runner) are imported inside the commands so `lab --help` stays fast; the method
registry (names only) is light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand

from lab_sfa.methods.registry import method_names
from lab_shared.backend import AddressOpt, BackendOpt
from lab_shared.cli_utils import (
    ConfigOpt,
    ForceOpt,
    JsonOpt,
    SetOpt,
    choice_option,
    config_defaults,
    echo_json,
    shown_defaults,
)

# settings a resume may change without --force: they never change the weights
RESUME_ALLOW = ("trainer.ckpt_every", "trainer.keep_checkpoints")


class _RunCommand(TyperCommand):
    """`lab sfa run --help` ends with every method's parameters and defaults, read from the registry only
    when the help is shown (so `lab --help` does not import the methods)."""

    @property  # type: ignore[override]
    def epilog(self) -> str:
        from lab_sfa.methods.registry import describe_method

        head = (
            "Each method's parameters (set with --set method.NAME=VALUE or the typed options; a parameter the "
            "method does not use is refused; also `lab sfa methods`):"
        )
        # "\b" keeps click from rewrapping a paragraph: one per method, lines as printed
        return head + "".join("\n\n\b\n" + describe_method(n) for n in method_names())

    @epilog.setter
    def epilog(self, value: str | None) -> None:  # click sets it in __init__; the property wins
        pass


def _method_param_defaults() -> dict:
    """The methods' declared defaults of the typed method options (read when `run --help` is shown: loading a
    method's class imports torch)."""
    from lab_sfa.methods.registry import method_params

    owners = {"beta": "sfa", "p": "sfa", "lam": "l2", "alpha": "wise_ft", "buffer_size": "replay"}
    return {k: next(p.default for p in method_params(m) if p.name == k) for k, m in owners.items()}


# `lab sfa run` options declared `= None` -> the RunConfig field whose default --help shows
_RUN_DEFAULTS = {
    "method": "method.name",
    "sequence": "sequence.name",
    "steps": "trainer.max_steps",
    "lr": "trainer.lr",
    "model": "sequence.model",
    "width": "sequence.width",
    "head": "sequence.head",
    "seed": "seed",
    "curves": "curves",
}


def register(app: typer.Typer) -> None:
    """Add this module's commands to the package's Typer app."""

    @app.command(
        cls=config_defaults(
            "lab_sfa.run_config:RunConfig",
            _RUN_DEFAULTS,
            base=shown_defaults(_method_param_defaults, base=_RunCommand),
        )
    )
    def run(
        method: Annotated[
            str | None, choice_option(choices=method_names(), help="The method (its parameters: below).")
        ] = None,
        sequence: Annotated[
            str | None, typer.Option(help="Registered sequence or a task-sequence .toml file.")
        ] = None,
        beta: Annotated[
            float | None,
            typer.Option(help="= method.beta (sfa): weight of the old checkpoint."),
        ] = None,
        p: Annotated[
            float | None,
            typer.Option(help="= method.p (sfa): averaging interval, fraction of a task."),
        ] = None,
        lam: Annotated[
            float | None,
            typer.Option(help="= method.lam (l2, ewc: strength; task_arithmetic, ties: scale)."),
        ] = None,
        alpha: Annotated[
            float | None,
            typer.Option(help="= method.alpha (wise_ft): weight of the fine-tuned model."),
        ] = None,
        buffer_size: Annotated[
            float | None,
            typer.Option(help="= method.buffer_size (replay): count, or fraction if < 1."),
        ] = None,
        steps: Annotated[int | None, typer.Option(help="Optimizer steps per task (T).")] = None,
        lr: Annotated[float | None, typer.Option(help="Learning rate of the tasks.")] = None,
        model: Annotated[
            str | None,
            typer.Option(help="Images: cnn | resnet; lm-domains: an LM preset (see lab_sfa.lm.models)."),
        ] = None,
        width: Annotated[int | None, typer.Option(help="Model width (channels of the first layer).")] = None,
        head: Annotated[
            str | None,
            choice_option(
                choices=("auto", "shared", "multi"), help="One shared output head or one per task."
            ),
        ] = None,
        seed: Annotated[
            int | None, typer.Option(help="Seed of the run (init, pretraining, data order).")
        ] = None,
        curves: Annotated[bool | None, typer.Option(help="Record accuracy curves during training.")] = None,
        name: Annotated[
            str | None, typer.Option(help="Run folder name prefix (default: the method).")
        ] = None,
        resume: Annotated[
            Path | None,
            typer.Option(help="Continue this run folder (same options): finished tasks are skipped."),
        ] = None,
        force: ForceOpt = False,
        config: ConfigOpt = None,
        set_: SetOpt = None,
    ) -> None:
        """Run one method on one task sequence; writes runs/sfa/<name>-<time>/ (R, ACC, BWT, curves, plots).

        The state after every task is kept in the run folder: after a kill or a stop signal (SIGINT, SIGTERM,
        SIGUSR1: it stops at the next step and prints the resume command), the same command with --resume
        FOLDER skips the finished tasks and ends bit-identical to an uninterrupted run.
        """
        from lab_sfa.run_config import RunConfig, resolve_run
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
        cfg = resolve_run(cfg)  # every option checked, the method's defaults filled in
        inputs = [cfg.sequence.name] if Path(cfg.sequence.name).is_file() else []
        if resume is not None:
            run_dir = RunDir.open(resume)

            def check() -> None:  # config and inputs vs the record; records the resume (or refuses it)
                run_dir.check_resume(cfg, inputs, force=force, allow=RESUME_ALLOW)

            if _finished(run_dir):
                check()
                results = run_dir.read_results()
                typer.echo(f"run already finished: {run_dir.path}")
            else:  # checked once the task data is known to match: a refused resume changes no file
                results = execute_run(cfg, run_dir, resume=True, force=force, checked=check)
        else:
            run_dir = RunDir.create("sfa", name or cfg.method.name, cfg, inputs=inputs)
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
            str | None,
            choice_option(
                choices=method_names(),
                separator=",",
                help="Run only these methods' grid points (comma-separated).",
            ),
        ] = None,
        name: Annotated[str, typer.Option(help="Sweep folder name prefix.")] = "sweep",
        force: ForceOpt = False,
        set_: SetOpt = None,
        backend: BackendOpt = "local",
        address: AddressOpt = None,
        json_: JsonOpt = False,
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

        if json_:
            echo_json({"folder": run_dir.path, "table": summary["table"]})
            return
        typer.echo(markdown_table(summary["table"]))
        typer.echo(f"results: {run_dir.path}")

    @app.command()
    def table(
        folder: Annotated[Path, typer.Argument(help="A sweep folder.")], json_: JsonOpt = False
    ) -> None:
        """Rebuild a sweep's tables and plots from its finished runs (also works on a partial sweep)."""
        from lab_sfa.sweep import parse_spec, summarize_sweep
        from lab_shared.io import read_json
        from lab_shared.report import markdown_table
        from lab_shared.rundir import RunDir

        run_dir = RunDir.open(folder)
        _, points, seeds, select = parse_spec(read_json(run_dir.file("sweep.json")))
        summary = summarize_sweep(run_dir, points, seeds, select)
        _write_sweep_index(run_dir, summary)
        if json_:
            echo_json({"folder": run_dir.path, "table": summary["table"]})
            return
        typer.echo(markdown_table(summary["table"]))

    @app.command("list")
    def list_() -> None:
        """List the registered methods and task sequences."""
        from lab_sfa.sequences import sequence_names

        typer.echo("methods:   " + " ".join(method_names()))
        typer.echo("sequences: " + " ".join(sequence_names()) + "  (or a task-sequence .toml file)")

    @app.command()
    def methods(
        name: Annotated[str | None, typer.Argument(help="One method (default: all).")] = None,
        json_: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    ) -> None:
        """Each method's parameters: name, type, default, range, description and paper reference."""
        from lab_sfa.methods.registry import describe_methods, method_class, method_params

        names = [name] if name else method_names()
        for n in names:
            method_class(n)  # an unknown name: one line
        if json_:
            import json

            out = {
                n: {
                    "summary": method_class(n).summary,
                    "params": [
                        {
                            "name": p.name,
                            "type": p.type.__name__,
                            "default": p.default,
                            "help": p.help,
                            "ref": p.ref,
                            "range": p.range_text(),
                        }  # fmt: skip
                        for p in method_params(n)
                    ],
                }
                for n in names
            }
            typer.echo(json.dumps(out, indent=2))
            return
        text = describe_methods(names)
        typer.echo(text)


def _finished(run_dir) -> bool:
    """results.json written and no task state left: nothing to continue."""
    return run_dir.file("results.json").is_file() and not list(run_dir.checkpoints.glob("after-*"))


def execute_run(cfg, run_dir, resume: bool = False, force: bool = False, checked=None) -> dict:
    """Run (or continue, with `resume`), then write results.json, the R table, plots and index.html into
    ``run_dir``; the per-task state is removed once they are written."""
    from lab_sfa import run_state
    from lab_sfa.plots import run_plots
    from lab_sfa.task_loop import run_continual
    from lab_shared.report import Section, write_index, write_table

    results = run_continual(cfg, run_dir, resume=resume, force=force, checked=checked)
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
    run_state.clear(run_dir.checkpoints)
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
