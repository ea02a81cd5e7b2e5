"""Checkpoints of the training loop: everything a killed run needs to go on as if it had
never stopped (model, optimizer, scheduler, task, weight average, RNG states, loop state),
written atomically, resumed only by a run of the same params and data, and read as data:
tensors and plain Python values only, never pickled code."""
from __future__ import annotations

import logging
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import PipelineError
from ..core.outputs import atomic_file

# Bumped when the checkpoint's layout changes: an older checkpoint is ignored, not misread.
FORMAT = 2

log = logging.getLogger(__name__)


def rng_state() -> dict:
    # NumPy's state as a tensor and plain values, so loading it needs no NumPy class.
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save, never leaving half a checkpoint under the real name."""
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def save_checkpoint(path: Path, fingerprint: str, **parts: Any) -> None:
    save_atomic({"format": FORMAT, "fingerprint": fingerprint, "rng": rng_state(), **parts},
                path)


def load_checkpoint(path: Path | None, fingerprint: str) -> dict | None:
    """The checkpoint at `path` if it belongs to this run (same params and data, same
    layout); None otherwise."""
    if path is None or not path.exists():
        return None
    # Every rank resumes from the one checkpoint rank 0 wrote.
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError) as exc:  # not a torch.save file, or a cut-off one
        raise PipelineError(f"{path} is not a readable checkpoint ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:200]}). Delete it to train from "
                            "the start.") from exc
    except pickle.UnpicklingError as exc:
        raise PipelineError(
            f"{path} holds more than tensors and plain values (it would run code when "
            f"loaded: {str(exc).splitlines()[0][:200]}); refusing to resume from it. Delete "
            "it to train from the start.") from exc
    if ckpt.get("fingerprint") != fingerprint or ckpt.get("format") != FORMAT:
        log.warning("ignoring %s: it belongs to other params, data or code", path)
        return None
    return ckpt
