"""torch.profiler over ~20 training steps of each model; the top ops by self time.

  sentiment: pipeline.sentiment.model.SentimentLSTM on the project's length-bucketed
             batches (real prepared reviews or synthetic), batch 32
  charlm:    pipeline.charlm.model.CharLSTM on random 64 x 40 windows (real book or
             synthetic)
  --book:    also the book's variants (packed sentiment LSTM on random batches; the
             per-character loop), as defined in sentiment_epoch_data.py and
             bench_charlm_step.py

Each step is forward + backward + clip + Adam, as in training. A few warm-up steps
run before the profiled ones. Prints the top --rows ops by self CPU time, and by self
CUDA time on a GPU; the tables are also written to profile-*.txt in --out (default
benchmarks/results/), and Chrome traces with --trace.

    python benchmarks/profile_training.py
    python benchmarks/profile_training.py --recipe params    # the sizes in params.yaml
    python benchmarks/profile_training.py --device cuda --book
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil as bu  # noqa: E402
import benchdata as bd  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.autograd import DeviceType  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402


def sentiment_steps(args, device, book: bool):
    """(label, step function, description) for the sentiment model."""
    from pipeline.sentiment.batches import review_batch
    from pipeline.sentiment.model import SentimentLSTM
    from sentiment_epoch_data import BookSentimentRNN, load_data
    n = max(32 * (args.steps + args.warmup), 1000)
    data = load_data(args, n, 32)
    train = data["sets"]["train"]
    torch.manual_seed(args.seed)
    recipe = "the book's model"
    if book:
        model = BookSentimentRNN(data["vocab_size"]).to(device)
        perm = np.random.default_rng(args.seed).permutation(len(train))
        order = [perm[i:i + 32] for i in range(0, len(perm), 32)]
    elif args.recipe == "params":
        from pipeline.core.config import load_params
        from pipeline.sentiment.model import build_sentiment
        from pipeline.sentiment.reviews import ReviewSet
        sp = load_params(bu.REPO / "params.yaml").sentiment
        model = build_sentiment(data["vocab_size"], sp).to(device).train()
        train = ReviewSet(train.tokens, data["parts"]["train"], sp.head_tokens, sp.tail_tokens)
        order = train.batches(sp.batch_size, shuffle=True, seed=args.seed)
        recipe = f"params.yaml's recipe, batch {sp.batch_size}"
    else:
        model = SentimentLSTM(data["vocab_size"]).to(device)
        order = train.batches(32, shuffle=True, seed=args.seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3) if book else bu.pipeline_optimizer(model, 1e-3)
    k = [0]

    def step():
        b = review_batch(train, order[k[0] % len(order)]).to(device)
        k[0] += 1
        opt.zero_grad(set_to_none=True)
        out = model(b.tokens, b.lengths)
        loss = (F.binary_cross_entropy(out, b.labels) if book
                else F.binary_cross_entropy_with_logits(out, b.labels))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    label = ("sentiment-book: packed LSTM, random batches" if book
             else f"sentiment: SentimentLSTM ({recipe}), bucketed batches, padded + gather")
    return label, step, data["desc"]


def charlm_steps(args, device, book: bool):
    from bench_charlm_step import BookCharRNN
    from pipeline.charlm.data import random_windows
    from pipeline.charlm.model import CharLSTM
    text, vocab, desc = bd.load_book(args)
    B, T, H = 64, 40, 512
    torch.manual_seed(args.seed)
    model = (BookCharRNN(vocab, 256, H) if book else CharLSTM(vocab, 256, H)).to(device)
    recipe = "the book's model, 1 x 512"
    if args.recipe == "params" and not book:
        from pipeline.charlm.model import build_charlm
        from pipeline.core.config import load_params
        cp = load_params(bu.REPO / "params.yaml").charlm
        B, T = cp.batch_size, cp.seq_len
        model = build_charlm(vocab, cp).to(device).train()
        recipe = f"params.yaml's recipe, {cp.num_layers} x {cp.hidden_size}"
    opt = (torch.optim.Adam(model.parameters(), lr=0.005) if book
           else bu.pipeline_optimizer(model, 0.005))
    g = torch.Generator().manual_seed(args.seed)
    batches = [tuple(t.to(device) for t in random_windows(text, T, B, g)) for _ in range(8)]
    k = [0]

    def step():
        x, y = batches[k[0] % len(batches)]
        k[0] += 1
        opt.zero_grad(set_to_none=True)
        if book:
            loss = model.window_loss(x, y)
        else:
            logits, _ = model(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
    label = ("charlm-book: nn.LSTM per character, 64 x 40" if book
             else f"charlm: CharLSTM ({recipe}), one call per {B} x {T} window")
    return label, step, desc


def main(argv=None) -> int:
    p = bu.base_parser(__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--models", default="sentiment,charlm")
    p.add_argument("--book", action="store_true", help="also profile the book's variants")
    p.add_argument("--steps", type=int, default=None, help="profiled steps [20; quick 3]")
    p.add_argument("--warmup", type=int, default=None, help="[3; quick 1]")
    p.add_argument("--rows", type=int, default=15)
    p.add_argument("--recipe", choices=["book", "params"], default="book",
                   help="model sizes: the book's (as the step benchmarks), or params.yaml's")
    p.add_argument("--trace", type=Path, default=None, help="folder for Chrome traces")
    p.add_argument("--out", type=Path, default=bu.BENCH_DIR / "results",
                   help="folder for the profile-*.txt tables")
    args = p.parse_args(argv)
    args.steps = args.steps or (3 if args.quick else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    bu.set_threads(args)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available here")
        return 1
    out_dir = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    builders = {"sentiment": sentiment_steps, "charlm": charlm_steps}
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        for book in ([False, True] if args.book else [False]):
            label, step, desc = builders[name](args, device, book)
            prof, wall = profiled(step, args, device)
            report = profile_report(prof, wall, label, desc, args, device)
            print("\n" + report)
            tag = label.split(":")[0]
            path = out_dir / f"profile-{tag}-{device.type}.txt"
            path.write_text(report + "\n", encoding="utf-8")
            print(f"(written to {path})")
            if args.trace:
                args.trace.mkdir(parents=True, exist_ok=True)
                prof.export_chrome_trace(str(args.trace / f"trace-{tag}-{device.type}.json"))
    return 0


def profiled(step, args, device: torch.device):
    """(the profiler of `args.steps` steps after the warm-up, their wall seconds)."""
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    for _ in range(args.warmup):
        step()
    sync()
    t0 = time.perf_counter()
    with profile(activities=activities, record_shapes=False) as prof:
        for _ in range(args.steps):
            step()
        sync()
    return prof, time.perf_counter() - t0


def profile_report(prof, wall: float, label: str, desc: str, args, device: torch.device) -> str:
    """The top ops by self CPU time (and by CUDA time, with the GPU's busy share)."""
    cuda = device.type == "cuda"
    ka = prof.key_averages()
    title = (f"{label}\ndata: {desc}\ndevice: {device}"
             + (f" ({torch.cuda.get_device_name(device)})" if cuda else
                f", {torch.get_num_threads()} threads")
             + f"; {args.steps} steps after {args.warmup} warm-up, "
               f"{wall / args.steps * 1e3:.1f} ms/step under the profiler")
    text = [f"=== {title}", "", f"top {args.rows} ops by self CPU time:",
            ka.table(sort_by="self_cpu_time_total", row_limit=args.rows)]
    if cuda:
        key = "self_cuda_time_total"
        try:
            table = ka.table(sort_by=key, row_limit=args.rows)
        except (AttributeError, KeyError, ValueError):
            key = "self_device_time_total"
            table = ka.table(sort_by=key, row_limit=args.rows)
        text += [f"top {args.rows} ops by self CUDA time:", table]
        # Kernel rows only: an op's row repeats the time of the kernels it launched.
        busy = sum((getattr(e, "self_device_time_total", None)
                    or getattr(e, "self_cuda_time_total", 0) or 0)
                   for e in ka if getattr(e, "device_type", None) == DeviceType.CUDA) / 1e3
        text.append(f"GPU busy {busy / args.steps:.2f} ms per step of "
                    f"{wall / args.steps * 1e3:.2f} ms (the rest: the host launching work)")
    return "\n".join(text)

if __name__ == "__main__":
    sys.exit(main())
