"""Sharing the CPU cores between torch processes that run at once on one machine.

Two processes each using every core (OpenMP's default) make both crawl: their threads
spin waiting for each other. So each process that runs a stage holds a lock file in a
shared directory for its lifetime, and uses cores / (processes holding one) threads,
checked again every few seconds, so `dvc queue start -j 2` splits the cores between its
two workers and a worker left alone takes them all back.
"""
from __future__ import annotations

import atexit
import os
import tempfile
import time
from pathlib import Path

import torch

try:
    import fcntl
except ImportError:  # Windows: no sharing, every process takes every core
    fcntl = None

SLOTS = Path(tempfile.gettempdir()) / "pipeline-torch-processes"
RECHECK_SECONDS = 5.0

_held = None          # this process's open, locked slot file
_following = False    # whether threads follow the share (no train.num_threads given)
_last_check = 0.0


def _take_slot() -> None:
    global _held
    path = SLOTS / f"{os.getpid()}.lock"
    # Another process may remove the file between open and lock, taking it for a dead
    # process's: lock again until the locked file is the one on disk.
    if _held is None:
        atexit.register(_release)
    while _held is None or not path.exists():
        SLOTS.mkdir(parents=True, exist_ok=True)
        if _held is not None:
            _held.close()
        _held = open(path, "w")
        fcntl.flock(_held, fcntl.LOCK_EX)


def _release() -> None:
    """Give the slot back when the process ends (a killed one's is removed by the others)."""
    global _held
    if _held is not None:
        Path(_held.name).unlink(missing_ok=True)
        _held.close()
        _held = None


def _live_processes() -> int:
    """Processes holding a slot, this one included; slots of dead processes are removed."""
    live = 0
    for path in SLOTS.glob("*.lock"):
        if _held is not None and path.name == Path(_held.name).name:
            live += 1
            continue
        try:
            with open(path) as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink(missing_ok=True)  # its process is gone
        except BlockingIOError:
            live += 1
        except OSError:
            pass
    return max(live, 1)


def fair_share() -> int:
    """Threads this process should use now."""
    cores = os.cpu_count() or 1
    if fcntl is None:
        return cores
    _take_slot()
    return max(1, cores // _live_processes())


def start(pinned: int | None) -> int:
    """Threads to start with: `pinned` (the user's `train.num_threads`) when set, else
    the fair share, which `rebalance` then follows."""
    global _following
    _following = pinned is None
    return pinned or fair_share()


def rebalance() -> None:
    """Follow the fair share, checked at most every RECHECK_SECONDS (call it often)."""
    global _last_check
    if not _following:
        return
    now = time.monotonic()
    if now - _last_check < RECHECK_SECONDS:
        return
    _last_check = now
    threads = fair_share()
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
