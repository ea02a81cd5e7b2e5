"""Per-seed results of the sentiment models at the default params: reads the metrics of
git revisions or DVC experiments and records them in metrics/seeds.json, which the
README's results table shows (`python -m pipeline report --readme README.md`).

A run counts only if its params.yaml is HEAD's apart from the seed and the archive's
digest: anything else is not the default recipe, and the script refuses it.

    python benchmarks/seed_results.py full HEAD val1000-seed2 val1000-seed3
    python benchmarks/seed_results.py labelled-only val1000-labelled-seed1

The first argument names the archive the runs read (the official one with its 50,000
unlabelled reviews: `full`; without `train/unsup/`: `labelled-only`). Entries are kept
by (archive, seed), so recording a seed again replaces only that entry.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil as bu  # noqa: E402

from pipeline.core.config import flatten  # noqa: E402

SEEDS = bu.REPO / "metrics" / "seeds.json"
# What may differ from HEAD's params.yaml for a run to count as the default recipe.
FREE_KEYS = {"seed", "imdb.sha256"}


def differing_params(base: dict, run: dict) -> list[str]:
    """Keys whose values differ between two params.yaml trees, but for FREE_KEYS."""
    a, b = flatten(base), flatten(run)
    return sorted(k for k in set(a) | set(b) if k not in FREE_KEYS and a.get(k) != b.get(k))


def revision(name: str) -> str:
    """A git revision, or the ref of the DVC experiment of that name."""
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"],
                          cwd=bu.REPO, text=True, capture_output=True, check=True).stdout.split()
    matches = [ref for ref in refs if ref.rsplit("/", 1)[-1] == name]
    return matches[0] if len(matches) == 1 else name


def read_at(rev: str, path: str) -> str:
    result = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=bu.REPO, text=True,
                            capture_output=True)
    if result.returncode != 0:
        sys.exit(f"{rev}: no {path} ({result.stderr.strip()})")
    return result.stdout


def entry(name: str, archive: str, head_params: dict) -> dict:
    rev = revision(name)
    params = yaml.safe_load(read_at(rev, "params.yaml"))
    if differing := differing_params(head_params, params):
        sys.exit(f"{name}: not the default recipe; params differ from HEAD in {differing}")
    lstm = json.loads(read_at(rev, "metrics/sentiment.json"))
    tfidf = json.loads(read_at(rev, "metrics/baseline.json"))
    commit = subprocess.run(["git", "rev-parse", "--short", rev], cwd=bu.REPO, text=True,
                            capture_output=True, check=True).stdout.strip()
    return {"archive": archive, "seed": params["seed"], "run": name, "commit": commit,
            "lstm_test_accuracy": lstm["test_accuracy"], "lstm_val_accuracy": lstm["val_accuracy"],
            "tfidf_test_accuracy": tfidf["test_accuracy"],
            "tfidf_val_accuracy": tfidf["val_accuracy"]}


def record(entries: list[dict], path: Path = SEEDS) -> list[dict]:
    """Merge `entries` into the record file, keyed by (archive, seed); return them all."""
    runs = json.loads(path.read_text())["runs"] if path.exists() else []
    new = {(e["archive"], e["seed"]): e for e in entries}
    runs = [r for r in runs if (r["archive"], r["seed"]) not in new] + list(new.values())
    runs.sort(key=lambda r: (r["archive"], r["seed"]))
    path.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    return runs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("archive", help="which archive the runs read, e.g. full or labelled-only")
    p.add_argument("runs", nargs="+", help="git revisions or DVC experiment names")
    args = p.parse_args(argv)
    head_params = yaml.safe_load(read_at("HEAD", "params.yaml"))
    runs = record([entry(name, args.archive, head_params) for name in args.runs])
    for r in runs:
        print(f"{r['archive']:>14}  seed {r['seed']}  LSTM {r['lstm_test_accuracy']:.4f}  "
              f"TF-IDF {r['tfidf_test_accuracy']:.4f}  ({r['run']}, {r['commit']})")
    print(f"recorded in {SEEDS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
