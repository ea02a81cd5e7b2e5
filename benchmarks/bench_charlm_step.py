"""Char-LM training step: the book's per-character loop against one LSTM call per window.

One step = forward + backward + gradient clipping + Adam step on a batch of
`--batch` windows of `--seq-len` characters (64 x 40 by default; embedding 256,
LSTM 512, the book's sizes).

  (a) loop:   the book's style. nn.LSTM is called on one time step at a time in a
              Python loop, carrying (h, c); the per-step losses are summed.
  (b) window: pipeline.charlm.model.CharLSTM, one nn.LSTM call over the whole window, and
              the training stages' optimizer (Adam's fused kernel; the loop keeps
              torch's default Adam, as the book does).

Both run on the same batches, interleaved (a, b, a, b, ...), after warm-up steps.
Also measured: the machine's fp32 matmul rate (2048 x 2048 torch.matmul, same thread
count), from which the floor of a step is FLOPs / rate:

  LSTM forward  = 2 * B * T * 4H * (E + H)   (the 4 gate matmuls, input and recurrent)
  output layer  = 2 * B * T * H * V
  step          = 3 * (LSTM forward + output layer)   (backward ~ 2x forward)

Element-wise gate maths, the embedding lookup, the loss, clipping and Adam are left out
(memory-bound, small next to the matmuls here). A second floor charges each GEMM shape
of the step at its own measured rate (the recurrence's T products of only B rows, the
output layer's V columns): the floor of any implementation of this model at this batch.

    python benchmarks/bench_charlm_step.py                 # CPU (+ CUDA if available)
    python benchmarks/bench_charlm_step.py --device cuda   # CUDA only
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil as bu  # noqa: E402
import benchdata as bd  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

TARGET_VS_LOOP_CPU = 2.3    # (b) at least this many times faster than (a) on CPU
TARGET_VS_FLOOR = 1.15      # (b) within this factor of the matmul floor
TARGET_VS_LOOP_GPU = 20.0   # on CUDA: (b) at least this many times faster than the loop


class BookCharRNN(nn.Module):
    """The book's model: called once per character, the LSTM state passed in and out."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_size: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, vocab_size)

    def forward(self, x_t, hidden, cell):
        out = self.embedding(x_t).unsqueeze(1)           # [B, 1, E]
        out, (hidden, cell) = self.lstm(out, (hidden, cell))
        return self.fc(out).squeeze(1), hidden, cell      # [B, V]

    def window_loss(self, x, y):
        """The book's training loss of a window: one call per character, from zero state."""
        B, T = x.shape
        H = self.lstm.hidden_size
        hidden = torch.zeros(1, B, H, device=x.device)
        cell = torch.zeros(1, B, H, device=x.device)
        loss = 0.0
        for t in range(T):
            logits, hidden, cell = self(x[:, t], hidden, cell)
            loss = loss + F.cross_entropy(logits, y[:, t])
        return loss / T


def step_flops(batch: int, seq_len: int, embed: int, hidden: int, vocab: int) -> dict:
    lstm = 2 * batch * seq_len * 4 * hidden * (embed + hidden)
    output = 2 * batch * seq_len * hidden * vocab
    return {"lstm_forward": lstm, "output_forward": output, "step": 3 * (lstm + output)}


def matmul_rate(device: torch.device, n: int, repeats: int) -> list[float]:
    """GFLOP/s of n x n fp32 matmuls, one sample per repeat (CUDA: 10 products per
    sample, so the timer and the sync are negligible)."""
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device)
    b = torch.randn(n, n, generator=g).to(device)
    inner = 10 if device.type == "cuda" else 1
    sync = torch.cuda.synchronize if device.type == "cuda" else None

    def run():
        for _ in range(inner):
            torch.matmul(a, b)
    times = bu.time_calls(run, repeats, warmup=2, sync=sync)
    return [2 * n ** 3 * inner / t / 1e9 for t in times]


def shape_floor_s(device: torch.device, batch: int, seq_len: int, embed: int, hidden: int,
                  vocab: int, repeats: int) -> dict:
    """Seconds of a step's matmuls, each GEMM shape timed on its own (forward shapes; the
    backward's are charged at the same rates, 2x the FLOPs)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    g = torch.Generator(device="cpu").manual_seed(0)
    shapes = {  # name: (rows, inner, cols, products per forward)
        "input projection": (batch * seq_len, embed, 4 * hidden, 1),
        "recurrent": (batch, hidden, 4 * hidden, seq_len),
        "output layer": (batch * seq_len, hidden, vocab, 1),
    }
    out = {}
    for name, (m, k, n, count) in shapes.items():
        a = torch.randn(m, k, generator=g).to(device)
        b = torch.randn(k, n, generator=g).to(device)
        inner = max(1, int(2e8 // (2 * m * k * n)))  # ~0.2 GFLOP per timed sample
        times = time_calls_n(lambda: torch.matmul(a, b), inner, repeats, sync)
        rate = 2 * m * k * n / bu.median(times)
        out[name] = {"gflops": rate / 1e9, "forward_s": 2 * m * k * n * count / rate}
    out["step_s"] = 3 * sum(v["forward_s"] for v in out.values())
    return out


def time_calls_n(fn, inner: int, repeats: int, sync) -> list[float]:
    """Seconds per call, each sample the mean of `inner` back-to-back calls."""
    def run():
        for _ in range(inner):
            fn()
    return [t / inner for t in bu.time_calls(run, repeats, warmup=2, sync=sync)]


def measure_device(device: torch.device, text: torch.Tensor, vocab: int, args) -> dict:
    from pipeline.charlm.data import random_windows
    from pipeline.charlm.model import CharLSTM
    B, T, E, H = args.batch, args.seq_len, args.embed, args.hidden
    sync = torch.cuda.synchronize if device.type == "cuda" else None

    torch.manual_seed(args.seed)
    book = BookCharRNN(vocab, E, H).to(device)
    torch.manual_seed(args.seed)
    project = CharLSTM(vocab, E, H).to(device)
    opt_book = torch.optim.Adam(book.parameters(), lr=args.lr)
    opt_project = bu.pipeline_optimizer(project, args.lr)

    g = torch.Generator().manual_seed(args.seed)
    batches = [tuple(t.to(device) for t in random_windows(text, T, B, g)) for _ in range(8)]
    counters = {"loop": 0, "window": 0}

    def loop_step():
        x, y = batches[counters["loop"] % len(batches)]
        counters["loop"] += 1
        opt_book.zero_grad(set_to_none=True)
        loss = book.window_loss(x, y)
        loss.backward()
        nn.utils.clip_grad_norm_(book.parameters(), args.clip)
        opt_book.step()

    def window_step():
        x, y = batches[counters["window"] % len(batches)]
        counters["window"] += 1
        opt_project.zero_grad(set_to_none=True)
        logits, _ = project(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(project.parameters(), args.clip)
        opt_project.step()

    rate_before = matmul_rate(device, args.matmul_size, args.matmul_repeats)
    times = bu.time_interleaved({"loop": loop_step, "window": window_step},
                                args.repeats, warmup=args.warmup, sync=sync)
    rate_after = matmul_rate(device, args.matmul_size, args.matmul_repeats)
    rates = rate_before + rate_after
    shapes = shape_floor_s(device, B, T, E, H, vocab, args.matmul_repeats * 2)
    return {"times": times, "rate": bu.median(rates), "rates": rates,
            "flops": step_flops(B, T, E, H, vocab), "shapes": shapes}


def summary(r: dict) -> dict:
    """The figures of one device's measurement: step times, floors, ratios."""
    loop_ms = bu.median(r["times"]["loop"]) * 1e3
    window_ms = bu.median(r["times"]["window"]) * 1e3
    floor_ms = r["flops"]["step"] / (r["rate"] * 1e9) * 1e3
    shape_floor_ms = r["shapes"]["step_s"] * 1e3
    return {"loop_ms": loop_ms, "window_ms": window_ms, "floor_ms": floor_ms,
            "speedup": loop_ms / window_ms, "vs_floor": window_ms / floor_ms,
            "shape_floor_ms": shape_floor_ms}


def report(device: torch.device, r: dict, args, vocab: int, cpu_loop_ms: float | None) -> None:
    x = summary(r)
    gpu = device.type == "cuda"
    target_loop = TARGET_VS_LOOP_GPU if gpu else TARGET_VS_LOOP_CPU
    print(f"\n-- {device}" + (f" ({torch.cuda.get_device_name(device)})" if gpu else
                             f" ({torch.get_num_threads()} threads)")
          + f": batch {args.batch} x {args.seq_len}, embedding {args.embed}, LSTM {args.hidden}, "
          f"vocabulary {vocab}; median of {args.repeats} steps after {args.warmup} warm-up")
    rows = [["(a) loop: nn.LSTM per character (book)", f"{x['loop_ms']:.1f}",
             bu.spread(r["times"]["loop"]), "1.00x", f"{x['loop_ms'] / x['floor_ms']:.2f}x"],
            ["(b) window: pipeline CharLSTM", f"{x['window_ms']:.1f}",
             bu.spread(r["times"]["window"]), f"{x['speedup']:.2f}x", f"{x['vs_floor']:.2f}x"],
            ["floor = FLOPs / matmul rate", f"{x['floor_ms']:.1f}", "", "", "1.00x"]]
    print(bu.table(rows, ["variant", "ms/step", "min-max ms", "speed vs (a)", "time vs floor"]))
    f = r["flops"]
    print(f"FLOPs/step = 3 x (2*B*T*4H*(E+H) + 2*B*T*H*V) = 3 x ({f['lstm_forward'] / 1e9:.3f} + "
          f"{f['output_forward'] / 1e9:.3f}) GFLOP = {f['step'] / 1e9:.2f} GFLOP")
    print(f"matmul rate ({args.matmul_size}x{args.matmul_size} fp32, median of "
          f"{len(r['rates'])}, before and after): {r['rate']:.1f} GFLOP/s "
          f"(range {min(r['rates']):.1f}-{max(r['rates']):.1f})")
    if gpu:
        print(f"  (TF32 for matmul: {torch.backends.cuda.matmul.allow_tf32}, for cuDNN: "
              f"{torch.backends.cudnn.allow_tf32}; the floor on a GPU is far below a step "
              "this small, which is bound by kernel launches)")
    print(f"floor at the step's own GEMM shapes: {x['shape_floor_ms']:.1f} ms/step; (b) is "
          f"{x['window_ms'] / x['shape_floor_ms']:.2f}x that. Rates: " + ", ".join(
              f"{name} {v['gflops']:.0f} GFLOP/s" for name, v in r["shapes"].items()
              if isinstance(v, dict)))
    print(f"target: (b) >= {target_loop:g}x faster than (a): {x['speedup']:.2f}x -> "
          f"{bu.verdict(x['speedup'] >= target_loop)}")
    if not gpu:
        print(f"target: (b) within {TARGET_VS_FLOOR}x of the floor: {x['vs_floor']:.2f}x -> "
              f"{bu.verdict(x['vs_floor'] <= TARGET_VS_FLOOR)}")
    if gpu and cpu_loop_ms is not None:
        print(f"(b) on {device} vs (a) on CPU in this run: {cpu_loop_ms / x['window_ms']:.1f}x")


def record(rec: bu.Recorder, device: torch.device, r: dict, args, vocab: int,
           cpu_loop_ms: float | None) -> None:
    """One JSON line per measurement of this device."""
    x = summary(r)
    gpu = device.type == "cuda"
    target_loop = TARGET_VS_LOOP_GPU if gpu else TARGET_VS_LOOP_CPU
    common = dict(device=str(device), batch=args.batch, seq_len=args.seq_len,
                  embed=args.embed, hidden=args.hidden, vocab=vocab, repeats=args.repeats)
    ms = {k: [round(t * 1e3, 3) for t in v] for k, v in r["times"].items()}
    rec.add("loop_step_ms", x["loop_ms"], "ms", variant="a_loop", samples_ms=ms["loop"], **common)
    rec.add("window_step_ms", x["window_ms"], "ms", variant="b_window", samples_ms=ms["window"],
            **common)
    rec.add("speedup_window_vs_loop", x["speedup"], "x", target=f">={target_loop}",
            met=x["speedup"] >= target_loop, **common)
    rec.add("step_gflop", r["flops"]["step"] / 1e9, "GFLOP",
            formula="3*(2*B*T*4H*(E+H) + 2*B*T*H*V)", **common)
    rec.add("matmul_gflops", r["rate"], "GFLOP/s", size=args.matmul_size,
            samples=[round(v, 2) for v in r["rates"]], **common)
    rec.add("floor_ms", x["floor_ms"], "ms", **common)
    rec.add("window_vs_floor", x["vs_floor"], "x", target=None if gpu else f"<={TARGET_VS_FLOOR}",
            met=None if gpu else x["vs_floor"] <= TARGET_VS_FLOOR, **common)
    rec.add("shape_floor_ms", x["shape_floor_ms"], "ms", gemm_gflops={
        k: round(v["gflops"], 1) for k, v in r["shapes"].items() if isinstance(v, dict)}, **common)
    rec.add("window_vs_shape_floor", x["window_ms"] / x["shape_floor_ms"], "x", **common)
    if gpu and cpu_loop_ms is not None:
        rec.add("speedup_window_gpu_vs_loop_cpu", cpu_loop_ms / x["window_ms"], "x", **common)


def main(argv=None) -> int:
    p = bu.base_parser(__doc__.split("\n")[0])
    p.add_argument("--device", default="auto",
                   help="cpu, cuda, or auto (= cpu, then cuda if available)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=40)
    p.add_argument("--embed", type=int, default=256)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--vocab", type=int, default=None,
                   help="vocabulary size (default: the data's, 79 for the real book, 80 synthetic)")
    p.add_argument("--repeats", type=int, default=None, help="timed steps per variant [15; quick 2]")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps per variant [3; quick 1]")
    p.add_argument("--matmul-size", type=int, default=2048)
    p.add_argument("--matmul-repeats", type=int, default=None, help="[6 before + 6 after; quick 2]")
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--clip", type=float, default=5.0)
    args = p.parse_args(argv)
    args.repeats = args.repeats or (2 if args.quick else 15)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    args.matmul_repeats = args.matmul_repeats or (2 if args.quick else 6)
    bu.set_threads(args)

    text, vocab, data_desc = bd.load_book(args)
    if args.vocab:
        vocab = args.vocab
        text = text % vocab
    if args.device == "auto":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = [args.device]
    rec = bu.Recorder("charlm_step", args, data_desc, device=",".join(devices))
    bu.header("char-LM training step: per-character loop vs one LSTM call per window", data_desc)

    cpu_loop_ms = None
    for name in devices:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            print(f"\n-- {name}: CUDA is not available here, skipped")
            continue
        t0 = time.perf_counter()
        r = measure_device(device, text, vocab, args)
        report(device, r, args, vocab, cpu_loop_ms)
        record(rec, device, r, args, vocab, cpu_loop_ms)
        if device.type == "cpu":
            cpu_loop_ms = bu.median(r["times"]["loop"]) * 1e3
        print(f"({time.perf_counter() - t0:.1f} s for {name})")
    rec.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
