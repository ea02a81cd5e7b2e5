"""How long the two training stages must take on this machine at params.yaml's recipes:
their matmul FLOPs over the rate the machine reaches.

FLOPs (multiply-add = 2 FLOPs; backward ~ 2 x forward, so a training token costs 3 x its
forward; evaluation passes cost 1 x):

  LSTM layer forward, per position = 2 * 4H * (E_in + H)    the gate matmuls
  char-LM output layer, per char   = 2 * H * V

  train_sentiment: every padded position of every length-bucketed training batch
                   (the padded LSTM runs over padding too), sentiment.epochs times,
                   plus one validation pass per epoch
  train_charlm:    charlm.steps x batch x seq_len characters, plus one pass over the
                   held-out text every eval_every steps

Two rates: the 2048 x 2048 fp32 matmul (the usual floor), and nn.LSTM forward + backward
at each model's own shapes (what the LSTM kernels reach here). A stage cannot run
faster than FLOPs / rate; the element-wise gate maths, the embeddings, dropout, Adam
and data loading come on top.

    python benchmarks/bench_floor.py
    python benchmarks/bench_floor.py --quick     # checks the script runs
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil as bu  # noqa: E402
import benchdata as bd  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from pipeline.core.config import load_params  # noqa: E402


def lstm_flops_per_position(embed: int, hidden: int, layers: int) -> int:
    total, width = 0, embed
    for _ in range(layers):
        total += 2 * 4 * hidden * (width + hidden)
        width = hidden
    return total


def sentiment_positions(args, sp) -> tuple[int, int, int, str]:
    """(padded training positions per epoch, training reviews, validation positions,
    data description)."""
    from pipeline.sentiment.reviews import ReviewSet
    prepared = bd.prepared_imdb_dir(args)
    if prepared is not None:
        table = pd.read_parquet(prepared / "reviews.parquet")
        desc = f"real: {prepared}"
    else:
        n = 2_000 if args.quick else 25_000
        lengths = bd.synthetic_lengths(n, args.seed)
        table = pd.DataFrame({"split": ["train"] * (n - n // 5) + ["val"] * (n // 5),
                              "n_tokens": lengths, "offset": 0, "label": 0})
        desc = "synthetic review lengths"
    def split(s, *cut):
        return ReviewSet(np.zeros(1, dtype=np.int64),
                         table[table["split"] == s].reset_index(drop=True), *cut)
    train, val = split("train", sp.head_tokens, sp.tail_tokens), split("val")  # val: whole
    padded = sum(len(b) * int(train.lengths[b].max())
                 for b in train.batches(sp.batch_size, shuffle=True, seed=args.seed))
    return padded, len(train), int(val.lengths.sum()), desc


def matmul_gflops(repeats: int) -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    times = bu.time_calls(lambda: a @ b, repeats, warmup=2)
    return 2 * 2048 ** 3 / bu.median(times) / 1e9


def lstm_train_gflops(batch: int, seq_len: int, embed: int, hidden: int, layers: int,
                      repeats: int) -> float:
    """nn.LSTM forward + backward at these shapes, in GFLOP/s of its gate matmuls."""
    lstm = nn.LSTM(embed, hidden, layers, batch_first=True)
    x = torch.randn(batch, seq_len, embed, requires_grad=True)

    def step():
        out, _ = lstm(x)
        out.sum().backward()
    times = bu.time_calls(step, repeats, warmup=1)
    flops = 3 * batch * seq_len * lstm_flops_per_position(embed, hidden, layers)
    return flops / bu.median(times) / 1e9


def main(argv=None) -> int:
    p = bu.base_parser(__doc__.split("\n")[0])
    args = p.parse_args(argv)
    bu.set_threads(args)
    torch.manual_seed(args.seed)
    params = load_params(bu.REPO / "params.yaml")
    sp, cp = params.sentiment, params.charlm
    repeats = 2 if args.quick else 5

    train_pos, train_reviews, val_pos, desc = sentiment_positions(args, sp)
    per_pos = lstm_flops_per_position(sp.embed_dim, sp.hidden_size, sp.num_layers)
    sentiment = sp.epochs * (3 * train_pos + val_pos) * per_pos
    text, vocab, book = bd.load_book(args)
    book_chars = len(text)
    fraction = params.gutenberg.val_fraction  # the held-out tail of the book
    val_chars = int(book_chars * fraction / (1 - fraction))
    per_char = lstm_flops_per_position(cp.embed_dim, cp.hidden_size, cp.num_layers) \
        + 2 * cp.hidden_size * vocab
    evaluations = -(-cp.steps // cp.eval_every)
    charlm = (3 * cp.steps * cp.batch_size * cp.seq_len + evaluations * val_chars) * per_char

    bu.header("training floor at params.yaml's recipes", f"{desc}; {book}")
    started = time.perf_counter()
    rates = {"matmul 2048 x 2048": matmul_gflops(repeats * 4)}
    mean_batch_len = round(train_pos / train_reviews)  # padded length of an average batch
    rates["nn.LSTM, sentiment shapes"] = lstm_train_gflops(
        sp.batch_size, 40 if args.quick else mean_batch_len, sp.embed_dim, sp.hidden_size,
        sp.num_layers, repeats)
    rates["nn.LSTM, char-LM shapes"] = lstm_train_gflops(
        cp.batch_size, 20 if args.quick else cp.seq_len, cp.embed_dim, cp.hidden_size,
        cp.num_layers, repeats)
    rec = bu.Recorder("floor", args, desc)
    print(bu.table([[k, f"{v:.0f}"] for k, v in rates.items()], ["rate", "GFLOP/s"]))
    print()
    rows = []
    for stage, flops, own in (("train_sentiment", sentiment, "nn.LSTM, sentiment shapes"),
                              ("train_charlm", charlm, "nn.LSTM, char-LM shapes")):
        at_matmul = flops / rates["matmul 2048 x 2048"] / 1e9 / 60
        at_lstm = flops / rates[own] / 1e9 / 60
        rows.append([stage, f"{flops / 1e12:.1f}", f"{at_matmul:.1f}", f"{at_lstm:.1f}"])
        rec.add(f"{stage}_tflop", flops / 1e12, "TFLOP")
        rec.add(f"{stage}_floor_min", at_matmul, "min", rate=rates["matmul 2048 x 2048"])
        rec.add(f"{stage}_lstm_rate_min", at_lstm, "min", rate=rates[own])
    print(bu.table(rows, ["stage", "TFLOP", "min at matmul rate", "min at nn.LSTM's rate"]))
    print(f"\nsentiment: {sp.epochs} epochs of {train_pos:,} padded training positions and "
          f"{val_pos:,} validation tokens; char LM: {cp.steps:,} steps of {cp.batch_size} x "
          f"{cp.seq_len} and {evaluations} passes over {val_chars:,} held-out characters")
    print(f"(measured in {time.perf_counter() - started:.0f} s)")
    for k, v in rates.items():
        rec.add("gflops_" + k.split(",")[-1].strip().replace(" ", "_"), v, "GFLOP/s")
    rec.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
