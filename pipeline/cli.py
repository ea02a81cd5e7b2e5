"""`python -m pipeline ...`: one command per DVC stage (defined in its stage module),
the commands that use their outputs (predict, generate), and those that run or describe
the pipeline (recipe, smoke, report, deps).

torch and MLflow are imported only by the command that needs them, so that `--help`
answers at once and `predict` does not load MLflow.
"""
from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from pathlib import Path

import click
import yaml

from .core import logs
from .core.config import flatten
from .core.errors import PipelineError
from .dvcgraph import print_code_deps
from .report import results_table, with_table

SMOKE_RECIPE = Path("recipes/smoke.yaml")

# The stages of dvc.yaml, by command name: (module in pipeline/stages, one-line help).
# A stage module is imported only when its command runs: it loads torch and MLflow.
STAGES = {
    "acquire-imdb": ("acquire_imdb", "Download the IMDb archive, verify, extract, check."),
    "acquire-gutenberg": ("acquire_gutenberg", "Download eBook #1268, strip the licence text."),
    "prepare-imdb": ("prepare_imdb", "Tokenise, split, build the vocabulary, encode."),
    "prepare-gutenberg": ("prepare_gutenberg",
                          "Character vocabulary, encoded text, held-out tail."),
    "pretrain": ("pretrain", "Word vectors for the classifier."),
    "train-sentiment": ("train_sentiment", "Train the review classifier."),
    "evaluate-sentiment": ("evaluate_sentiment", "Score the classifier on the test reviews."),
    "train-baseline": ("train_baseline", "TF-IDF + logistic regression: the bar to beat."),
    "train-charlm": ("train_charlm", "Train the character LSTM."),
    "evaluate-charlm": ("evaluate_charlm", "Held-out loss of the char LSTM, and samples."),
}


class PipelineGroup(click.Group):
    """The stage commands live in their stage modules; load one only when it runs."""

    def list_commands(self, ctx):
        return [*STAGES, *super().list_commands(ctx)]

    def get_command(self, ctx, name):
        if name in STAGES:
            return importlib.import_module(f"pipeline.stages.{STAGES[name][0]}").main
        return super().get_command(ctx, name)

    def format_commands(self, ctx, formatter):
        rows = [(name, help_) for name, (_, help_) in STAGES.items()]
        rows += [(name, self.commands[name].get_short_help_str())
                 for name in super().list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=PipelineGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """IMDb sentiment LSTM and Jules Verne char-LSTM: the stages of dvc.yaml, the commands
    that use their outputs, and those that run recipes. Run from the repository root."""
    logs.setup()  # what predict, generate and the rest log goes to stderr, like a stage's


def _read_reviews(stream, name: str) -> list[str]:
    """One review per non-blank line of a binary stream. Bytes that are not UTF-8 become
    U+FFFD, as in the training data (imdb.bad_utf8: replace); the lines where that
    happened are reported, not hidden."""
    reviews, damaged = [], []
    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            line = raw.decode("utf-8", errors="replace")
            damaged.append(number)
        if line.strip():
            reviews.append(line.rstrip("\r\n"))
    if damaged:
        shown = ", ".join(map(str, damaged[:10])) + (", ..." if len(damaged) > 10 else "")
        click.echo(f"{name}: {len(damaged)} line(s) with bytes that are not UTF-8 (line "
                   f"{shown}); those bytes were read as U+FFFD", err=True)
    return reviews


@main.command()
@click.argument("texts", nargs=-1)
@click.option("--file", "file_", type=click.File("rb"),
              help="read reviews from this file, one per line ('-' for stdin)")
@click.option("--model-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("data/models/sentiment"), show_default=True)
@click.option("--champion", is_flag=True,
              help="use the registry's sentiment-lstm@champion (the store MLFLOW_TRACKING_URI "
                   "names, else the local mlflow.db) instead of --model-dir")
def predict(texts: tuple[str, ...], file_, model_dir: Path, champion: bool) -> None:
    """Sentiment of review TEXTS (or of each line of --file / stdin). Prints a header,
    then per review: the label, the probability of that label, the review. A review with
    no word the model knows gets no label; exit status 1 when no review got one."""
    reviews = list(texts)
    if file_ is not None:
        reviews += _read_reviews(file_, file_.name)
    elif not reviews and not sys.stdin.isatty():
        reviews = _read_reviews(click.get_binary_stream("stdin"), "stdin")
    if not reviews:
        raise click.UsageError("give review texts, --file FILE, or pipe reviews on stdin")
    from .sentiment.predict import MAX_TOKENS, predict_texts  # torch: only when predicting
    try:
        loaded = _champion_sentiment() if champion else None
        results = predict_texts(reviews, model_dir, loaded=loaded)
    except PipelineError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("label\tp(label)\treview")
    for text, r in zip(reviews, results):
        snippet = text if len(text) <= 60 else text[:57] + "..."
        notes = []
        if r.label is None:
            notes.append("no label: no word the model knows")
        if r.cut:
            notes.append(f"cut: scored on the first and last {MAX_TOKENS // 2:,} of its "
                         f"{r.tokens:,} tokens")
        note = f"\t({'; '.join(notes)})" if notes else ""
        prob = "-" if r.label is None else f"{r.probability:.4f}"
        click.echo(f"{r.label or 'none'}\t{prob}\t{snippet}{note}")
    if all(r.label is None for r in results):
        raise click.ClickException("no review had a word the model knows: no label given")


def _champion_sentiment():
    """The registered champion's model, loaded as serving loads it."""
    import mlflow  # only when asked for
    from .mlops import tracking
    from .mlops.registry import CHAMPION
    from .sentiment.serving import NAME
    tracking.connect()
    try:
        model = mlflow.pyfunc.load_model(f"models:/{NAME}@{CHAMPION}")
    except mlflow.exceptions.MlflowException as exc:
        raise PipelineError(f"no {NAME}@{CHAMPION} in {tracking.tracking_uri()}: "
                            f"{str(exc).splitlines()[0][:200]}. Run `dvc repro` on the "
                            "whole data set first (docs/serving.md says how the champion "
                            "is chosen).") from exc
    return model.unwrap_python_model().loaded


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
    if not prime:
        raise click.BadParameter("must be at least one character", param_hint="--prime")
    temperature = 1 / scale_factor if scale_factor is not None else (temperature or 1.0)
    from .charlm.generate import generate as sample, load_charlm  # torch: only when generating
    try:
        model, vocab, _, _ = load_charlm(model_dir)
        click.echo(sample(model, vocab, prime, length, temperature, top_k, seed))
    except (PipelineError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.argument("recipe_file", metavar="RECIPE",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="the DVC experiment's name [default: RECIPE-<date>-<time>]")
def recipe(recipe_file: Path, name: str | None) -> None:
    """Run the pipeline with the params RECIPE overrides (a YAML file like those in
    recipes/) as a DVC experiment in a temporary copy, tracked in MLflow like any run;
    params.yaml and the workspace stay as they are."""
    run_recipe(recipe_file, name)


@main.command()
@click.option("--name", help="the DVC experiment's name [default: smoke-<date>-<time>]")
def smoke(name: str | None) -> None:
    """Every stage on the real data at small sizes: `recipe recipes/smoke.yaml`."""
    run_recipe(SMOKE_RECIPE, name)


def recipe_overrides(recipe_file: Path) -> dict:
    """The recipe's params as flat `section.key: value` overrides."""
    try:
        raw = yaml.safe_load(recipe_file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{recipe_file} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise click.ClickException(f"{recipe_file} must be a mapping of params sections")
    return flatten(raw)


def run_recipe(recipe_file: Path, name: str | None) -> None:
    name = name or time.strftime(f"{recipe_file.stem}-%Y%m%d-%H%M%S")
    argv = ["dvc", "exp", "run", "--temp", "--name", name]
    for key, value in recipe_overrides(recipe_file).items():
        argv += ["-S", f"{key}={json.dumps(value)}"]  # JSON is YAML, as -S reads it
    click.echo(" ".join(argv), err=True)
    started = time.monotonic()
    if subprocess.run(argv).returncode != 0:
        raise click.ClickException(f"the run {name} of {recipe_file} failed (its log is above)")
    click.echo(f"{name} done in {time.monotonic() - started:.0f} s. Results: "
               f"`python -m pipeline compare`; runs tagged dvc_experiment={name} in the "
               f"MLflow UI (`make ui`); `dvc exp apply {name}` puts its outputs here.")


@main.command()
@click.option("--readme", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="rewrite the results table of this README in place")
def report(readme: Path | None) -> None:
    """The results table, from metrics/: printed, or written into the README."""
    table = results_table()
    if readme is None:
        click.echo(table)
        return
    readme.write_text(with_table(readme.read_text(encoding="utf-8"), table), encoding="utf-8")
    click.echo(f"results table of {readme} rewritten from metrics/")


@main.command()
@click.option("--rev", "revs", multiple=True,
              help="the commit whose experiments to list [default: HEAD]; repeatable")
def compare(revs: tuple[str, ...]) -> None:
    """Experiments side by side: the params that differ, sentiment test and validation
    accuracy, char LM held-out loss (a narrow `dvc exp show`)."""
    from .report import experiments_table
    click.echo(experiments_table(list(revs) or None))


@main.command()
def deps() -> None:
    """The code each stage of dvc.yaml depends on (its import closure), for dvc.yaml."""
    print_code_deps()
