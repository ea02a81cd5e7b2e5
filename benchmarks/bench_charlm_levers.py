"""The char LM's training step, lever by lever: what each change to the step costs or
saves, measured back to back on this machine.

Every variant is a full TBPTT training step of the model the levers were chosen on
(embedding 64, 2 x 384 LSTM, the book's vocabulary size): forward, backward, clipping,
fused Adam.

  per-element masks  the step before sequence dropout: nn.LSTM's own dropout between the
                     layers and nn.Dropout on embeddings and outputs, a fresh mask for
                     every character
  sequence masks     pipeline.charlm.model.CharLSTM: one mask per sequence (variational)
  no dropout         the same model with dropout 0: the floor dropout can reach
  B x T shapes       sequence masks at other batch x window shapes

The single-process variants run interleaved (a, b, c, a, b, c, ...), so the machine's
slow patches hit each alike; chars/s is what compares shapes of different size. With
--ddp, the same step also runs as two one-thread processes under torchrun (DDP on Gloo,
each process half the batch), in turns with a one-process run of the same shape.

    python benchmarks/bench_charlm_levers.py
    python benchmarks/bench_charlm_levers.py --ddp --repeats 8
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil as bu  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from pipeline.charlm.model import CharLSTM  # noqa: E402

VOCAB = 84  # characters of the prepared book
EMBED, HIDDEN, LAYERS, DROPOUT = 64, 384, 2, 0.1


class ElementDropoutLSTM(nn.Module):
    """The char LSTM as it was before sequence dropout: one nn.LSTM call for both layers,
    a fresh dropout mask for every element."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, EMBED)
        self.lstm = nn.LSTM(EMBED, HIDDEN, LAYERS, batch_first=True, dropout=DROPOUT)
        self.dropout = nn.Dropout(DROPOUT)
        self.fc = nn.Linear(HIDDEN, VOCAB)

    def forward(self, x, state=None):
        out, state = self.lstm(self.dropout(self.embedding(x)), state)
        return self.fc(self.dropout(out)), state


def make_step(model: nn.Module, batch: int, seq_len: int, ddp: bool = False):
    """A closure running one TBPTT training step on fixed random characters."""
    torch.manual_seed(0)
    model.train()
    trainable = nn.parallel.DistributedDataParallel(model) if ddp else model
    optimizer = bu.pipeline_optimizer(model, 2e-3)
    x = torch.randint(0, VOCAB, (batch, seq_len))
    y = torch.randint(0, VOCAB, (batch, seq_len))
    carried = {"state": None}

    def step():
        optimizer.zero_grad(set_to_none=True)
        logits, state = trainable(x, carried["state"])
        carried["state"] = tuple(s.detach() for s in state)
        F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1)).backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
    return step


def single_process(args) -> list[dict]:
    variants = {
        "per-element masks, 64 x 100": (ElementDropoutLSTM(), 64, 100),
        "sequence masks, 64 x 100": (CharLSTM(VOCAB, EMBED, HIDDEN, LAYERS, DROPOUT), 64, 100),
        "no dropout, 64 x 100": (CharLSTM(VOCAB, EMBED, HIDDEN, LAYERS, 0.0), 64, 100),
        "sequence masks, 128 x 50": (CharLSTM(VOCAB, EMBED, HIDDEN, LAYERS, DROPOUT), 128, 50),
        "sequence masks, 32 x 200": (CharLSTM(VOCAB, EMBED, HIDDEN, LAYERS, DROPOUT), 32, 200),
        "sequence masks, 64 x 50": (CharLSTM(VOCAB, EMBED, HIDDEN, LAYERS, DROPOUT), 64, 50),
    }
    steps = {name: make_step(m, b, t) for name, (m, b, t) in variants.items()}
    times = bu.time_interleaved(steps, args.repeats, warmup=args.warmup)
    rows = []
    for name, (_, b, t) in variants.items():
        ms = bu.median(times[name]) * 1e3
        rows.append({"variant": name, "processes": 1, "threads": torch.get_num_threads(),
                     "ms": ms, "spread": bu.spread(times[name]), "chars_per_s": b * t / ms * 1e3})
    return rows


def ddp_worker(batch: int, seq_len: int, repeats: int, warmup: int) -> None:
    """Run under torchrun: one process's share of the step, timed; rank 0 prints JSON."""
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    torch.distributed.init_process_group("gloo")
    size = torch.distributed.get_world_size()
    step = make_step(CharLSTM(VOCAB, EMBED, HIDDEN, LAYERS, DROPOUT), batch // size, seq_len,
                     ddp=True)
    times = bu.time_calls(step, repeats, warmup=warmup)
    if torch.distributed.get_rank() == 0:
        print(json.dumps({"times": times}))
    torch.distributed.destroy_process_group()


def two_processes(args, batch: int, seq_len: int) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           __file__, "--ddp-worker", f"{batch},{seq_len}", "--repeats", str(args.repeats),
           "--warmup", str(args.warmup)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
    times = json.loads(out.strip().splitlines()[-1])["times"]
    ms = bu.median(times) * 1e3
    return {"variant": f"sequence masks, {batch} x {seq_len}", "processes": 2, "threads": 1,
            "ms": ms, "spread": bu.spread(times), "chars_per_s": batch * seq_len / ms * 1e3}


def ddp_comparison(args) -> list[dict]:
    """Two processes against one, in turns (one, two, one, two), per shape."""
    rows = []
    for batch, seq_len in ((64, 100), (64, 50)):
        for _ in range(args.rounds):
            one = make_step(CharLSTM(VOCAB, EMBED, HIDDEN, LAYERS, DROPOUT), batch, seq_len)
            times = bu.time_calls(one, args.repeats, warmup=args.warmup)
            ms = bu.median(times) * 1e3
            rows.append({"variant": f"sequence masks, {batch} x {seq_len}", "processes": 1,
                         "threads": torch.get_num_threads(), "ms": ms,
                         "spread": bu.spread(times), "chars_per_s": batch * seq_len / ms * 1e3})
            rows.append(two_processes(args, batch, seq_len))
    return rows


def main() -> None:
    parser = bu.base_parser(__doc__)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--ddp", action="store_true", help="also two one-thread processes")
    parser.add_argument("--rounds", type=int, default=2, help="turns of one vs two processes")
    parser.add_argument("--ddp-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ddp_worker:
        batch, seq_len = map(int, args.ddp_worker.split(","))
        ddp_worker(batch, seq_len, args.repeats, args.warmup)
        return
    if args.quick:
        args.repeats, args.warmup, args.rounds = 2, 1, 1
    threads = bu.set_threads(args)
    torch.set_flush_denormal(True)
    recorder = bu.Recorder("charlm_levers", args, "random characters")
    bu.header("char LM step, lever by lever", "random characters",
              f"{threads} threads; embedding {EMBED}, {LAYERS} x {HIDDEN} LSTM, dropout {DROPOUT}")
    started = time.perf_counter()
    rows = single_process(args)
    if args.ddp:
        rows += ddp_comparison(args)
    base = rows[0]["chars_per_s"]
    print(bu.table([[r["variant"], r["processes"], r["threads"], f"{r['ms']:.1f}", r["spread"],
                     f"{r['chars_per_s']:,.0f}", f"{r['chars_per_s'] / base:.2f}x"] for r in rows],
                   ["variant", "processes", "threads/process", "ms/step", "min-max ms",
                    "chars/s", "vs first"]))
    print(f"({time.perf_counter() - started:.0f} s)")
    for r in rows:
        recorder.add(f"{r['variant']}, {r['processes']} process(es)", r["chars_per_s"],
                     "chars/s", ms=r["ms"], threads=r["threads"])
    recorder.finish()


if __name__ == "__main__":
    main()
