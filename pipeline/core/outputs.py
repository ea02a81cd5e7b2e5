"""Paths of every stage output, and the helpers that write outputs safely."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

DATA = Path("data")
# Not DVC outputs: nothing downstream hashes them.
DOWNLOADS = DATA / "downloads"          # verified downloads, kept across runs
CHECKPOINTS = DATA / "checkpoints"      # resumable training state
PROVENANCE = DATA / "provenance"        # which URL answered, when, with what digest
RAW_IMDB = DATA / "raw" / "imdb"
RAW_GUTENBERG = DATA / "raw" / "gutenberg"
PREPARED_IMDB = DATA / "prepared" / "imdb"
PREPARED_GUTENBERG = DATA / "prepared" / "gutenberg"
MODEL_SENTIMENT = DATA / "models" / "sentiment"
MODEL_PRETRAIN = DATA / "models" / "pretrain"
MODEL_BASELINE = DATA / "models" / "baseline"
MODEL_CHARLM = DATA / "models" / "charlm"
EVAL_CHARLM = DATA / "eval" / "charlm"
EVAL_SENTIMENT = DATA / "eval" / "sentiment"
METRICS = Path("metrics")
PLOTS = Path("plots")


def repo_root(start: Path | None = None) -> Path:
    """The repository, also when DVC runs a stage in a temporary copy of it
    (`dvc exp run --temp` / `--queue` work in `<repo>/.dvc/tmp/exps/<tmp>/`)."""
    path = (start or Path.cwd()).resolve()
    parts = path.parts
    for i in range(len(parts) - 2):
        if parts[i:i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return path


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Yield an empty directory beside `final`; it replaces `final` only if the block
    finishes. A failure or kill leaves no half-written `final` for a later stage."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary name beside `path` to write; it becomes `path` only if the block
    finishes. A failure or kill never leaves half a file under the real name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, obj: Any) -> None:
    """Sorted keys and a fixed layout: re-runs write byte-identical files."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                       encoding="utf-8")


def fingerprint(*parts: Any) -> str:
    """A digest of params and data identities: a checkpoint is resumed only by a run
    with the same fingerprint."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks so large archives need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
