"""Training step with torch's dropout against a candidate that draws the CPU mask from
uniform numbers (`rand >= p`) instead of torch's Bernoulli sampler, at params.yaml's
recipe for both models. The profile shows the sampler (aten::bernoulli_) as a few
percent of each step; this measures what replacing it would save.

Each variant gets its own model (the same initial weights) and walks the same batches
(the sentiment model's length-bucketed batches of the real prepared reviews or
synthetic ones; 64 x 100 char-LM windows); the two run in turns (a, b, a, b, ...), and
their total times over the same batches are compared (sentiment batches differ in
length, so per-step medians would compare different batches). The char LM's dropout between its two LSTM layers runs inside
nn.LSTM, so it stays torch's in both variants.

    python benchmarks/bench_dropout.py
    python benchmarks/bench_dropout.py --models charlm --steps 30
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil as bu  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

from profile_training import charlm_steps, sentiment_steps  # noqa: E402

TORCH_FORWARD = nn.Dropout.forward


def uniform_mask_forward(self, x: torch.Tensor) -> torch.Tensor:
    """The candidate: the same distribution as nn.Dropout, another sampler."""
    if not self.training or not 0 < self.p < 1:
        return TORCH_FORWARD(self, x)
    keep = (torch.rand_like(x) >= self.p).to(x.dtype)
    return x * keep.mul_(1.0 / (1.0 - self.p))


def with_dropout(step, forward):
    """`step` with every nn.Dropout module (the models' own; not nn.LSTM's) using `forward`."""
    def run():
        nn.Dropout.forward = forward
        try:
            step()
        finally:
            nn.Dropout.forward = TORCH_FORWARD
    return run


def main(argv=None) -> int:
    p = bu.base_parser(__doc__.split("\n")[0])
    p.add_argument("--models", default="sentiment,charlm")
    p.add_argument("--steps", type=int, default=None, help="timed steps per variant [30; quick 2]")
    args = p.parse_args(argv)
    args.steps = args.steps or (2 if args.quick else 30)
    args.warmup, args.recipe, args.device = 2, "params", "cpu"
    bu.set_threads(args)
    builders = {"sentiment": sentiment_steps, "charlm": charlm_steps}
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        label, torch_step, desc = builders[name](args, torch.device("cpu"), book=False)
        _, uniform_step, _ = builders[name](args, torch.device("cpu"), book=False)
        rec = bu.Recorder("dropout", args, desc)
        bu.header(f"{label}: torch's dropout vs a uniform-number mask", desc)
        times = bu.time_interleaved(
            {"torch": with_dropout(torch_step, TORCH_FORWARD),
             "uniform": with_dropout(uniform_step, uniform_mask_forward)},
            args.steps, warmup=args.warmup)
        total = {k: sum(v) for k, v in times.items()}
        rows = [[k, f"{total[k]:.2f}", f"{bu.median(v) * 1e3:.1f}", bu.spread(v)]
                for k, v in times.items()]
        print(bu.table(rows, ["dropout", f"s for {args.steps} steps", "median ms/step", "range"]))
        saved = 1 - total["uniform"] / total["torch"]
        print(f"the uniform-number mask saves {saved:.1%} of the time")
        for k in total:
            rec.add(f"{name}_steps_s_{k}", total[k], "s", steps=args.steps,
                    samples_ms=[round(t * 1e3, 2) for t in times[k]])
        rec.add(f"{name}_saved_fraction", saved, "fraction")
        rec.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
