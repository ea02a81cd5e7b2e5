"""A throw-away copy of this repository, wired to tiny fixture data served over HTTP.

Pipeline tests run the real thing in it (`dvc repro`, `python -m pipeline ...`) as
subprocesses, with the MLflow store inside the copy.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline.core.outputs import sha256_file
from tests.fixtures import make_gutenberg_text, make_imdb_archive

ROOT = Path(__file__).resolve().parents[1]
N_PER_CLASS = 60
N_UNLABELLED = 40  # reviews in the fixture archive's train/unsup
# Every stage of the pipeline: a first `dvc repro` must run each of them.
ALL_STAGES = set(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])

# Small enough that a full `dvc repro` takes well under a minute on 2 cores.
TINY_PARAMS = {
    "imdb": {"expected_per_class": N_PER_CLASS, "expected_unlabelled": N_UNLABELLED, "val_size": 30},
    "sentiment": {"epochs": 2, "batch_size": 16, "embed_dim": 16, "hidden_size": 16,
                  "fc_size": 16, "pretrained": "embeddings"},
    "pretrain": {"embedding_window": 2},
    "charlm": {"steps": 40, "eval_every": 20, "embed_dim": 16, "hidden_size": 32,
               "batch_size": 16},
    "samples": {"length": 40},
}


def env() -> dict:
    """The test's environment: this venv first on PATH, no user tracking server."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e.get('PATH', '')}"
    e["NO_PROXY"] = e["no_proxy"] = "127.0.0.1,localhost"
    e["PYTHONUNBUFFERED"] = "1"
    return e


def run(args: list[str], cwd: Path, check: bool = True, extra_env: dict | None = None,
        timeout: float = 600, input: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env={**env(), **(extra_env or {})}, text=True,
                          capture_output=True, timeout=timeout,
                          input=input if input is not None else "")
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def serve_fixtures(server, workdir: Path) -> dict:
    """Generate the fixture archive and book, serve them; return the URL params."""
    archive = make_imdb_archive(workdir / "aclImdb_v1.tar.gz", n_per_class=N_PER_CLASS,
                                n_unlabelled=N_UNLABELLED)
    book = make_gutenberg_text(workdir / "pg1268.txt", n_chars=20000)
    return {"imdb": {"url": server.add("/imdb/aclImdb_v1.tar.gz", archive.read_bytes()),
                     "sha256": sha256_file(archive)},
            "gutenberg": {"url": server.add("/books/pg1268.txt", book.read_bytes())}}


def make_repo(dest: Path, overrides: dict) -> Path:
    """Copy the project (code, dvc.yaml, params.yaml) into `dest` as a fresh git + DVC
    repo with `overrides` merged into params.yaml, committed."""
    dest.mkdir(parents=True)
    for folder in ("pipeline", "recipes"):
        shutil.copytree(ROOT / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml", ".gitignore"):
        shutil.copy(ROOT / name, dest / name)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    for section, values in {**TINY_PARAMS}.items():
        params[section].update(values)
    for section, values in overrides.items():
        if isinstance(values, dict):
            params[section].update(values)
        else:
            params[section] = values
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], dest)
    run(["git", "config", "user.email", "test@example.com"], dest)
    run(["git", "config", "user.name", "test"], dest)
    run(["dvc", "init", "-q"], dest)
    shutil.copy(ROOT / ".dvcignore", dest / ".dvcignore")  # bytecode is no dependency
    run(["dvc", "config", "core.analytics", "false"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "fixture repo"], dest)
    return dest


def stages_run(output: str) -> list[str]:
    """Names of the stages a `dvc repro` / `dvc exp run` output says it ran."""
    return [line.split("'")[1] for line in output.splitlines()
            if line.startswith("Running stage '")]
