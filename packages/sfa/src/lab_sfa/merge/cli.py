"""`lab sfa merge`: Task Arithmetic, TIES and WiSE-FT over saved checkpoints, written as a loadable model.

    lab sfa merge ties --base PRE --models A B C --k 0.2 --lambda 1.0 --out merged/
    lab sfa merge task_arithmetic --base PRE --models A B --lambda 0.5 --out merged/
    lab sfa merge wise_ft --base FT0 --models FT1 --alpha 0.5 --out merged.safetensors

Checkpoints are .safetensors files or model folders (Hugging Face or lab run checkpoints); see
`lab_sfa.merge.checkpoint_io`. The output mirrors the base: a folder (config and tokenizer files copied) or a file.
Safetensors inputs are merged tensor by tensor (`lab_sfa.merge.streaming`), except TIES with global trimming;
`--per-tensor` trims each tensor on its own, as mergekit does.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer


class MergeMethod(StrEnum):
    task_arithmetic = "task_arithmetic"
    ties = "ties"
    wise_ft = "wise_ft"


def register(app: typer.Typer) -> None:
    """Add `merge` to the package's Typer app."""

    @app.command(
        "merge",
        context_settings={"allow_extra_args": True},  # so `--models A B C` works (B C arrive as extra args)
    )
    def merge(
        ctx: typer.Context,
        method: MergeMethod = typer.Argument(..., help="task_arithmetic | ties | wise_ft"),
        base: Path = typer.Option(..., "--base", help="pretrained model (TA/TIES) or theta_0 (WiSE-FT)"),
        models: list[str] = typer.Option(
            ..., "--models", help="fine-tuned checkpoints: --models A B C (or A,B,C); WiSE-FT takes one"
        ),
        out: Path = typer.Option(..., "--out", help="output folder, or a file ending in .safetensors"),
        lam: float = typer.Option(1.0, "--lambda", "--lam", help="task-vector scale (TA, TIES)"),
        k: float = typer.Option(0.2, "--k", help="TIES: fraction of each task vector kept, in (0, 1]"),
        alpha: float = typer.Option(
            0.5, "--alpha", help="WiSE-FT: weight of the fine-tuned model, in [0, 1]"
        ),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing output"),
        per_tensor: bool = typer.Option(
            False,
            "--per-tensor",
            help="TIES: trim each tensor to its top floor(k*n) (mergekit) instead of globally",
        ),
        write_config: Path | None = typer.Option(
            None, "--write-config", help="also write the merge as a mergekit YAML config to this file"
        ),
    ) -> None:
        """Merge checkpoints with Task Arithmetic, TIES or WiSE-FT and write a loadable model."""
        import math

        from lab_sfa.merge.checkpoints import merge_checkpoints
        from lab_shared.errors import LabError

        stray = [a for a in ctx.args if a.startswith("-")]
        if stray:
            raise LabError(f"unknown option {stray[0]!r}")
        if not all(math.isfinite(v) for v in (lam, k, alpha)):
            raise LabError(f"--lambda, --k and --alpha must be finite numbers, got {lam}, {k}, {alpha}")
        paths = [Path(p) for m in [*models, *ctx.args] for p in m.split(",") if p]
        result = merge_checkpoints(
            method.value,
            base,
            paths,
            out,
            lam=lam,
            k=k,
            alpha=alpha,
            overwrite=overwrite,
            per_tensor=per_tensor,
        )
        if write_config is not None:
            from lab_sfa.merge.mergekit import write_config as write_yaml

            write_yaml(write_config, method.value, base, paths, lam, k, alpha)
        typer.echo(f"wrote {result} ({method.value}, {len(paths)} model(s))")

    @app.command("merge-config")
    def merge_config(
        config: Path = typer.Argument(..., help="a mergekit YAML config (ties | task_arithmetic | linear)"),
        out: Path = typer.Option(..., "--out", help="output folder, or a file ending in .safetensors"),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing output"),
    ) -> None:
        """Run a mergekit YAML config with `lab sfa merge` (TIES trimmed per tensor, as mergekit does)."""
        from lab_sfa.merge.checkpoints import merge_checkpoints
        from lab_sfa.merge.mergekit import read_config

        opts = read_config(config)
        result = merge_checkpoints(
            opts.pop("method"), opts.pop("base"), opts.pop("models"), out, overwrite=overwrite, **opts
        )
        typer.echo(f"wrote {result} (from {config})")
