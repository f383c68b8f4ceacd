"""A small preference model: p(A is better) for a prompt and two answers.

Logistic regression without intercept on the difference of hashed answer features,
phi(prompt, A) - phi(prompt, B), so p(A, B) = 1 - p(B, A) holds exactly and answer order
cannot bias it. Features that depend on the prompt alone cancel in that difference; the prompt
enters through how much of it each answer takes up (token overlap). The hashing vectorizer is
stateless, so a saved model is just its weights and settings: no pickle is loaded back.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from feedback_pipeline.core.selection import (
    NO_MODEL_NOTE,
    entropy,
    hashing_vectorizer,
    text_words,
    with_bigrams,
)

FORMAT = "feedback-pipeline-preference-model/1"
PREDICT_BATCH = 50_000


def _texts(values: Sequence[str], n: int | None = None) -> list[str]:
    docs = [
        "" if v is None or (np.isscalar(v) and pd.isna(v)) or v is pd.NA else str(v) for v in values
    ]
    if n is not None and len(docs) != n:
        raise ValueError(f"expected {n} texts, got {len(docs)}")
    return docs


class PreferenceModel:
    """Pairwise preference model trained on accepted (prompt, chosen, rejected) rows."""

    def __init__(self, n_features: int = 2**18, C: float = 1.0, seed: int = 0) -> None:
        if n_features < 2:
            raise ValueError("n_features must be at least 2")
        self.n_features = int(n_features)
        self.C = float(C)
        self.seed = int(seed)
        self._coef: np.ndarray | None = None
        self._n_train = 0

    @property
    def trained(self) -> bool:
        return self._coef is not None

    @property
    def n_train(self) -> int:
        return self._n_train

    def _features(self, prompt_words: list[set[str]], answers: list[str]) -> sp.csr_matrix:
        """Hashed answer n-grams, the answer's length and the share of the prompt's words it
        uses; each answer is split into words once, for the hashing and both figures."""
        if not answers:
            return sp.csr_matrix((0, self.n_features + 2), dtype=np.float64)
        words = [text_words(answer) for answer in answers]
        hashed = hashing_vectorizer(self.n_features, with_bigrams).transform(words)
        dense = np.empty((len(answers), 2), dtype=np.float64)
        for i, (prompt_tokens, answer_tokens) in enumerate(zip(prompt_words, words,
                                                                strict=True)):
            dense[i, 0] = math.log1p(len(answer_tokens)) / 5.0
            dense[i, 1] = (
                len(prompt_tokens.intersection(answer_tokens)) / len(prompt_tokens)
                if prompt_tokens
                else 0.0
            )
        return sp.hstack([hashed, sp.csr_matrix(dense)], format="csr")

    def _difference(self, prompts: list[str], text_a: list[str],
                    text_b: list[str]) -> sp.csr_matrix:
        """Features of A minus features of B, the prompt's words found once for both."""
        prompt_words = [set(text_words(prompt)) for prompt in prompts]
        return self._features(prompt_words, text_a) - self._features(prompt_words, text_b)

    def fit(self, prompts, chosen, rejected) -> PreferenceModel:
        """Train on both orders of every pair; with no pairs the model stays untrained."""
        p = _texts(prompts)
        diff = self._difference(p, _texts(chosen, len(p)), _texts(rejected, len(p)))
        self._n_train = diff.shape[0]
        if diff.shape[0] == 0:
            self._coef = None
            return self
        from sklearn.linear_model import LogisticRegression

        x = sp.vstack([diff, -diff], format="csr")
        y = np.concatenate([np.ones(diff.shape[0]), np.zeros(diff.shape[0])])
        clf = LogisticRegression(
            C=self.C, fit_intercept=False, solver="liblinear", random_state=self.seed, max_iter=1000
        )
        clf.fit(x, y)
        self._coef = clf.coef_.ravel().astype(np.float64)
        return self

    def predict_proba_a(self, prompts, text_a, text_b, *,
                        batch_rows: int = PREDICT_BATCH) -> np.ndarray:
        """p(A is better) per row; raises if the model has never been trained."""
        if self._coef is None:
            raise RuntimeError("preference model is not trained (no accepted preference pairs)")
        p = _texts(prompts)
        a = _texts(text_a, len(p))
        b = _texts(text_b, len(p))
        logits = np.empty(len(p), dtype=np.float64)
        for start in range(0, len(p), batch_rows):
            stop = start + batch_rows
            diff = self._difference(p[start:stop], a[start:stop], b[start:stop])
            logits[start:stop] = diff @ self._coef
        return 1.0 / (1.0 + np.exp(-logits))

    def save(self, path: str | Path) -> Path:
        """Write weights and settings as .npz (no pickle), atomically, e.g. for a parent dataset."""
        path = Path(path)
        meta = {
            "format": FORMAT,
            "n_features": self.n_features,
            "C": self.C,
            "seed": self.seed,
            "n_train": self._n_train,
            "trained": self.trained,
        }
        coef = self._coef if self._coef is not None else np.zeros(0)
        partial = path.with_name(f".{path.name}.partial")
        with partial.open("wb") as handle:
            np.savez_compressed(handle, meta=np.array(json.dumps(meta)), coef=coef)
        os.replace(partial, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> PreferenceModel:
        with np.load(Path(path), allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            coef = np.array(data["coef"], dtype=np.float64)
        if meta.get("format") != FORMAT:
            raise ValueError(f"not a preference model file (format {meta.get('format')!r})")
        model = cls(n_features=meta["n_features"], C=meta["C"], seed=meta["seed"])
        model._n_train = int(meta["n_train"])
        model._coef = coef if meta["trained"] else None
        return model


def uncertainty_for(
    model: PreferenceModel | None, prompts, text_a, text_b
) -> tuple[np.ndarray | None, str]:
    """Entropy of p(A better) per pair, or (None, note) telling the stage to select at random."""
    if model is None or not model.trained:
        return None, NO_MODEL_NOTE
    p_a = model.predict_proba_a(prompts, text_a, text_b)
    return np.asarray(entropy(p_a), dtype=np.float64), (
        f"preference model trained on {model.n_train} accepted pairs"
    )
