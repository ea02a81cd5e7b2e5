"""A trained model as a training stage left it: weights (model.pt), what it was trained
with (model.json) and its vocabulary, loaded as data only."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from pydantic import BaseModel

from ..core.config import section_from_dict
from ..core.errors import ConfigError
from ..core.inputs import bad, read_json_object, reading, require_model_dir
from ..core.outputs import sha256_file


def load_trained(model_dir: Path, kind: str, params_cls: type[BaseModel], load_vocab: Callable,
                 vocab_file: str, build: Callable, command: str, device):
    """(model, vocab, params, model.json) from a stage's output directory, for `command`.
    The params it was trained with go through the same checks as params.yaml; anything
    wrong with a file is one line naming it."""
    model_dir = Path(model_dir)
    require_model_dir(model_dir, kind, command)
    info_file = model_dir / "model.json"
    info = read_json_object(info_file, ("params",), "a trained model's description")
    try:
        p = section_from_dict(params_cls, info["params"], f"{info_file}: params")
    except ConfigError as exc:
        raise bad(info_file, f"its params are not those of this model ({exc})") from exc
    vocab = load_vocab(model_dir / vocab_file)
    model = build(len(vocab), p)
    weights_file = model_dir / "model.pt"
    weights = load_tensors(weights_file, "a model's weights (torch.save)", map_location=device)
    # A flipped bit in a tensor still loads; the digest model.json records catches it.
    recorded = info.get("weights_sha256")
    if recorded is not None and sha256_file(weights_file) != recorded:
        raise bad(weights_file, f"its sha256 is not the one {info_file} records: the file "
                                "is corrupt or was replaced")
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise bad(weights_file, f"does not fit {info_file} and {vocab_file} "
                                f"({str(exc).splitlines()[0][:160]})") from exc
    return model.to(device).eval(), vocab, p, info


def weights_digest(model_dir: Path, info: dict) -> str:
    """sha256 of model.pt: the one model.json records, which load_trained has checked,
    or (a model.json from before it recorded one) the file's."""
    return info.get("weights_sha256") or sha256_file(Path(model_dir) / "model.pt")


def load_tensors(path: Path, kind: str, fix: str | None = None, map_location="cpu"):
    """A torch.save file loaded as data only (`weights_only`): tensors and plain values;
    anything wrong with it is one line naming it."""
    with reading(path, kind, fix):
        return torch.load(path, map_location=map_location, weights_only=True)
