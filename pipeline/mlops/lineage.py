"""What made a run, as tags on it: the commit (and whether the code differs from it), the
DVC stage and experiment, digests of the stage's params and dependencies, the CPU.

From an MLflow run to DVC: `dvc exp show` lists the experiment named in the tag
`dvc_experiment` (with its baseline commit, `dvc_baseline_rev`); from DVC to MLflow: the
UI's search `tags.dvc_experiment = 'NAME'`.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path

import yaml

# Never part of a dependency's identity (.dvcignore says the same to DVC).
_IGNORED_PARTS = ("__pycache__",)
_IGNORED_SUFFIXES = (".pyc",)


def git(*args: str) -> str:
    """git in the stage's working copy: under `dvc exp run --temp/--queue` that is DVC's
    copy (the experiment's code and params on top of its baseline commit)."""
    try:
        return subprocess.run(["git", *args], cwd=Path.cwd(), capture_output=True, text=True,
                              timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def changed_code() -> list[str]:
    """Tracked files that differ from the commit, leaving out what DVC itself writes
    (dvc.lock, metrics/, plots/, the .gitignore files of outputs) and params.yaml: `dvc
    exp run -S` writes its params there, and they are the run's logged params, not code."""
    changed = [line[3:] for line in
               git("status", "--porcelain", "--untracked-files=no").splitlines()]
    return [path for path in changed
            if not path.startswith(("dvc.lock", "metrics/", "plots/", "params.yaml"))
            and Path(path).name != ".gitignore"]


def cpu_name() -> str:
    """The CPU's model name. Float results can differ in the last bits between CPU
    models (the libraries pick kernels by instruction set), so every run records it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _stage_spec(stage: str) -> dict:
    try:
        stages = yaml.safe_load(Path("dvc.yaml").read_text())["stages"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return {}
    return stages.get(stage) or {}


def _param_keys(spec: dict) -> list[tuple[str, str]]:
    """(file, dotted key) for each param the stage lists, as dvc.yaml writes them."""
    keys = []
    for entry in spec.get("params", []):
        if isinstance(entry, dict):
            keys += [(file, key) for file, names in entry.items() for key in names or []]
        else:
            keys.append(("params.yaml", entry))
    return keys


def params_digest(stage: str) -> str:
    """sha256 of the stage's params (the keys dvc.yaml lists, their values now)."""
    values, files = {}, {}
    for file, key in _param_keys(_stage_spec(stage)):
        if file not in files:
            files[file] = yaml.safe_load(Path(file).read_text()) or {}
        value = files[file]
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        values[f"{file}:{key}"] = value
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file()
                  and not any(part in _IGNORED_PARTS for part in p.parts)
                  and p.suffix not in _IGNORED_SUFFIXES)


def deps_digest(stage: str) -> str:
    """sha256 over the md5 of every file the stage depends on (the digests dvc.lock
    records, one line per file): equal digests, equal inputs."""
    lines = []
    for dep in sorted(_stage_spec(stage).get("deps", [])):
        for file in _files(Path(dep)):
            lines.append(f"{file.as_posix()} "
                         f"{hashlib.md5(file.read_bytes()).hexdigest()}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def lineage_tags(stage: str) -> dict[str, str]:
    commit = git("rev-parse", "HEAD").strip() or "unknown"
    dirty = changed_code()
    tags = {"mlflow.source.git.commit": commit, "git_commit": commit,
            "git_dirty": str(bool(dirty)).lower(), "cpu": cpu_name(), "dvc_stage": stage,
            "params_digest": params_digest(stage), "deps_digest": deps_digest(stage)}
    if dirty:
        tags["git_dirty_files"] = " ".join(dirty)[:1000]
    # Set by DVC for `dvc exp run` (in the workspace, --temp or --queue).
    for env, tag in (("DVC_EXP_NAME", "dvc_experiment"),
                     ("DVC_EXP_BASELINE_REV", "dvc_baseline_rev")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    return tags
