"""Reading what a stage or command consumes. Whatever is wrong with a file (missing,
empty, truncated, corrupt, not readable, of the wrong kind) becomes one `InputError`
line: the file, what is wrong with it, and the command that makes it right.

The command that makes a file right is the one that writes it: each output directory of
dvc.yaml is mapped to its stage here, so a reader only names the file.
"""
from __future__ import annotations

import contextlib
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any, Iterator

from .errors import PipelineError
from .outputs import (EVAL_CHARLM, EVAL_SENTIMENT, METRICS, MODEL_BASELINE, MODEL_CHARLM,
                      MODEL_PRETRAIN, MODEL_SENTIMENT, PREPARED_GUTENBERG, PREPARED_IMDB,
                      PROVENANCE, RAW_GUTENBERG, RAW_IMDB)

# Which stage writes what: the way out for a broken stage output.
WRITTEN_BY = {
    RAW_IMDB: "acquire_imdb", RAW_GUTENBERG: "acquire_gutenberg",
    PREPARED_IMDB: "prepare_imdb", PREPARED_GUTENBERG: "prepare_gutenberg",
    MODEL_PRETRAIN: "pretrain", MODEL_SENTIMENT: "train_sentiment",
    MODEL_BASELINE: "train_baseline", MODEL_CHARLM: "train_charlm",
    EVAL_SENTIMENT: "evaluate_sentiment", EVAL_CHARLM: "evaluate_charlm",
    METRICS / "baseline.json": "train_baseline", METRICS / "sentiment.json": "evaluate_sentiment",
    METRICS / "charlm.json": "evaluate_charlm",
}

# What a directory holds, told by the files only that kind has (checked in this order).
KINDS = {
    "the sentiment classifier (train_sentiment)": ("model.pt", "vocab.txt"),
    "the char LM (train_charlm)": ("model.pt", "chars.json"),
    "the pretrained encoder (pretrain)": ("encoder.pt",),
    "the TF-IDF baseline (train_baseline)": ("model.pkl",),
    "the prepared reviews (prepare_imdb)": ("tokens.npy",),
    "the prepared book (prepare_gutenberg)": ("train.npy",),
}
SENTIMENT_MODEL, CHARLM_MODEL = list(KINDS)[:2]


class InputError(PipelineError, ValueError):
    """A file the pipeline reads is missing, empty, truncated, corrupt or of another kind."""


class MissingInput(InputError, FileNotFoundError):
    """A file the pipeline reads is not there (also a FileNotFoundError)."""


def way_out(path: Path) -> str:
    """The command that rewrites `path`: the stage that writes it, found by its directory."""
    path = Path(path)
    for out, stage in WRITTEN_BY.items():
        if path == out or out in path.parents:
            return f"run `dvc repro {stage}` (it rewrites {out})"
    return "restore or recreate it"


def bad(path: Path, problem: str, fix: str | None = None,
        error: type[InputError] = InputError) -> InputError:
    return error(f"{path}: {problem}; {fix or way_out(path)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:120]


@contextlib.contextmanager
def reading(path: Path, kind: str, fix: str | None = None) -> Iterator[Path]:
    """Checks `path` is a non-empty readable file, then turns any failure of the read in
    the block into one InputError. The block should do the read and nothing else: every
    error in it is blamed on the file."""
    path = Path(path)
    if not path.exists():
        raise bad(path, "not found", fix, MissingInput)
    if path.is_dir():
        raise bad(path, f"is a directory, expected {kind}", fix)
    if path.stat().st_size == 0:
        raise bad(path, f"is empty, expected {kind}", fix)
    try:
        yield path
    except InputError:
        raise
    except PermissionError as exc:
        raise bad(path, f"not readable ({exc.strerror})",
                  "give the user running the pipeline read access to it") from exc
    except UnicodeDecodeError as exc:
        raise bad(path, f"is not UTF-8 text (byte {exc.start}), expected {kind}", fix) from exc
    except json.JSONDecodeError as exc:
        raise bad(path, f"is not valid JSON ({exc.msg} at line {exc.lineno} column "
                        f"{exc.colno})", fix) from exc
    except pickle.UnpicklingError as exc:
        raise bad(path, "is not tensors and plain values alone (a pickle that could run "
                        "code when loaded, or not a torch.save file); refusing to load it",
                  fix) from exc
    except (OSError, ValueError, RuntimeError, EOFError, KeyError, IndexError, TypeError,
            zipfile.BadZipFile) as exc:
        raise bad(path, f"is truncated or not {kind} ({type(exc).__name__}: "
                        f"{_first_line(exc)})", fix) from exc


def require(path: Path, what: str, stage: str) -> Path:
    """`path`, which stage `stage` writes, exists."""
    if not Path(path).exists():
        raise MissingInput(f"{path}: {what} not found; run `dvc repro {stage}` first")
    return path


def read_json(path: Path, kind: str = "a JSON file", fix: str | None = None) -> Any:
    with reading(path, kind, fix):
        return json.loads(Path(path).read_text(encoding="utf-8"))


def read_provenance(name: str) -> dict:
    """Where data set `name` was fetched from (data/provenance/<name>.json), or {}: outputs
    pulled from a DVC remote come without it."""
    path = PROVENANCE / f"{name}.json"
    return read_json(path, "a provenance record", "delete it; the next acquire rewrites it") \
        if path.is_file() else {}


def read_text(path: Path, kind: str = "a UTF-8 text file", fix: str | None = None) -> str:
    with reading(path, kind, fix):
        return Path(path).read_text(encoding="utf-8")


def read_json_object(path: Path, keys: tuple[str, ...], kind: str,
                     fix: str | None = None) -> dict:
    """A JSON object that must hold `keys` (a metrics file, model.json)."""
    obj = read_json(path, kind, fix)
    if not isinstance(obj, dict):
        raise bad(path, f"holds a JSON {type(obj).__name__}, expected {kind}", fix)
    missing = [k for k in keys if k not in obj]
    if missing:
        raise bad(path, f"lacks {', '.join(missing)}: not {kind}", fix)
    return obj


def load_array(path: Path, kind: str = "a NumPy array file", fix: str | None = None,
               mmap_mode: str | None = None):
    import numpy as np
    with reading(path, kind, fix):
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)


def read_table(path: Path, columns: tuple[str, ...], kind: str = "a Parquet table",
               fix: str | None = None):
    import pandas as pd
    with reading(path, kind, fix):  # pages written with a CRC are checked against it
        table = pd.read_parquet(path, page_checksum_verification=True)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise bad(path, f"lacks column(s) {', '.join(missing)}: not {kind}", fix)
    return table


def model_kind(directory: Path) -> str | None:
    """What a directory of stage outputs holds, or None."""
    for kind, files in KINDS.items():
        if all((Path(directory) / f).is_file() for f in files):
            return kind
    return None


def require_model_dir(model_dir: Path, wanted: str, command: str) -> None:
    """`model_dir` holds the kind of model `command` uses, or one line saying what it
    holds instead, or which of its files is missing."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise bad(model_dir, f"not found, expected {wanted}", error=MissingInput)
    found = model_kind(model_dir)
    if found == wanted:
        return
    if found is not None:
        raise InputError(f"{model_dir}: holds {found}, not {wanted}, which `{command}` "
                         f"uses; give --model-dir the directory of {wanted}")
    missing = next(f for f in KINDS[wanted] if not (model_dir / f).is_file())
    raise bad(model_dir / missing, f"not found, so {model_dir} is not {wanted}",
              error=MissingInput)
