"""Plots the stages write: learning curves and the like, as PNG files (no display)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)


def plot_history(history: list[dict], x: str, series: list[str], path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [row[x] for row in history]
    for name in series:
        ax.plot(xs, [row[name] for row in history], marker="o", label=name)
    ax.set_xlabel(x)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_time_to_quality(timeline: list[dict], metric: str, path: Path, title: str) -> None:
    """The validation metric against wall-clock minutes: what one more minute buys."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([row["seconds"] / 60 for row in timeline], [row[metric] for row in timeline],
            marker="o")
    ax.set_xlabel("minutes of training and evaluation")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
