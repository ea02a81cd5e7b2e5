"""Where the raw data is fetched from: the official URL in params.yaml, and mirrors.

A data set's identity is its content (the digest pinned in params.yaml, and the hash DVC
computes of what the acquire stage writes); a URL is only where to get it. So mirrors are
machine-local configuration, never a stage dependency: a git-ignored YAML file at the
repository root, in the spirit of DVC's `.dvc/config.local`:

    # mirrors.local.yaml
    order: mirrors_first          # or official_first (the default)
    imdb:
      - url: file:///data/aclImdb_v1.tar.gz     # file://, a plain path, http(s)://
        sha256: 0123...                         # this file's own digest (null: any)
    gutenberg:
      - url: http://mirror.example/pg1268.txt

`PIPELINE_MIRRORS=/some/file.yaml` names another file. Which source answered, when, and
what it held is written to data/provenance/<name>.json (hashed by no stage) and logged
with every MLflow run on the data.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..core.errors import ConfigError, DownloadError
from ..core.inputs import read_text
from ..core.outputs import DOWNLOADS, PROVENANCE, repo_root, write_json
from .download import download_path, fetch

MIRRORS_FILE = "mirrors.local.yaml"
MIRRORS_ENV = "PIPELINE_MIRRORS"
ORDERS = ("official_first", "mirrors_first")
DATASETS = ("imdb", "gutenberg")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    url: str
    sha256: str | None


README_SECTION = "README, 'Local copies of the data'"


def mirrors_file() -> Path:
    """The mirrors file in use. One that PIPELINE_MIRRORS names must exist: a typo there
    would otherwise fall back to the official sources without a word."""
    named = os.environ.get(MIRRORS_ENV)
    if named:
        if not Path(named).is_file():
            raise ConfigError(f"{MIRRORS_ENV}={named}: no such file; create it ({README_SECTION}) "
                              f"or unset {MIRRORS_ENV} to use {MIRRORS_FILE}")
        return Path(named)
    # The repository's own file, also when DVC runs the stage in a temporary copy that
    # git-ignored files are not copied into.
    return repo_root() / MIRRORS_FILE


def _entry(value, where: str) -> Source:
    if isinstance(value, str):
        return Source(value, None)
    if not isinstance(value, dict) or not isinstance(value.get("url"), str) or (
            set(value) - {"url", "sha256"}):
        raise ConfigError(f"{where} must be a URL or a mapping with 'url' (and optionally "
                          f"'sha256'), got {value!r}")
    return Source(value["url"], value.get("sha256"))


def load_mirrors(path: Path) -> tuple[str, dict[str, list[Source]]]:
    """(order, mirrors per data set) from a mirrors file; none if it does not exist."""
    if not path.is_file():
        return "official_first", {}
    text = read_text(path, "a mirrors file (YAML)", f"fix it ({README_SECTION})") \
        if path.stat().st_size else ""
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}: "
                          f"{getattr(exc, 'problem', None) or str(exc).splitlines()[0]}; fix "
                          f"it ({README_SECTION})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping of data set names to mirror lists")
    unknown = set(raw) - {"order", *DATASETS}
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                          f"expected order, {', '.join(DATASETS)}")
    order = raw.get("order", "official_first")
    if order not in ORDERS:
        raise ConfigError(f"{path}: order must be one of {', '.join(ORDERS)}, got {order!r}")
    mirrors = {}
    for name in DATASETS:
        entries = raw.get(name) or []
        if not isinstance(entries, list):
            raise ConfigError(f"{path}: {name} must be a list of mirrors, got {entries!r}")
        mirrors[name] = [_entry(e, f"{path}: {name}[{i}]") for i, e in enumerate(entries)]
    return order, mirrors


def sources(name: str, official: Source, path: Path | None = None) -> list[Source]:
    """The official source and the machine's mirrors, in the order to try them."""
    order, mirrors = load_mirrors(path or mirrors_file())
    extra = mirrors.get(name, [])
    return [*extra, official] if order == "mirrors_first" else [official, *extra]


def fetch_first(name: str, official: Source) -> tuple[Path, dict]:
    """Fetch data set `name` from the first source that answers with the right digest;
    return the local file and its provenance (also written to data/provenance/)."""
    failures = []
    for source in sources(name, official):
        dest = download_path(source.url, DOWNLOADS)
        try:
            fetched = fetch(source.url, dest, source.sha256)
        except DownloadError as exc:
            failures.append(f"{source.url}: {exc}")
            log.warning("%s: %s failed (%s); trying the next source", name, source.url, exc)
            continue
        provenance = {**fetched, "dataset": name, "official_url": official.url,
                      "failed_before": failures}
        write_json(PROVENANCE / f"{name}.json", provenance)
        return dest, provenance
    raise DownloadError(
        f"no source of {name} could be fetched: {' | '.join(failures)}. Offline? List a local "
        f"copy in {mirrors_file().name} ({README_SECTION}).")
