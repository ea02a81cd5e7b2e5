"""A trained model as a training stage left it: weights (model.pt), what it was trained
with (model.json) and its vocabulary, loaded as data only."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from pydantic import BaseModel

from ..core.config import section_from_dict
from ..core.outputs import read_json, require


def load_trained(model_dir: Path, params_cls: type[BaseModel], load_vocab: Callable,
                 vocab_file: str, build: Callable, what: str, stage: str, device):
    """(model, vocab, params, model.json) from a stage's output directory. The params it
    was trained with go through the same checks as params.yaml."""
    model_dir = Path(model_dir)
    require(model_dir / "model.pt", what, stage)
    info = read_json(model_dir / "model.json")
    p = section_from_dict(params_cls, info["params"], f"{model_dir / 'model.json'}: params")
    vocab = load_vocab(model_dir / vocab_file)
    model = build(len(vocab), p)
    model.load_state_dict(torch.load(model_dir / "model.pt", map_location=device,
                                     weights_only=True))
    return model.to(device).eval(), vocab, p, info
