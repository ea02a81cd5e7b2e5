"""Prediction: throughput on 1,000 reviews and load-to-first-answer for one review.

  batch:   pipeline.sentiment.predict.predict_texts(1,000 texts, model_dir) in this
           process (model load + tokenise + encode + forward), reviews/s (median of 3
           calls after a warm-up call); the model-load share is timed separately
  one:     predict_texts([one text]) in this process (median), and the wall time of
           `python -m pipeline predict "<review>" --model-dir DIR` as a subprocess
           (median of 3 after a warm-up run): what a user waits for

The model is <data-root>/models/sentiment when `dvc repro` has trained one. Otherwise a
THROWAWAY model is trained here for one epoch on a few reviews and written to a
temporary folder in the same layout (model.pt, model.json, vocab.txt): its predictions
are meaningless, its timings are representative (same sizes and vocabulary size).
Reviews are test reviews from <data-root>/raw/imdb/reviews.parquet, else synthetic.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil as bu  # noqa: E402
import benchdata as bd  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402


IMPORT_PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import pipeline.sentiment.predict
t = time.perf_counter() - t0
print(json.dumps({"seconds": t, "modules": {m: m in sys.modules for m in
                  ("torch", "pandas", "mlflow", "sklearn", "matplotlib")}}))
"""


def review_texts(args, n: int) -> tuple[list[str], str]:
    frame = bd.raw_imdb_reviews(args)
    if frame is not None:
        texts = frame.loc[frame["split"] == "test", "text"].to_numpy()
        pick = np.random.default_rng(args.seed).permutation(len(texts))[:n]
        return [str(texts[i]) for i in pick], f"{n:,} real test reviews"
    ids, lengths, _ = bd.synthetic_encoded(n, args.seed + 1)
    return (bd.synthetic_texts(ids, lengths, bd.synthetic_words(seed=args.seed), args.seed),
            f"{n:,} synthetic reviews (median {np.median(lengths):.0f} tokens)")


def throwaway_model(args, out: Path, n_train: int) -> str:
    """Train SentimentLSTM for one epoch on n_train reviews; write the model folder."""
    import pandas as pd
    from pipeline.core.config import SentimentParams
    from pipeline.sentiment.batches import review_batch
    from pipeline.sentiment.model import build_sentiment
    from pipeline.sentiment.reviews import ReviewSet
    from pipeline.sentiment.text import Vocab
    prepared = bd.prepared_imdb_dir(args)
    if prepared is not None:
        vocab = Vocab.load(prepared / "vocab.txt")
        tokens = np.load(prepared / "tokens.npy", mmap_mode="r")
        table = pd.read_parquet(prepared / "reviews.parquet")
        table = table[table["split"] == "train"]
        pick = np.sort(np.random.default_rng(args.seed).permutation(len(table))[:n_train])
        table = table.iloc[pick].reset_index(drop=True)
        source = f"vocabulary and {len(table):,} reviews of {prepared}"
    else:
        vocab = Vocab(bd.synthetic_words(seed=args.seed))
        tokens, lengths, labels = bd.synthetic_encoded(n_train, args.seed)
        table = bd.synthetic_review_table(lengths, labels, ["train"] * n_train)
        source = f"synthetic vocabulary ({len(vocab):,}) and {n_train:,} synthetic reviews"
    p = SentimentParams()
    torch.manual_seed(args.seed)
    model = build_sentiment(len(vocab), p)
    opt = torch.optim.Adam(model.parameters(), lr=p.lr)
    train = ReviewSet(tokens, table)
    for idx in train.batches(p.batch_size, shuffle=True, seed=args.seed):
        b = review_batch(train, idx)
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.binary_cross_entropy_with_logits(model(b.tokens, b.lengths), b.labels).backward()
        opt.step()
    torch.save(model.state_dict(), out / "model.pt")
    (out / "model.json").write_text(json.dumps({
        "params": p.model_dump(), "best_epoch": 1, "best_step": 0, "epochs_run": 1,
        "stopped_early": False, "best_metrics": {}, "throwaway": True}, indent=2) + "\n")
    vocab.save(out / "vocab.txt")
    return source


def model_under_test(args):
    """(model folder, description, temporary folder to clean up or None): the trained
    model, else a throwaway one trained here for one epoch."""
    model_dir = args.model_dir or bu.data_root(args) / "models" / "sentiment"
    if (model_dir / "model.pt").exists() and not (args.synthetic and args.model_dir is None):
        return model_dir.resolve(), f"trained model {model_dir}", None
    tmp = tempfile.TemporaryDirectory(prefix="bench-throwaway-model-")
    model_dir = Path(tmp.name)
    t0 = time.perf_counter()
    source = throwaway_model(args, model_dir, 200 if args.quick else args.train_reviews)
    model_desc = (f"THROWAWAY model (no trained model found; 1 epoch on {source}, trained in "
                  f"{time.perf_counter() - t0:.1f} s; predictions meaningless, timings representative)")
    return model_dir.resolve(), model_desc, tmp


def time_command(cmd: list[str], repeats: int):
    """(seconds of each of `repeats` runs after a warm-up, the last run's result); stops
    at the first failure."""
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        out = subprocess.run(cmd, cwd=bu.REPO, capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            return times, out
        if i:
            times.append(time.perf_counter() - t0)
    return times, out


def main(argv=None) -> int:
    p = bu.base_parser(__doc__.split("\n")[0])
    p.add_argument("--model-dir", type=Path, default=None,
                   help="a trained model folder (default: <data-root>/models/sentiment)")
    p.add_argument("--reviews", type=int, default=None, help="reviews per batch call [1000; quick 100]")
    p.add_argument("--repeats", type=int, default=None, help="[3; quick 1]")
    p.add_argument("--train-reviews", type=int, default=300,
                   help="reviews the throwaway model is trained on (only without a trained model)")
    args = p.parse_args(argv)
    n = args.reviews or (100 if args.quick else 1000)
    repeats = args.repeats or (1 if args.quick else 3)
    bu.set_threads(args)

    from pipeline.sentiment.predict import load_sentiment_model, predict_texts
    model_dir, model_desc, tmp = model_under_test(args)
    texts, text_desc = review_texts(args, n)
    desc = f"{model_desc}; {text_desc}"
    rec = bu.Recorder("predict", args, desc)
    bu.header("prediction: batch throughput and load-to-first-answer", desc)

    load = bu.time_calls(lambda: load_sentiment_model(model_dir), repeats, warmup=1)
    batch = bu.time_calls(lambda: predict_texts(texts, model_dir), repeats, warmup=1)
    one = bu.time_calls(lambda: predict_texts(texts[:1], model_dir), max(repeats, 3), warmup=1)
    answer = predict_texts(texts[:1], model_dir)[0]

    cmd = [sys.executable, "-m", "pipeline", "predict", texts[0], "--model-dir", str(model_dir)]
    cli, out = time_command(cmd, repeats)
    if out.returncode != 0:
        print(f"`python -m pipeline predict` failed (exit {out.returncode}):\n{out.stderr[-2000:]}")
        return 1

    probe = subprocess.run([sys.executable, "-c", IMPORT_PROBE], cwd=bu.REPO, capture_output=True,
                           text=True, timeout=300)
    imports = json.loads(probe.stdout.strip().splitlines()[-1]) if probe.returncode == 0 else None

    batch_s, load_s = bu.median(batch), bu.median(load)
    rate = n / batch_s
    print(bu.table([
        [f"predict_texts, {n:,} reviews (one call)", f"{batch_s:.3f}", f"{rate:,.0f}"],
        ["  of which load_sentiment_model", f"{load_s:.3f}", ""],
        ["  without the model load", f"{batch_s - load_s:.3f}", f"{n / max(batch_s - load_s, 1e-9):,.0f}"],
        ["predict_texts, 1 review (in process)", f"{bu.median(one):.3f}", ""],
        ["python -m pipeline predict \"...\" (subprocess)", f"{bu.median(cli):.3f}", ""],
    ], ["what", f"median s ({repeats})", "reviews/s"]))
    if imports:
        heavy = ", ".join(m for m in ("torch", "pandas", "mlflow", "sklearn", "matplotlib")
                          if imports["modules"].get(m))
        print(f"`import pipeline.sentiment.predict` in a fresh interpreter: {imports['seconds']:.3f} s "
              f"(pulls in: {heavy or 'none of torch, pandas, mlflow, sklearn, matplotlib'})")
        rec.add("import_predict_s", imports["seconds"], "s", modules=imports["modules"])
    print(f"first review: {answer.label} {answer.probability:.4f} (CLI printed: "
          f"{out.stdout.strip().splitlines()[-1][:60]!r})")
    rec.add("predict_reviews_per_s", rate, "reviews/s", reviews=n, seconds=round(batch_s, 4))
    rec.add("predict_batch_s", batch_s, "s", reviews=n)
    rec.add("load_model_s", load_s, "s")
    rec.add("predict_one_in_process_s", bu.median(one), "s")
    rec.add("predict_one_cli_s", bu.median(cli), "s", samples=[round(x, 4) for x in cli])
    if tmp is not None:
        tmp.cleanup()
    rec.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
