"""Typed view of params.yaml: one dataclass per section, validated on load.

Every stage calls `load_params()` and reads only its own sections, which are also the
keys that `dvc.yaml` lists as the stage's params.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

import yaml

from .errors import ConfigError

PARAMS_FILE = Path("params.yaml")


def _choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {allowed}, got {value!r}")


def _positive(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class ImdbParams:
    url: str = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
    sha256: Optional[str] = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
    limit: Optional[int] = None
    expected_per_class: int = 12500
    bad_utf8: str = "replace"
    val_size: int = 5000
    split_by: str = "movie"
    min_freq: int = 1
    max_vocab: Optional[int] = None

    def validate(self) -> None:
        _positive("imdb.limit", self.limit, allow_none=True)
        _positive("imdb.expected_per_class", self.expected_per_class)
        _choice("imdb.bad_utf8", self.bad_utf8, ("replace", "fail"))
        _positive("imdb.val_size", self.val_size)
        _choice("imdb.split_by", self.split_by, ("movie", "random"))
        _positive("imdb.min_freq", self.min_freq)
        _positive("imdb.max_vocab", self.max_vocab, allow_none=True)


@dataclass(frozen=True)
class GutenbergParams:
    url: str = "https://www.gutenberg.org/cache/epub/1268/pg1268.txt"
    sha256: Optional[str] = None
    limit: Optional[int] = None
    val_fraction: float = 0.1

    def validate(self) -> None:
        _positive("gutenberg.limit", self.limit, allow_none=True)
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"gutenberg.val_fraction must be in (0, 1), got {self.val_fraction}")


@dataclass(frozen=True)
class SentimentParams:
    embed_dim: int = 20
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    word_dropout: float = 0.0
    fc_size: int = 64
    pooling: str = "last"
    head_tokens: Optional[int] = None
    tail_tokens: Optional[int] = None
    batch_size: int = 32
    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 0.0
    scheduler: str = "none"
    clip_grad_norm: float = 1.0
    patience: Optional[int] = None
    pretrained: str = "none"
    encoder_lr_scale: float = 1.0

    def validate(self) -> None:
        _choice("sentiment.pretrained", self.pretrained, ("none", "embeddings", "lm"))
        if self.pretrained == "lm" and self.bidirectional:
            raise ConfigError("sentiment.pretrained: lm needs a unidirectional LSTM: the "
                              "pretrained language model reads left to right")
        for name in ("embed_dim", "hidden_size", "num_layers", "fc_size", "batch_size", "epochs",
                     "lr", "clip_grad_norm", "encoder_lr_scale"):
            _positive(f"sentiment.{name}", getattr(self, name))
        for name in ("head_tokens", "tail_tokens", "patience"):
            _positive(f"sentiment.{name}", getattr(self, name), allow_none=True)
        if (self.head_tokens is None) != (self.tail_tokens is None):
            raise ConfigError("sentiment.head_tokens and sentiment.tail_tokens are set together")
        _choice("sentiment.pooling", self.pooling, ("last", "last_max_mean"))
        _choice("sentiment.scheduler", self.scheduler, ("none", "cosine"))
        for name in ("dropout", "word_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"sentiment.{name} must be in [0, 1), "
                                  f"got {getattr(self, name)}")


@dataclass(frozen=True)
class PretrainParams:
    """What the sentiment model starts from (`sentiment.pretrained`): word vectors
    (`embedding_window`) or a word language model (the rest). Sizes are the sentiment
    model's; these are the training knobs. The book has no such stage."""
    embedding_window: int = 5
    dropout: float = 0.1
    seq_len: int = 70
    batch_size: int = 64
    steps: int = 2000
    lr: float = 2e-3
    weight_decay: float = 0.0
    scheduler: str = "cosine"
    clip_grad_norm: float = 1.0
    eval_every: int = 500
    eval_tokens: int = 200_000
    cutoffs: tuple = (2000, 10000)
    patience: Optional[int] = None

    def validate(self) -> None:
        for name in ("embedding_window", "seq_len", "batch_size", "steps", "lr",
                     "clip_grad_norm", "eval_every", "eval_tokens"):
            _positive(f"pretrain.{name}", getattr(self, name))
        _positive("pretrain.patience", self.patience, allow_none=True)
        _choice("pretrain.scheduler", self.scheduler, ("none", "cosine"))
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"pretrain.dropout must be in [0, 1), got {self.dropout}")
        if list(self.cutoffs) != sorted(set(self.cutoffs)) or not self.cutoffs:
            raise ConfigError(f"pretrain.cutoffs must be increasing word ranks, got {self.cutoffs}")
        for c in self.cutoffs:
            if not isinstance(c, int) or isinstance(c, bool) or c <= 0:
                raise ConfigError(f"pretrain.cutoffs must be positive integers, got {c!r}")


@dataclass(frozen=True)
class BaselineParams:
    ngram_max: int = 2
    min_df: int = 2
    max_features: Optional[int] = None
    c_values: tuple = (1.0, 3.0, 10.0, 30.0, 100.0)
    max_iter: int = 1000

    def validate(self) -> None:
        for name in ("ngram_max", "min_df", "max_iter"):
            _positive(f"baseline.{name}", getattr(self, name))
        _positive("baseline.max_features", self.max_features, allow_none=True)
        if not self.c_values:
            raise ConfigError("baseline.c_values must list at least one value")
        for c in self.c_values:
            _positive("baseline.c_values[]", c)


@dataclass(frozen=True)
class CharLMParams:
    embed_dim: int = 256
    hidden_size: int = 512
    num_layers: int = 1
    dropout: float = 0.0
    mode: str = "windows"
    seq_len: int = 40
    batch_size: int = 64
    steps: int = 10000
    lr: float = 5e-3
    weight_decay: float = 0.0
    scheduler: str = "none"
    clip_grad_norm: float = 5.0
    eval_every: int = 500
    patience: Optional[int] = None

    def validate(self) -> None:
        for name in ("embed_dim", "hidden_size", "num_layers", "seq_len", "batch_size", "steps",
                     "lr", "clip_grad_norm", "eval_every"):
            _positive(f"charlm.{name}", getattr(self, name))
        _positive("charlm.patience", self.patience, allow_none=True)
        _choice("charlm.mode", self.mode, ("windows", "tbptt"))
        _choice("charlm.scheduler", self.scheduler, ("none", "cosine"))
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"charlm.dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class SamplesParams:
    """The text evaluate_charlm samples from the trained char LM: not training knobs,
    so changing them re-runs the evaluation only."""
    length: int = 500
    prime: str = "The island"
    temperatures: tuple = (0.5, 1.0, 2.0)
    top_k: Optional[int] = None

    def validate(self) -> None:
        _positive("samples.length", self.length)
        _positive("samples.top_k", self.top_k, allow_none=True)
        if not self.prime:
            raise ConfigError("samples.prime must be at least one character")
        for t in self.temperatures:
            _positive("samples.temperatures[]", t)


@dataclass(frozen=True)
class TrainParams:
    checkpoint_every: int = 1
    deterministic: bool = False
    amp: bool = False
    num_threads: Optional[int] = None
    nproc: int = 1

    def validate(self) -> None:
        _positive("train.checkpoint_every", self.checkpoint_every)
        _positive("train.nproc", self.nproc)
        _positive("train.num_threads", self.num_threads, allow_none=True)


@dataclass(frozen=True)
class Params:
    seed: int = 1
    device: str = "auto"
    imdb: ImdbParams = field(default_factory=ImdbParams)
    gutenberg: GutenbergParams = field(default_factory=GutenbergParams)
    sentiment: SentimentParams = field(default_factory=SentimentParams)
    pretrain: PretrainParams = field(default_factory=PretrainParams)
    baseline: BaselineParams = field(default_factory=BaselineParams)
    charlm: CharLMParams = field(default_factory=CharLMParams)
    samples: SamplesParams = field(default_factory=SamplesParams)
    train: TrainParams = field(default_factory=TrainParams)

    def validate(self) -> None:
        if not (self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:")):
            raise ConfigError(f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        for section in (self.imdb, self.gutenberg, self.sentiment, self.pretrain, self.baseline,
                        self.charlm, self.samples, self.train):
            section.validate()


_SECTIONS = {f.name: f.default_factory for f in fields(Params)
             if f.default_factory is not dataclasses.MISSING}


def _build(cls, values: dict, where: str):
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown key(s) in {where}: {', '.join(sorted(unknown))}")
    for name in ("temperatures", "c_values", "cutoffs"):  # YAML lists -> hashable tuples
        if name in values and name in known:
            if not isinstance(values[name], (list, tuple)):
                raise ConfigError(f"{where}.{name} must be a list, got {values[name]!r}")
            values = {**values, name: tuple(values[name])}
    for f in fields(cls):
        # The default's type is the expected one (None defaults are optional numbers).
        default = f.default if f.default is not dataclasses.MISSING else None
        value = values.get(f.name)
        if value is None or default is None or dataclasses.is_dataclass(default):
            continue
        expected = (int, float) if isinstance(default, float) else type(default)
        if isinstance(value, bool) != isinstance(default, bool) or not isinstance(value, expected):
            raise ConfigError(f"{where}.{f.name} must be a {type(default).__name__}, "
                              f"got {value!r}")
    return cls(**values)


def section_from_dict(cls, values: dict, where: str):
    """One validated section, e.g. the params a saved model was trained with."""
    section = _build(cls, dict(values), where)
    section.validate()
    return section


def params_from_dict(raw: dict) -> Params:
    raw = dict(raw or {})
    kwargs = {}
    for name, factory in _SECTIONS.items():
        section = raw.pop(name, None) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"section {name!r} must be a mapping")
        kwargs[name] = _build(type(factory()), section, name)
    params = _build(Params, {**raw, **kwargs}, "params.yaml")
    params.validate()
    return params


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} not found (run from the repository root)")
    with open(path, encoding="utf-8") as f:
        return params_from_dict(yaml.safe_load(f))


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """{'sentiment': {'lr': 0.1}} -> {'sentiment.lr': 0.1}, for logging params to MLflow."""
    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out
