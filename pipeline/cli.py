"""`python -m pipeline ...`: one thin command per DVC stage, plus predict and generate.

Heavy libraries (torch, mlflow, pandas) are imported inside the commands so that
`--help` stays fast.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

PARAMS_OPTION = click.option("--params", "params_path", default="params.yaml", show_default=True,
                             type=click.Path(dir_okay=False, path_type=Path),
                             help="the params file to read")


def _params(path: Path):
    from .config import ConfigError, load_params
    try:
        return load_params(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _run(stage_fn, params_path: Path) -> None:
    """Run a stage; known failures become one clear line instead of a traceback."""
    from .config import ConfigError
    from .tracking import TrackingUnavailable
    from .training import TrainingDiverged
    known = (ConfigError, TrackingUnavailable, TrainingDiverged, FileNotFoundError)
    try:
        from .download import ArchiveError, DownloadError
        from .sources import SourceError
        known += (ArchiveError, DownloadError, SourceError)
    except ImportError:
        pass
    try:
        stage_fn(_params(params_path))
    except known as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        # The tracking store failing after training: the outputs are already on disk.
        import mlflow.exceptions
        import requests
        if isinstance(exc, (mlflow.exceptions.MlflowException, requests.exceptions.ConnectionError)):
            raise click.ClickException(
                f"MLflow tracking failed: {type(exc).__name__}: {str(exc)[:500]}. Outputs "
                "written so far are kept; fix the store and re-run (training resumes from "
                "its checkpoint).") from exc
        raise


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """IMDb sentiment LSTM and Jules Verne char-LSTM: the stages of dvc.yaml, and the
    commands that use their outputs. Run from the repository root."""


def _stage(name: str, module: str, func: str, doc: str):
    @main.command(name, help=doc)
    @PARAMS_OPTION
    def command(params_path: Path) -> None:
        if name.startswith(("train-", "pretrain-")):
            _maybe_relaunch_distributed(name, params_path)
        import importlib
        _run(getattr(importlib.import_module(f".stages.{module}", __package__), func), params_path)
    return command


def _maybe_relaunch_distributed(name: str, params_path: Path) -> None:
    """With train.nproc > 1, re-run this command under torchrun on this machine, so
    `dvc repro` trains with DDP. (Several machines: start torchrun yourself.)"""
    import os
    nproc = _params(params_path).train.nproc
    if nproc <= 1 or "WORLD_SIZE" in os.environ:
        return
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc}", "-m", "pipeline", name, "--params", str(params_path)]
    click.echo(f"launching {nproc} processes: {' '.join(argv[1:])}", err=True)
    sys.stdout.flush()
    os.execv(sys.executable, argv)


_stage("acquire-imdb", "imdb", "acquire_imdb",
       "Download the IMDb archive, verify its sha256, extract and check it.")
_stage("acquire-gutenberg", "gutenberg", "acquire_gutenberg",
       "Download eBook #1268, record its sha256, strip the licence text.")
_stage("prepare-imdb", "imdb", "prepare_imdb",
       "Tokenise every review once; split; build the vocabulary; encode to arrays.")
_stage("prepare-gutenberg", "gutenberg", "prepare_gutenberg",
       "Character vocabulary, encoded text and the held-out tail.")
_stage("pretrain-sentiment", "pretrain", "pretrain_sentiment",
       "Pretrain the sentiment model's embedding + LSTM as a word LM on the training reviews.")
_stage("train-sentiment", "sentiment", "train_sentiment",
       "Train the review classifier (gradient clipping, checkpoints, MLflow).")
_stage("evaluate-sentiment", "sentiment", "evaluate_sentiment",
       "Score the classifier on the test reviews; metrics, confusion matrix.")
_stage("train-baseline", "baseline", "train_baseline",
       "TF-IDF (uni+bigram) + logistic regression on the same split: the bar to beat.")
_stage("train-charlm", "charlm", "train_charlm",
       "Train the character LSTM (gradient clipping, checkpoints, MLflow).")
_stage("evaluate-charlm", "charlm", "evaluate_charlm",
       "Held-out loss of the char LSTM, and samples at several temperatures.")


@main.command()
@click.argument("texts", nargs=-1)
@click.option("--file", "file_", type=click.File("r", encoding="utf-8"),
              help="read reviews from this file, one per line ('-' for stdin)")
@click.option("--model-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("data/models/sentiment"), show_default=True)
def predict(texts: tuple[str, ...], file_, model_dir: Path) -> None:
    """Sentiment of review TEXTS (or of each line of --file / stdin): label and
    probability of 'positive'."""
    reviews = list(texts)
    if file_ is not None:
        reviews += [line.rstrip("\n") for line in file_ if line.strip()]
    elif not reviews and not sys.stdin.isatty():
        reviews = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not reviews:
        raise click.UsageError("give review texts, --file FILE, or pipe reviews on stdin")
    from .stages.sentiment import predict_texts
    try:
        results = predict_texts(reviews, model_dir)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    for text, (label, prob) in zip(reviews, results):
        snippet = text if len(text) <= 60 else text[:57] + "..."
        click.echo(f"{label}\t{prob:.4f}\t{snippet}")


@main.command()
@click.option("--prime", default="The island", show_default=True, help="text to start from")
@click.option("--length", default=500, show_default=True, type=click.IntRange(min=0))
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True),
              help="divides the logits; lower is more conservative [default: 1.0]")
@click.option("--scale-factor", type=click.FloatRange(min=0, min_open=True),
              help="the book's name for 1/temperature (multiplies the logits)")
@click.option("--top-k", type=click.IntRange(min=1), help="sample only among the k likeliest")
@click.option("--seed", default=1, show_default=True, help="same seed, same text")
@click.option("--model-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("data/models/charlm"), show_default=True)
def generate(prime, length, temperature, scale_factor, top_k, seed, model_dir) -> None:
    """Generate text with the trained char LSTM."""
    if temperature is not None and scale_factor is not None:
        raise click.UsageError("give --temperature or --scale-factor, not both")
    temperature = 1 / scale_factor if scale_factor is not None else (temperature or 1.0)
    from .evaluation import generate as sample
    from .stages.charlm import load_charlm
    try:
        model, vocab, _, _ = load_charlm(model_dir)
        click.echo(sample(model, vocab, prime, length, temperature, top_k, seed))
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
