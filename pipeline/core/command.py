"""How a stage runs as a command: `python -m pipeline.stages.<stage>` (what dvc.yaml
calls) and `python -m pipeline <stage-name>` (the same function, for people).

A stage module defines one function `<stage>(params) -> dict` and ends with
`main = stage_command(<stage>)`; failures the user can fix become one `Error:` line.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Callable

import click

from . import logs
from .config import load_params
from .errors import PipelineError

log = logging.getLogger(__name__)

PARAMS_OPTION = click.option("--params", "params_path", default="params.yaml", show_default=True,
                             type=click.Path(dir_okay=False, path_type=Path),
                             help="the params file to read")


def load_params_or_exit(path: Path):
    try:
        return load_params(path)
    except PipelineError as exc:
        raise click.ClickException(str(exc)) from exc


def run_stage(stage_fn: Callable, params_path: Path) -> None:
    """Run a stage; known failures become one clear line instead of a traceback."""
    params = load_params_or_exit(params_path)
    try:
        stage_fn(params)
    except (PipelineError, FileNotFoundError) as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        # The tracking store failing after training: the outputs are already on disk.
        if type(exc).__module__.startswith(("mlflow", "requests")):
            raise click.ClickException(
                f"MLflow tracking failed: {type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:300]}. Outputs "
                "written so far are kept; fix the store and re-run (training resumes from "
                "its checkpoint).") from exc
        raise


def relaunch_distributed(module: str, params_path: Path) -> None:
    """With train.nproc > 1, re-run this stage under torchrun on this machine, so
    `dvc repro` trains with DDP. (Several machines: start torchrun yourself.)"""
    nproc = load_params_or_exit(params_path).train.nproc
    if nproc <= 1 or "WORLD_SIZE" in os.environ:
        return
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc}", "-m", module, "--params", str(params_path)]
    log.info("launching %d processes: %s", nproc, " ".join(argv[1:]))
    sys.stdout.flush()
    os.execv(sys.executable, argv)


def stage_command(stage_fn: Callable, distributed: bool = False) -> click.Command:
    """A click command running `stage_fn`; its help is the function's docstring."""
    module = stage_fn.__module__

    @click.command(stage_fn.__name__.replace("_", "-"), help=stage_fn.__doc__)
    @PARAMS_OPTION
    def command(params_path: Path) -> None:
        try:
            logs.setup()  # before relaunch_distributed: its one line is a log line
        except PipelineError as exc:
            raise click.ClickException(str(exc)) from exc
        if distributed:
            relaunch_distributed(module, params_path)
        with logs.stage_log(stage_fn.__name__):
            run_stage(stage_fn, params_path)
    return command
