"""Typed view of params.yaml: one pydantic model per section, validated on load.

params.yaml is complete and authoritative: a key missing from it is an error, never a
silent default. The models' own defaults are the book's recipes (`Params()` is the book),
for code and tests that build params directly. Types are exact (an int field refuses 2.5
and 1000.0, a bool refuses 1), unknown keys are refused, and every problem in a file is
reported at once, each naming the file, the key, what is accepted and what was given.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat,
                      PositiveInt, StrictFloat, StrictInt, ValidationError, model_validator)

from .errors import ConfigError
from .inputs import InputError, read_text

PARAMS_FILE = Path("params.yaml")


class _Loader(yaml.SafeLoader):
    """YAML with 1.2's floats: PyYAML follows YAML 1.1, where `1e-4` (no dot) is a
    string, but DVC reads params with 1.2 rules and writes `-S lr=1e-4` that way."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
                              list("-+0123456789."))

Fraction = Annotated[float, Field(ge=0, lt=1)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]
Scheduler = Literal["none", "cosine"]
PositiveNumber = Annotated[Union[StrictInt, StrictFloat], Field(gt=0)]
# YAML gives lists; the params keep tuples (hashable, immutable).
PositiveFloats = Annotated[tuple[PositiveFloat, ...], Field(strict=False, min_length=1)]
PositiveNumbers = Annotated[tuple[PositiveNumber, ...], Field(strict=False, min_length=1)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ImdbParams(Section):
    url: str = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
    sha256: Optional[Sha256] = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
    limit: Optional[PositiveInt] = None
    expected_per_class: PositiveInt = 12500
    expected_unlabelled: PositiveInt = 50000
    bad_utf8: Literal["replace", "fail"] = "replace"
    val_size: PositiveInt = 5000
    split_by: Literal["movie", "random"] = "movie"
    min_freq: PositiveInt = 1
    max_vocab: Optional[PositiveInt] = None


class GutenbergParams(Section):
    url: str = "https://www.gutenberg.org/cache/epub/1268/pg1268.txt"
    sha256: Optional[Sha256] = None
    limit: Optional[PositiveInt] = None
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1


class SentimentParams(Section):
    embed_dim: PositiveInt = 20
    hidden_size: PositiveInt = 64
    num_layers: PositiveInt = 1
    bidirectional: bool = False
    dropout: Fraction = 0.0
    word_dropout: Fraction = 0.0
    fc_size: PositiveInt = 64
    pooling: Literal["last", "last_max_mean"] = "last"
    head_tokens: Optional[PositiveInt] = None
    tail_tokens: Optional[PositiveInt] = None
    batch_size: PositiveInt = 32
    epochs: PositiveInt = 10
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.0
    scheduler: Scheduler = "none"
    clip_grad_norm: PositiveFloat = 1.0
    patience: Optional[PositiveInt] = None
    pretrained: Literal["none", "embeddings"] = "none"
    encoder_lr_scale: PositiveFloat = 1.0
    average_last_epochs: Optional[PositiveInt] = None

    @property
    def average_last_periods(self) -> Optional[int]:
        return self.average_last_epochs

    @model_validator(mode="after")
    def _consistent(self):
        if self.average_last_epochs is not None and self.average_last_epochs > self.epochs:
            raise ValueError(f"average_last_epochs ({self.average_last_epochs}) is more than "
                             f"epochs ({self.epochs})")
        if (self.head_tokens is None) != (self.tail_tokens is None):
            raise ValueError("head_tokens and tail_tokens are set together")
        return self


class PretrainParams(Section):
    """The word vectors the sentiment model may start from (`sentiment.pretrained:
    embeddings`); their size is the sentiment model's embed_dim. The book has no such
    stage."""
    embedding_window: PositiveInt = 5


class BaselineParams(Section):
    ngram_max: PositiveInt = 2
    min_df: PositiveInt = 2
    max_features: Optional[PositiveInt] = None
    c_values: PositiveNumbers = (1.0, 3.0, 10.0, 30.0, 100.0)
    max_iter: PositiveInt = 1000


class CharLMParams(Section):
    embed_dim: PositiveInt = 256
    hidden_size: PositiveInt = 512
    num_layers: PositiveInt = 1
    dropout: Fraction = 0.0
    mode: Literal["windows", "tbptt"] = "windows"
    seq_len: PositiveInt = 40
    batch_size: PositiveInt = 64
    steps: PositiveInt = 10000
    lr: PositiveFloat = 5e-3
    weight_decay: NonNegativeFloat = 0.0
    scheduler: Scheduler = "none"
    clip_grad_norm: PositiveFloat = 5.0
    eval_every: PositiveInt = 500
    patience: Optional[PositiveInt] = None
    average_last_evaluations: Optional[PositiveInt] = None

    @property
    def evaluations(self) -> int:
        """Evaluations in a full run: every `eval_every` steps and after the last."""
        return math.ceil(self.steps / self.eval_every)

    @property
    def average_last_periods(self) -> Optional[int]:
        return self.average_last_evaluations

    @model_validator(mode="after")
    def _consistent(self):
        if (self.average_last_evaluations is not None
                and self.average_last_evaluations > self.evaluations):
            raise ValueError(f"average_last_evaluations ({self.average_last_evaluations}) is "
                             f"more than the {self.evaluations} evaluations of {self.steps} "
                             "steps")
        return self


class SamplesParams(Section):
    """The text evaluate_charlm samples from the trained char LM: not training knobs,
    so changing them re-runs the evaluation only."""
    length: PositiveInt = 500
    prime: Annotated[str, Field(min_length=1)] = "The island"
    temperatures: PositiveFloats = (0.5, 1.0, 2.0)
    top_k: Optional[PositiveInt] = None


class DynamicEvalParams(Section):
    """Dynamic evaluation of the char LM (charlm/dynamic.py): an extra held-out figure,
    read by evaluate_charlm only. Every (lr, decay) pair is tried on the last `tune_chars`
    characters of the training text; the best scores the held-out text."""
    seq_len: PositiveInt = 50
    lrs: PositiveFloats = (0.01, 0.03, 0.1)
    decays: Annotated[tuple[Fraction, ...], Field(strict=False, min_length=1)] = (0.0,)
    tune_chars: PositiveInt = 20000


class TrainParams(Section):
    checkpoint_every: PositiveInt = 1
    deterministic: bool = False
    amp: bool = False
    num_threads: Optional[PositiveInt] = None
    nproc: PositiveInt = 1


# The sections the training loop trains from.
TrainingParams = Union[SentimentParams, CharLMParams]


class Params(Section):
    seed: Annotated[int, Field(ge=0)] = 1
    device: Annotated[str, Field(pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")] = "auto"
    imdb: ImdbParams = ImdbParams()
    gutenberg: GutenbergParams = GutenbergParams()
    sentiment: SentimentParams = SentimentParams()
    pretrain: PretrainParams = PretrainParams()
    baseline: BaselineParams = BaselineParams()
    charlm: CharLMParams = CharLMParams()
    samples: SamplesParams = SamplesParams()
    dynamic_eval: DynamicEvalParams = DynamicEvalParams()
    train: TrainParams = TrainParams()


_ACCEPTED = {"extra_forbidden": "unknown key", "missing": "missing key"}


def _describe(error: dict) -> str:
    """One pydantic error as `key: what is accepted (got value)`."""
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = _ACCEPTED.get(error["type"], error["msg"]).replace("Value error, ", "")
    if error["type"] in ("extra_forbidden", "missing"):
        return f"{key}: {message}"
    if isinstance(error["input"], dict):  # a check across keys: the message names them
        return f"{key}.{message}"
    return f"{key}: {message[0].lower()}{message[1:]} (got {error['input']!r})"


def _missing_keys(model: type[BaseModel], raw: Any, prefix: str = "") -> list[str]:
    """Keys of `model` that `raw` lacks, sections included: the file must be complete."""
    if not isinstance(raw, dict):
        return []
    missing = []
    for name, info in model.model_fields.items():
        if name not in raw:
            missing.append(f"{prefix}{name}: missing section"
                           if isinstance(info.default, BaseModel) else
                           f"{prefix}{name}: missing key (the book's value: {info.default!r})")
        elif isinstance(info.default, BaseModel):
            missing += _missing_keys(type(info.default), raw[name], f"{prefix}{name}.")
    return missing


def validate(model: type[BaseModel], raw: Any, where: str):
    """`raw` as a `model`, or a ConfigError listing every problem, each prefixed by
    `where` (the file, or the file and section)."""
    problems = _missing_keys(model, raw)
    try:
        result = model.model_validate(raw)
    except ValidationError as exc:
        problems += [_describe(e) for e in exc.errors()]
        result = None
    if problems:
        raise ConfigError(f"{where}: " + f"\n{where}: ".join(problems))
    return result


def params_from_dict(raw: dict, where: str = str(PARAMS_FILE)) -> Params:
    return validate(Params, raw, where)


def section_from_dict(cls, values: dict, where: str):
    """One validated section, e.g. the params a saved model was trained with."""
    return validate(cls, values, where)


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    path = Path(path)
    fix = "`git diff params.yaml` shows what changed, `git checkout params.yaml` restores it"
    try:
        text = read_text(path, "the params file (YAML)", fix)
    except InputError as exc:  # a params problem, whatever the reader calls it
        raise ConfigError(str(exc)) from exc
    try:
        raw = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: is not valid YAML ({' '.join(str(exc).split())}); "
                          f"{fix}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must be a mapping of sections, got a "
                          f"{type(raw).__name__}; {fix}")
    return params_from_dict(raw, str(path))


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """{'sentiment': {'lr': 0.1}} -> {'sentiment.lr': 0.1}, for logging params to MLflow."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump()
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out
