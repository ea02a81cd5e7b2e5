"""The TF-IDF baseline's DVC output repeats byte for byte (pipeline/stages/train_baseline.py)."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

FIT = r"""
import hashlib, pickle, sys
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from pipeline.baseline import pipeline_bytes
texts = ["a good film", "a bad film", "good good fun", "bad bad plot", "a dull plot", "fun"]
labels = [1, 0, 1, 0, 0, 1]
vectorizer = TfidfVectorizer(token_pattern=r"\S+", ngram_range=(1, 2), min_df=1)
clf = LogisticRegression(solver="liblinear").fit(vectorizer.fit_transform(texts), labels)
sys.stdout.buffer.write(pipeline_bytes(vectorizer, clf))
"""


def _fit_in_new_process(hash_seed: str) -> bytes:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", FIT], env=env, cwd=REPO, check=True,
                          capture_output=True, timeout=120).stdout


def test_the_pickled_baseline_is_the_same_bytes_in_every_process():
    first, second = _fit_in_new_process("1"), _fit_in_new_process("2")
    assert first == second
    model = pickle.loads(first)  # and it still works without scikit-learn's cache
    assert list(model.predict(["good fun", "bad plot"])) == [1, 0]
