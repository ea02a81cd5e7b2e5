"""Character LM stages: train on the book, evaluate on its held-out tail, sample text."""
from __future__ import annotations

import math
import shutil

import torch
import torch.nn.functional as F

from ..config import CharLMParams, Params
from ..data import StreamBatches, load_chars, random_windows
from ..evaluation import generate, loss_report, stateful_loss, streams_loss, windowed_loss
from ..models import build_charlm
from ..text import CharVocab
from ..training import setup_runtime, shard
from .common import EVAL_CHARLM, METRICS, MODEL_CHARLM, PREPARED_BOOK, read_json, require, write_json
from .runner import final_metrics, train_and_track


class CharTask:
    """One round = `eval_every` optimisation steps. Mode "windows" is the book's: random
    windows from a zero state. Mode "tbptt": contiguous streams, the state carried from
    one window to the next and detached, so gradients stop at the window edge."""
    metric, mode, item_name = "val_loss", "min", "chars"

    def __init__(self, train: torch.Tensor, val: torch.Tensor, p: CharLMParams, seed: int,
                 device: torch.device):
        self.train, self.val, self.p, self.seed, self.device = train, val, p, seed, device
        self.streams = StreamBatches(train, p.seq_len, p.batch_size) if p.mode == "tbptt" else None
        self.state = None

    def rounds(self) -> int:
        return math.ceil(self.p.steps / self.p.eval_every)

    def steps_in_round(self, r: int) -> int:
        return min(self.p.eval_every, self.p.steps - r * self.p.eval_every)

    def batches(self, r: int):
        # Under DDP each process takes its own rows (its own streams, in tbptt mode).
        rows, weight = shard(self.p.batch_size)
        weight /= self.p.seq_len
        first = r * self.p.eval_every
        if self.streams is None:
            g = torch.Generator().manual_seed(self.seed * 100_003 + r)
            for _ in range(self.steps_in_round(r)):
                x, y = random_windows(self.train, self.p.seq_len, self.p.batch_size, g)
                yield x[rows].to(self.device), y[rows].to(self.device), weight, False
        else:
            for k in range(first, first + self.steps_in_round(r)):
                x, y = self.streams.window(k)
                yield (x[rows].to(self.device), y[rows].to(self.device), weight,
                       k % self.streams.windows_per_pass == 0)

    def loss(self, model, batch):
        x, y, weight, new_pass = batch
        state = None if (self.streams is None or new_pass) else self.state
        logits, state = model(x, state)
        if self.streams is not None:
            self.state = tuple(s.detach() for s in state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                               reduction="sum")
        return loss * weight, y.numel()

    def evaluate(self, model) -> dict[str, float]:
        nats = streams_loss(model, self.val, self.device)
        return {"val_loss": nats, "val_bpc": nats / math.log(2)}

    def state_dict(self) -> dict:
        return {"state": None if self.state is None else tuple(s.cpu() for s in self.state)}

    def load_state_dict(self, state: dict) -> None:
        s = state.get("state")
        self.state = None if s is None else tuple(t.to(self.device) for t in s)


def train_charlm(params: Params) -> dict:
    from ..serving import log_charlm_model  # mlflow.pyfunc: imported only by training
    p = params.charlm
    device = setup_runtime(params.seed, params.device, params.train.deterministic,
                           params.train.num_threads)
    require(PREPARED_BOOK / "train.npy", "the encoded book", "prepare_gutenberg")
    train, val = load_chars(PREPARED_BOOK)
    vocab = CharVocab.load(PREPARED_BOOK / "chars.json")
    model = build_charlm(len(vocab), p)
    task = CharTask(train, val, p, params.seed, device)
    result = train_and_track(
        "charlm", params, p, model, task, device, PREPARED_BOOK, MODEL_CHARLM,
        write_extra=lambda out: shutil.copy(PREPARED_BOOK / "chars.json", out / "chars.json"),
        log_model=log_charlm_model,
        curves=["train_loss", "val_loss"])
    return {"best_step": result.best_step, **result.best_metrics}


def load_charlm(model_dir=MODEL_CHARLM, device="cpu"):
    require(model_dir / "model.pt", "the trained char model", "train_charlm")
    info = read_json(model_dir / "model.json")
    p = CharLMParams(**{**info["params"],
                        "sample_temperatures": tuple(info["params"]["sample_temperatures"])})
    vocab = CharVocab.load(model_dir / "chars.json")
    model = build_charlm(len(vocab), p)
    model.load_state_dict(torch.load(model_dir / "model.pt", map_location=device,
                                     weights_only=True))
    return model.to(device).eval(), vocab, p, info


BOOK_WINDOW = 40


def evaluate_charlm(params: Params) -> dict:
    device = setup_runtime(params.seed, params.device, params.train.deterministic,
                           params.train.num_threads)
    model, vocab, p, info = load_charlm(device=device)
    _, val = load_chars(PREPARED_BOOK)
    stateful = loss_report(stateful_loss(model, val, device))
    # The book's view whatever the training mode: random 40-char windows from a zero
    # state, so the figure compares across recipes.
    windowed = loss_report(windowed_loss(model, val, device, seq_len=BOOK_WINDOW,
                                         seed=params.seed))
    metrics = {**{f"val_{k}": v for k, v in stateful.items()},
               **{f"val_windowed_{k}": v for k, v in windowed.items()},
               "best_step": info["best_step"], "val_characters": int(len(val))}
    write_json(METRICS / "charlm.json", metrics)

    samples = []
    for t in p.sample_temperatures:
        text = generate(model, vocab, p.sample_prime, p.sample_length, temperature=t,
                        top_k=p.sample_top_k, seed=params.seed, device=device)
        samples.append(f"=== temperature {t} (scale factor {1 / t:g}) ===\n{text}\n")
    EVAL_CHARLM.mkdir(parents=True, exist_ok=True)
    (EVAL_CHARLM / "samples.txt").write_text("\n".join(samples), encoding="utf-8")

    import mlflow
    from .. import tracking  # mlflow: imported only where a run is logged
    with tracking.resume_run(MODEL_CHARLM / "run.json", "evaluate_charlm"):
        mlflow.log_metrics(final_metrics(metrics))
        for t, sample in zip(p.sample_temperatures, samples):
            mlflow.log_text(sample, f"samples/temperature_{t}.txt")
        mlflow.log_artifact(str(METRICS / "charlm.json"), "metrics")
    print(f"held-out loss {stateful['loss']:.4f} nats/char ({stateful['bpc']:.4f} bits/char), "
          f"zero-state {BOOK_WINDOW}-char windows {windowed['loss']:.4f}")
    print(samples[0])
    return metrics
