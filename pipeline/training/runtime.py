"""Where a stage runs: device, threads, seeds, and the process group under torchrun."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from ..core.errors import ConfigError
from . import cores


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} asked for, but CUDA is not available here "
                          "(use device: auto or cpu)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device: 'mps' asked for, but MPS is not available here "
                          "(use device: auto or cpu)")
    return device


def world() -> tuple[int, int]:
    """(rank, world size): (0, 1) unless started by torchrun."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def is_main() -> bool:
    return world()[0] == 0


def setup_runtime(seed: int, device_name: str, deterministic: bool = False,
                  num_threads: int | None = None) -> torch.device:
    """Seeds, threads, (on CUDA, if asked) deterministic kernels, and the process group
    when torchrun started this process (NCCL on CUDA, Gloo on CPU)."""
    # Denormal floats flush to zero (x86; a no-op where unsupported). The embedding's tiny
    # gradients and Adam moments of rarely seen words fall into the denormal range, where
    # each CPU operation on them is many times slower (docs/experiments.md, "denormal
    # floats"). First, so the thread pool inherits it.
    torch.set_flush_denormal(True)
    if deterministic:
        # cuBLAS reads this when CUDA initialises, so it is set before anything else.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    device = resolve_device(device_name)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed and not torch.distributed.is_initialized():
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if num_threads is None and distributed and device.type == "cpu":
        # Processes sharing the cores: oversubscribed OpenMP threads spin and crawl.
        num_threads = max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    # Unless given, this process's share of the cores among the torch processes running
    # now (queued experiments' workers), followed as they start and end (cores.py).
    torch.set_num_threads(cores.start(num_threads))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return device


def setup_for(params) -> torch.device:
    """setup_runtime with a stage's params."""
    return setup_runtime(params.seed, params.device, params.train.deterministic,
                         params.train.num_threads)


def shard(global_size: int) -> tuple[slice, float]:
    """This rank's rows of a global batch, and the loss weight that makes DDP's gradient
    average equal the single-process gradient of the whole batch: each rank returns
    sum(its losses) * world / global_size, DDP divides the sum over ranks by world."""
    rank, size = world()
    return slice(rank, None, size), size / global_size
