"""Sentiment training epoch: the book's input pipeline against the project's.

Same model size (embedding 20, LSTM 64, FC 64, one logit), batch 32, Adam (lr 1e-3),
gradient clipping at 1.0 in every variant, the same N training reviews:

  (a) book:            each review re-tokenised in the DataLoader's collate function on
                       every batch (pipeline.sentiment.text.tokenize + a vocabulary
                       dict), random batches, padded + pack_padded_sequence, h[-1]
  (b) packed+bucketed: pre-encoded memory-mapped arrays (pipeline.sentiment.reviews),
                       length-bucketed batches, still packed (the book's model)
  (c) gather+random:   pre-encoded arrays, random batches, padded LSTM with the output
                       gathered at the last real token (pipeline.sentiment.model)
  (d) project:         pre-encoded, length-bucketed, padded + gathered (what `dvc repro`
                       trains)
  (e) (d) keeping denormal floats (the project flushes them to zero)
  (f) (a) with denormal floats flushed to zero
  (g) (d) with torch.optim.Adam's default implementation instead of the training
      stages' optimizer (Adam's fused kernel; (c)-(e) use it, the book's model does not)

(a)->(b) is pre-encoding + bucketing, (b)->(d) packing vs gathering, (c)->(d) bucketing,
(e)->(d) and (a)->(f) flushing denormals, (g)->(d) the fused Adam. The pipeline flushes
denormal floats to zero (pipeline.core.runtime.setup_runtime); the book does not. The
flag is per thread and inherited by threads created later, so every variant runs in its
own fresh process, which sets it before its first torch operation. Each variant first
takes --warmup-batches untimed steps (then its weights and optimizer are reset). An
epoch's time is split into "data" (waiting for the next batch) and "model" (forward,
backward, clip, Adam).

The default runs on a slice of the training reviews (--train-reviews 4000) and
extrapolates to 20,000 (time x 20000/N: an epoch's cost is linear in the number of
reviews); --train-reviews 20000 measures the full epoch.

--accuracy also trains (a) and (d) for --accuracy-epochs epochs from the same initial
weights and reports their validation accuracy on the same validation reviews (off by
default: several minutes; `run_all.py --accuracy` passes it on).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil as bu  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from sentiment_epoch_data import BookSentimentRNN, book_collate_fn, load_data  # noqa: E402

FULL_EPOCH = 20_000
VARIANTS = {
    "a": "book: re-tokenise in collate, random, packed",
    "b": "pre-encoded, bucketed, packed",
    "c": "pre-encoded, random, padded + gather",
    "d": "project: pre-encoded, bucketed, padded + gather",
    "e": "(d) keeping denormal floats",
    "f": "(a) with denormals flushed to zero",
    "g": "(d) with torch's default Adam",
}
BOOK_MODEL = {"a", "b", "f"}        # BookSentimentRNN (packed); the rest SentimentLSTM
BOOK_COLLATE = {"a", "f"}           # raw texts re-tokenised in the collate function
BUCKETED = {"b", "d", "e", "g"}     # length-bucketed batches; the others random
FLUSH_DENORMALS = {k: k not in ("a", "e") for k in VARIANTS}  # (a), (e) keep them
# The training stages' optimizer (Adam's fused kernel) goes with the project's model;
# the book's model keeps torch.optim.Adam's default (one pass per operation).
PIPELINE_OPTIMIZER = {"c", "d", "e"}


# ---------------------------------------------------------------- the variants
class Variant:
    def __init__(self, key: str, data: dict, args):
        from pipeline.sentiment.model import SentimentLSTM
        self.key, self.data, self.args = key, data, args
        torch.manual_seed(args.seed)
        if key in BOOK_MODEL:
            self.model = BookSentimentRNN(data["vocab_size"])
        else:
            self.model = SentimentLSTM(data["vocab_size"], 20, 64, fc_size=64)
        self.opt = self.new_optimizer()
        self.train = data["sets"]["train"]
        if key in BOOK_COLLATE:
            self.pairs = list(zip(data["texts"]["train"], self.train.labels.tolist()))
            self.collate = book_collate_fn(data["stoi"])

    def batches(self, epoch: int):
        seed = self.args.seed * 100_003 + epoch
        if self.key in BOOK_COLLATE:
            loader = torch.utils.data.DataLoader(
                self.pairs, batch_size=32, shuffle=True, collate_fn=self.collate,
                generator=torch.Generator().manual_seed(seed))
            yield from loader
            return
        if self.key in BUCKETED:
            order = self.train.batches(32, shuffle=True, seed=seed)
        else:
            perm = np.random.default_rng(seed).permutation(len(self.train))
            order = [perm[i:i + 32] for i in range(0, len(perm), 32)]
        from pipeline.sentiment.batches import review_batch
        for idx in order:
            b = review_batch(self.train, idx)
            yield b.tokens, b.labels, b.lengths

    def warm_up(self, n_batches: int) -> None:
        """A few untimed steps (first-call costs: allocations, kernel selection), then
        back to the initial weights and a fresh optimizer."""
        if n_batches <= 0:
            return
        initial = {k: t.clone() for k, t in self.model.state_dict().items()}
        for i, (tokens, labels, lengths) in enumerate(self.batches(-1)):
            if i == n_batches:
                break
            self.opt.zero_grad(set_to_none=True)
            self.loss(tokens, labels, lengths).backward()
            self.opt.step()
        self.model.load_state_dict(initial)
        self.opt = self.new_optimizer()

    def new_optimizer(self) -> torch.optim.Optimizer:
        if self.key in PIPELINE_OPTIMIZER:
            return bu.pipeline_optimizer(self.model, 1e-3)
        return torch.optim.Adam(self.model.parameters(), lr=1e-3)

    def loss(self, tokens, labels, lengths):
        out = self.model(tokens, lengths)
        if self.key in BOOK_MODEL:
            return F.binary_cross_entropy(out, labels)
        return F.binary_cross_entropy_with_logits(out, labels)

    def epoch(self, epoch: int) -> dict:
        self.model.train()
        data_s, steps, padded, real = 0.0, 0, 0, 0
        t0 = time.perf_counter()
        it = iter(self.batches(epoch))
        while True:
            td = time.perf_counter()
            try:
                tokens, labels, lengths = next(it)
            except StopIteration:
                break
            data_s += time.perf_counter() - td
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss(tokens, labels, lengths)
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.opt.step()
            steps += 1
            padded += tokens.numel()
            real += int(lengths.sum())
        total = time.perf_counter() - t0
        return {"total": total, "data": data_s, "model": total - data_s, "steps": steps,
                "padding": 1 - real / max(padded, 1)}

    @torch.no_grad()
    def accuracy(self) -> float:
        from pipeline.sentiment.predict import predict_reviews
        val = self.data["sets"]["val"]
        self.model.eval()
        if self.key in BOOK_COLLATE:
            pairs = list(zip(self.data["texts"]["val"], val.labels.tolist()))
            collate = book_collate_fn(self.data["stoi"])
            probs = []
            for i in range(0, len(pairs), 256):
                tokens, _, lengths = collate(pairs[i:i + 256])
                probs.append(self.model(tokens, lengths).numpy())
            probs = np.concatenate(probs)
        else:
            probs = predict_reviews(self.model, val, torch.device("cpu"))
        return float(np.mean((probs >= 0.5) == (val.labels == 1)))


# ---------------------------------------------------------------- one process per variant
def _variant(key: str, args, n_train: int, n_val: int) -> Variant:
    torch.set_flush_denormal(FLUSH_DENORMALS[key])  # before the thread pool starts
    bu.set_threads(args)
    return Variant(key, load_data(args, n_train, n_val), args)


def _timed_epochs(key: str, args, n_train: int, n_val: int) -> list[dict]:
    v = _variant(key, args, n_train, n_val)
    v.warm_up(args.warmup_batches)
    return [v.epoch(e) for e in range(args.epochs)]


def _trained_accuracy(key: str, args, n_train: int, n_val: int,
                      epochs: int) -> tuple[list[float], float]:
    v = _variant(key, args, n_train, n_val)
    return [v.epoch(e)["total"] for e in range(epochs)], v.accuracy()


def main(argv=None) -> int:
    p = bu.base_parser(__doc__.split("\n")[0])
    p.add_argument("--train-reviews", type=int, default=None,
                   help="training reviews per epoch [4000; quick 200]; 20000 = a full epoch")
    p.add_argument("--val-reviews", type=int, default=None,
                   help="validation reviews for --accuracy [2000; quick 200]")
    p.add_argument("--variants", default="abcdefg", help="which of a-g to run")
    p.add_argument("--epochs", type=int, default=1, help="timed epochs per variant (median)")
    p.add_argument("--warmup-batches", type=int, default=3,
                   help="untimed training steps per variant before its timed epoch")
    p.add_argument("--accuracy", action="store_true",
                   help="also train (a) and (d) for --accuracy-epochs and compare val accuracy")
    p.add_argument("--accuracy-epochs", type=int, default=None, help="[3; quick 1]")
    args = p.parse_args(argv)
    n_train = args.train_reviews or (200 if args.quick else 4000)
    n_val = args.val_reviews or (200 if args.quick else 2000)
    acc_epochs = args.accuracy_epochs or (1 if args.quick else 3)
    threads = bu.set_threads(args)

    t0 = time.perf_counter()
    n_val = n_val if args.accuracy else min(n_val, 64)
    data = load_data(args, n_train, n_val)
    n_train = len(data["sets"]["train"])
    scale = FULL_EPOCH / n_train
    rec = bu.Recorder("sentiment_epoch", args, data["desc"])
    bu.header("sentiment training epoch: book pipeline vs project pipeline", data["desc"],
              f"data loaded in {time.perf_counter() - t0:.1f} s")
    print(f"{n_train:,} training reviews per epoch; times x {scale:.2f} = extrapolated to "
          f"{FULL_EPOCH:,} reviews" + ("" if n_train != FULL_EPOCH else " (measured, not extrapolated)"))

    results = time_variants(args, n_train, n_val, scale, threads, rec)
    compare_variants(results, n_train, scale, rec)
    if args.accuracy:
        compare_accuracy(args, data, n_train, n_val, acc_epochs, rec)
    else:
        print("\n(validation accuracy not measured: add --accuracy)")
    rec.finish()
    return 0


def time_variants(args, n_train: int, n_val: int, scale: float, threads: int, rec) -> dict:
    """Each variant's median timed epoch, each in its own fresh process."""
    results = {}
    for key in args.variants:
        runs = bu.in_fresh_process(_timed_epochs, key, args, n_train, n_val)
        r = min(runs, key=lambda x: x["total"]) if len(runs) == 1 else sorted(
            runs, key=lambda x: x["total"])[len(runs) // 2]
        results[key] = r
        print(f"  ({key}) {VARIANTS[key]}: {r['total']:.1f} s for {r['steps']} batches "
              f"(data {r['data']:.1f} s), padding {r['padding']:.0%}"
              + ("; epochs in order: " + ", ".join(f"{x['total']:.1f}" for x in runs) + " s"
                 if len(runs) > 1 else ""), flush=True)
        common = dict(variant=key, pipeline=VARIANTS[key], train_reviews=n_train,
                      flush_denormals=FLUSH_DENORMALS[key],
                      batches=r["steps"], epochs_timed=args.epochs, threads=threads)
        rec.add(f"epoch_s_{key}", r["total"] * scale, "s", measured_s=round(r["total"], 3),
                epochs_s=[round(x["total"], 3) for x in runs],
                extrapolated=n_train != FULL_EPOCH, data_s=round(r["data"] * scale, 3),
                model_s=round(r["model"] * scale, 3), padding=round(r["padding"], 4), **common)
    return results


def compare_variants(results: dict, n_train: int, scale: float, rec) -> None:
    """The table of epoch times and the speed-up each change is worth."""
    rows = []
    base = results.get("a")
    for key, r in results.items():
        rows.append([f"({key}) {VARIANTS[key]}", f"{r['total']:.1f}", f"{r['total'] * scale:.1f}",
                     f"{r['data'] * scale:.1f}", f"{r['model'] * scale:.1f}", f"{r['padding']:.0%}",
                     f"{base['total'] / r['total']:.2f}x" if base else ""])
    print()
    print(bu.table(rows, ["variant", f"s/epoch ({n_train:,})", f"s/epoch (x{scale:.2f} -> 20k)",
                          "data s", "model s", "padding", "speed vs (a)"]))
    pairs = [("a", "b", "pre-encoding + bucketing"), ("b", "d", "gather instead of packing"),
             ("c", "d", "bucketing (padded + gather)"), ("e", "d", "flushing denormals"),
             ("a", "f", "flushing denormals in the book's pipeline"),
             ("g", "d", "Adam's fused kernel"),
             ("f", "d", "all but flushing denormals (the book flushing too)"),
             ("a", "d", "all together")]
    for x, y, what in pairs:
        if x in results and y in results:
            ratio = results[x]["total"] / results[y]["total"]
            print(f"({x}) -> ({y}), {what}: {ratio:.2f}x faster")
            rec.add(f"speedup_{y}_vs_{x}", ratio, "x", what=what)


def compare_accuracy(args, data: dict, n_train: int, n_val: int, acc_epochs: int, rec) -> None:
    """(a) and (d) trained from the same initial weights: is the fast pipeline as good?"""
    print(f"\naccuracy: (a) and (d) trained {acc_epochs} epochs on the same {n_train:,} "
          f"reviews from the same initial weights; validation on {len(data['sets']['val']):,} "
          "reviews")
    accs = {}
    for key in ("a", "d"):
        times, accs[key] = bu.in_fresh_process(_trained_accuracy, key, args, n_train, n_val,
                                            acc_epochs)
        print(f"  ({key}) {VARIANTS[key]}: val accuracy {accs[key]:.4f} "
              f"(epochs {', '.join(f'{t:.1f}' for t in times)} s)", flush=True)
        rec.add(f"val_accuracy_{key}", accs[key], "fraction", variant=key, epochs=acc_epochs,
                train_reviews=n_train, val_reviews=len(data["sets"]["val"]),
                epoch_s=[round(t, 3) for t in times])
    diff = accs["d"] - accs["a"]
    print(f"(d) - (a) = {diff:+.4f}  target: equal or better "
          f"(within the noise of {len(data['sets']['val']):,} reviews, "
          f"~{1.96 * (0.25 / len(data['sets']['val'])) ** 0.5:.3f} at 95%) -> "
          f"{bu.verdict(diff >= -1.96 * (0.25 / len(data['sets']['val'])) ** 0.5)}")


if __name__ == "__main__":
    sys.exit(main())
