"""How much of a long review the trained classifier should read when it scores.

Scores one trained sentiment model on the validation and test reviews with long reviews
cut to their first H and last T tokens, for several (H, T), and whole. Training cuts
reviews to save time (`sentiment.head_tokens`, `tail_tokens`); this measures what the
same weights do with more of the review. Needs the real prepared data and a trained
model (a few minutes per cut on 2 CPU cores); it prints accuracies, not timings.

    python benchmarks/review_cut.py                       # data/models/sentiment
    python benchmarks/review_cut.py --model-dir DIR --prepared DIR --cuts 100/300,whole
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil as bu  # noqa: E402

import torch  # noqa: E402


def parse_cut(text: str) -> tuple[int | None, int | None]:
    if text == "whole":
        return None, None
    head, tail = text.split("/")
    return int(head), int(tail)


def main() -> None:
    from pipeline.data import load_reviews
    from pipeline.evaluation import classification_metrics, predict_reviews
    from pipeline.inference import load_sentiment_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=bu.REPO / "data/models/sentiment")
    parser.add_argument("--prepared", type=Path, default=bu.REPO / "data/prepared/imdb",
                        help="the prepared reviews the model was trained on (same seed)")
    parser.add_argument("--cuts", default="100/300,150/450,200/600,whole",
                        help="comma-separated HEAD/TAIL pairs, or 'whole'")
    args = parser.parse_args()
    model, _, p, info = load_sentiment_model(args.model_dir)
    bu.header("accuracy by how much of a long review is read", str(args.prepared),
              f"model trained on {p.head_tokens}/{p.tail_tokens}, best epoch "
              f"{info['best_round']}")
    rows = []
    for cut in args.cuts.split(","):
        splits = load_reviews(args.prepared, *parse_cut(cut))
        row = [cut]
        for split in ("val", "test"):
            start = time.perf_counter()
            probs = predict_reviews(model, splits[split], torch.device("cpu"))
            accuracy = classification_metrics(splits[split].labels, probs)["accuracy"]
            row += [f"{accuracy:.4f}", f"{time.perf_counter() - start:.0f}"]
        rows.append(row)
        print(f"{cut}: validation {row[1]}, test {row[3]}", flush=True)
    print(bu.table(rows, ["head/tail", "val accuracy", "val s", "test accuracy", "test s"]))


if __name__ == "__main__":
    main()
