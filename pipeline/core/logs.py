"""How the pipeline logs: one format on stderr, progress bars only on a terminal, and each
stage's log kept as a file for its MLflow runs.

Modules log with `log = logging.getLogger(__name__)`; a stage command calls `stage_log`
around the stage, which calls `setup`. Nothing here imports MLflow: the tracking code
registers `at_stage_end(fn)` to attach the stage's log file to the runs it opened.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Iterator

from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .errors import ConfigError

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATEFMT = "%H:%M:%S"
LEVEL_ENV = "PIPELINE_LOG_LEVEL"
# Libraries that set their own logger's level (MLflow to INFO, when imported) and say a lot
# below WARNING: only their warnings are worth a line in a stage's log.
QUIET = ("mlflow", "alembic", "urllib3", "git", "matplotlib", "PIL", "fsspec", "filelock")
_HANDLER_NAME = "pipeline-stderr"  # how setup() recognises the handler it added

log = logging.getLogger(__name__)
_at_stage_end: list[Callable[[Path], None]] = []


def _formatter() -> logging.Formatter:
    return logging.Formatter(FORMAT, DATEFMT)


def setup(level: str | None = None) -> None:
    """Log the `pipeline` loggers at `level` (else $PIPELINE_LOG_LEVEL, else INFO) and the
    warnings of every library to stderr, one format for all. Safe to call again."""
    name = (level or os.environ.get(LEVEL_ENV) or "INFO").upper()
    if not isinstance(logging.getLevelName(name), int):
        raise ConfigError(f"unknown log level {name!r} (from {LEVEL_ENV} or the caller); "
                          "use DEBUG, INFO, WARNING or ERROR")
    root = logging.getLogger()
    # On the root, not on `pipeline`: library warnings (py.warnings, urllib3, ...) reach it too.
    if not any(h.get_name() == _HANDLER_NAME for h in root.handlers):
        handler = logging.StreamHandler()  # stderr: stdout stays for a command's results
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(_formatter())
        root.addHandler(handler)
    root.setLevel(logging.WARNING)  # what a library's logger inherits unless it sets its own
    for quiet in QUIET:
        logging.getLogger(quiet).setLevel(logging.WARNING)
    # A stage run as `python -m pipeline.stages.X` logs as `__main__`.
    for ours in ("pipeline", "__main__"):
        logging.getLogger(ours).setLevel(name)
    main_logger = logging.getLogger("__main__")
    if not any(isinstance(f, _ModuleName) for f in main_logger.filters):
        main_logger.addFilter(_ModuleName())
    if not sys.stderr.isatty():  # MLflow's own download bars, in queue and CI logs
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Warnings become log lines (in the stage's log file too), and "default" shows each
    # one once per place it is raised from: DeprecationWarnings of libraries included,
    # which Python hides by default. A `-W` option or $PYTHONWARNINGS still decides.
    logging.captureWarnings(True)
    if not sys.warnoptions:
        warnings.simplefilter("default")


class _ModuleName(logging.Filter):
    """Shows a module run with `python -m` under its name (pipeline.stages.X), not as
    `__main__`."""

    def filter(self, record: logging.LogRecord) -> bool:
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        if record.name == "__main__" and spec is not None:
            record.name = spec.name
        return True


def progress(iterable=None, **kwargs) -> tqdm:
    """A tqdm bar drawn only when stderr is a terminal (`disable=None`), so the logs of
    `dvc queue logs` and CI hold no bar frames. Pass `disable=True` to hide it anyway."""
    kwargs.setdefault("disable", None)
    kwargs.setdefault("mininterval", 1)
    return tqdm(iterable, **kwargs)


def at_stage_end(fn: Callable[[Path], None]) -> None:
    """Call `fn(log_file)` when the running stage ends, while its log file still exists."""
    _at_stage_end.append(fn)


@contextlib.contextmanager
def stage_log(stage: str) -> Iterator[Path]:
    """Around a stage: set up logging, copy every log line to a temporary file (yielded),
    and keep bars whole while lines are logged. On the way out, also after a failure, run
    the `at_stage_end` callbacks with the file, then delete it."""
    setup()
    # Named after the stage: the MLflow runs keep it as `logs/<stage>.log`.
    path = Path(tempfile.mkdtemp(prefix="pipeline-log-")) / f"{stage}.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(_formatter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    # Added before the redirect: it restores the root's handlers on exit, this one included.
    root.addHandler(handler)
    try:
        with logging_redirect_tqdm(tqdm_class=tqdm):
            yield path
    finally:
        root.removeHandler(handler)
        handler.close()
        callbacks = list(_at_stage_end)
        _at_stage_end.clear()
        for fn in callbacks:
            try:
                fn(path)
            except Exception as exc:  # the stage's own outcome matters more than its log
                log.warning("after stage %s, %s failed: %s: %s", stage,
                            getattr(fn, "__qualname__", fn), type(exc).__name__, exc)
        shutil.rmtree(path.parent, ignore_errors=True)
