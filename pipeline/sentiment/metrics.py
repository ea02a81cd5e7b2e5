"""How well a classifier of reviews does: the metrics both the LSTM and the TF-IDF
baseline report, and the confusion matrix (scikit-learn and matplotlib, no torch)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn import metrics as skm

from ..mlops.plots import plt


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    labels = labels.astype(int)
    pred = (probs >= 0.5).astype(int)
    eps = 1e-7
    clipped = np.clip(probs, eps, 1 - eps)
    loss = float(-np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped)))
    p, r, f1, _ = skm.precision_recall_fscore_support(labels, pred, average="binary",
                                                      zero_division=0)
    auc = skm.roc_auc_score(labels, probs) if len(set(labels)) == 2 else float("nan")
    return {"accuracy": float(skm.accuracy_score(labels, pred)), "loss": loss,
            "precision": float(p), "recall": float(r), "f1": float(f1), "roc_auc": float(auc)}


def plot_confusion(labels: np.ndarray, probs: np.ndarray, path: Path, title: str) -> None:
    cm = skm.confusion_matrix(labels.astype(int), (probs >= 0.5).astype(int), labels=[0, 1])
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, f"{v}", ha="center", va="center",
                color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks([0, 1], ["negative", "positive"])
    ax.set_yticks([0, 1], ["negative", "positive"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
