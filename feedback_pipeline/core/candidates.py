"""What the selection experiment trains and scores: a candidate is an interface.

A candidate is trained on (base pairs + one arm's accepted pairs) and scored on the frozen
evaluation set. It returns a credit in [0, 1] per frozen item, or NaN where it cannot judge
that item, so two kinds of evidence sit side by side: the built-in preference model is scored
on the frozen items' human A/B outcomes (it runs everywhere, in seconds), and the DPO policy
(`feedback_pipeline.training`, the `train` extra) generates answers that are scored on the
frozen fixtures' expected checks.
"""

from __future__ import annotations

from importlib import import_module
from typing import Protocol

import numpy as np
import pandas as pd

from feedback_pipeline.core.preference_model import PreferenceModel

TRAIN_COLUMNS = ("prompt", "chosen", "rejected")
EVALUATION_COLUMNS = ("trace_id", "prompt", "text_a", "text_b", "label", "slice", "checks")


class Candidate(Protocol):
    """Trains on `train` (prompt, chosen, rejected) and credits each `evaluation` row."""

    name: str

    def credit(self, train: pd.DataFrame, evaluation: pd.DataFrame, seed: int) -> np.ndarray:
        ...


class PreferenceModelCandidate:
    """The built-in candidate: the pairwise preference model of core.preference_model.

    Credit is 1 where it prefers the side humans chose, 0 for the other side and 0.5 when it
    cannot choose; frozen items without an A/B outcome (ties, both-bad, fixtures with checks
    only) are NaN. Untrained (no pairs at all) it scores 0.5 everywhere it can be scored.
    """

    name = "preference_model"

    def __init__(self, n_features: int = 2**18, C: float = 1.0) -> None:
        self.n_features = n_features
        self.C = C

    def credit(self, train: pd.DataFrame, evaluation: pd.DataFrame, seed: int) -> np.ndarray:
        labels = evaluation["label"].astype("string").fillna("")
        scored = labels.isin(["A", "B"]).to_numpy()
        out = np.full(len(evaluation), np.nan)
        if not scored.any():
            return out
        model = PreferenceModel(n_features=self.n_features, C=self.C, seed=seed).fit(
            train["prompt"].tolist(), train["chosen"].tolist(), train["rejected"].tolist())
        if not model.trained:
            out[scored] = 0.5
            return out
        rows = evaluation[scored]
        p_a = model.predict_proba_a(rows["prompt"].tolist(), rows["text_a"].tolist(),
                                    rows["text_b"].tolist())
        truth_a = labels[scored].to_numpy() == "A"
        credit = np.where((p_a > 0.5) == truth_a, 1.0, 0.0)
        out[scored] = np.where(p_a == 0.5, 0.5, credit)
        return out


EXPERIMENT_CANDIDATES = {
    "preference_model": "feedback_pipeline.core.candidates:PreferenceModelCandidate",
    "dpo_policy": "feedback_pipeline.training.dpo_candidate:DpoPolicyCandidate",
}
"""Names the policy's `experiment_candidates` may list. `dpo_policy` needs the `train` extra
(`pip install -e '.[train]'`); it is imported only when listed."""


def candidate_named(name: str) -> Candidate:
    """The candidate a policy names; an ImportError says which extra is missing."""
    if name not in EXPERIMENT_CANDIDATES:
        raise ValueError(f"unknown experiment candidate {name!r} (known: "
                         f"{', '.join(EXPERIMENT_CANDIDATES)})")
    module, _, attribute = EXPERIMENT_CANDIDATES[name].partition(":")
    try:
        factory = getattr(import_module(module), attribute)
        return factory()
    except ImportError as err:
        raise ImportError(f"experiment candidate {name!r} needs the train extra "
                          f"(pip install -e '.[train]'): {err}") from err
