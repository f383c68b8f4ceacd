"""Does the selector earn its keep? Hybrid against random on the frozen evaluation set.

Seed listing 08 and the steps before it: equal-sized batches, one random and one hybrid, are
labelled under the same rubric; comparable candidate models (same features, settings and seed,
each trained on the base pairs plus one batch) are scored on the frozen set's human labels,
overall and per slice. Gain and labels per percentage point are reported for both, and the
recommendation is "hybrid" only when its gain is strictly larger than random's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from feedback_pipeline.core.preference_model import PreferenceModel

ARMS = ("hybrid", "random")
TRAIN_COLUMNS = ("prompt", "chosen", "rejected")
EVAL_COLUMNS = ("prompt", "text_a", "text_b", "label")


def label_efficiency(
    accepted_labels: int, baseline_score: float, candidate_score: float
) -> tuple[float, float | None]:
    """(gain, labels per percentage point); the latter is None when nothing was gained."""
    gain = candidate_score - baseline_score
    per_point = accepted_labels / (gain * 100) if gain > 0 else None
    return gain, per_point


@dataclass
class ArmResult:
    name: str
    accepted_labels: int
    candidate_score: float
    gain: float
    labels_per_percentage_point: float | None


@dataclass
class ExperimentReport:
    """Scores of the baseline and both candidates on the frozen set, and the verdict."""

    baseline_score: float
    baseline_note: str
    arms: dict[str, ArmResult]
    recommendation: str
    reason: str
    n_eval: int
    by_slice: pd.DataFrame
    gain_difference_ci: tuple[float, float] | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """Flat, JSON-ready figures for asset metadata."""
        out: dict = {
            "baseline_score": self.baseline_score,
            "n_eval": self.n_eval,
            "recommendation": self.recommendation,
            "reason": self.reason,
        }
        for name, arm in self.arms.items():
            out[f"{name}_accepted_labels"] = arm.accepted_labels
            out[f"{name}_candidate_score"] = arm.candidate_score
            out[f"{name}_gain"] = arm.gain
            out[f"{name}_labels_per_percentage_point"] = arm.labels_per_percentage_point
        if self.gain_difference_ci is not None:
            out["hybrid_minus_random_ci_low"], out["hybrid_minus_random_ci_high"] = (
                self.gain_difference_ci
            )
        return out

    def to_markdown(self) -> str:
        lines = [
            "| arm | accepted labels | score | gain | labels per point |",
            "|---|---|---|---|---|",
            f"| baseline | - | {self.baseline_score:.3f} | - | - |",
        ]
        for arm in self.arms.values():
            per_point = (
                "-"
                if arm.labels_per_percentage_point is None
                else f"{arm.labels_per_percentage_point:.1f}"
            )
            lines.append(
                f"| {arm.name} | {arm.accepted_labels} | {arm.candidate_score:.3f} | "
                f"{arm.gain:+.3f} | {per_point} |"
            )
        lines += ["", f"**Recommendation: {self.recommendation}.** {self.reason}"]
        lines += [f"- {note}" for note in [self.baseline_note, *self.notes] if note]
        return "\n".join(lines)


def _require(frame: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing columns {missing}")


def _credit(p_a: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1 for a correct side, 0 for the wrong one, 0.5 when the model cannot choose."""
    predicted_a = p_a > 0.5
    credit = np.where(predicted_a == (labels == "A"), 1.0, 0.0)
    return np.where(p_a == 0.5, 0.5, credit)


def selection_experiment(
    train_hybrid: pd.DataFrame,
    train_random: pd.DataFrame,
    frozen_eval: pd.DataFrame,
    base_train: pd.DataFrame | None = None,
    seed: int = 0,
    *,
    n_features: int = 2**18,
    C: float = 1.0,
    bootstrap: int = 1000,
) -> ExperimentReport:
    """Train base+hybrid and base+random candidates and compare them on the frozen set.

    Only frozen rows labelled A or B count (a tie or both-bad has no side to predict). With no
    base pairs the baseline is an untrained model, scored as chance (0.5). The paired bootstrap
    interval of (hybrid gain - random gain) over frozen items is reported so a reader can see
    when the difference is noise; the recommendation rule itself is the seed's: strictly better.
    """
    _require(train_hybrid, TRAIN_COLUMNS, "train_hybrid")
    _require(train_random, TRAIN_COLUMNS, "train_random")
    _require(frozen_eval, EVAL_COLUMNS, "frozen_eval")
    base = base_train if base_train is not None else pd.DataFrame(columns=list(TRAIN_COLUMNS))
    _require(base, TRAIN_COLUMNS, "base_train")

    labels = frozen_eval["label"].astype("string")
    scored = frozen_eval[labels.isin(["A", "B"]).fillna(False)].reset_index(drop=True)
    notes: list[str] = []
    skipped = len(frozen_eval) - len(scored)
    if skipped:
        notes.append(f"{skipped} frozen items labelled TIE/BOTH_BAD or unlabelled are not scored")
    if scored.empty:
        raise ValueError("frozen_eval has no items labelled A or B to score against")
    truth = scored["label"].astype(str).to_numpy()
    slices = (
        scored["slice"].astype("string").fillna("(none)").to_numpy()
        if "slice" in scored.columns
        else np.full(len(scored), "(none)")
    )

    def train(frame: pd.DataFrame) -> PreferenceModel:
        model = PreferenceModel(n_features=n_features, C=C, seed=seed)
        return model.fit(frame["prompt"], frame["chosen"], frame["rejected"])

    def credit_of(model: PreferenceModel) -> np.ndarray:
        if not model.trained:
            return np.full(len(scored), 0.5)
        p_a = model.predict_proba_a(scored["prompt"], scored["text_a"], scored["text_b"])
        return _credit(p_a, truth)

    base_model = train(base)
    baseline_credit = credit_of(base_model)
    baseline_note = (
        f"baseline trained on {base_model.n_train} base pairs"
        if base_model.trained
        else "no base pairs: baseline is an untrained model scored as chance (0.5)"
    )
    baseline_score = float(baseline_credit.mean())

    arms: dict[str, ArmResult] = {}
    credits: dict[str, np.ndarray] = {}
    for name, batch in (("hybrid", train_hybrid), ("random", train_random)):
        combined = pd.concat(
            [base[list(TRAIN_COLUMNS)], batch[list(TRAIN_COLUMNS)]], ignore_index=True
        )
        credits[name] = credit_of(train(combined))
        score = float(credits[name].mean())
        gain, per_point = label_efficiency(len(batch), baseline_score, score)
        arms[name] = ArmResult(name, len(batch), score, gain, per_point)
    if arms["hybrid"].accepted_labels != arms["random"].accepted_labels:
        notes.append(
            f"batches yielded different accepted labels (hybrid {arms['hybrid'].accepted_labels}, "
            f"random {arms['random'].accepted_labels}); compare labels per percentage point"
        )

    hybrid_gain, random_gain = arms["hybrid"].gain, arms["random"].gain
    if hybrid_gain > random_gain:
        recommendation = "hybrid"
        reason = (
            f"hybrid gained {hybrid_gain * 100:+.1f} points against random's "
            f"{random_gain * 100:+.1f} on {len(scored)} frozen items; keep hybrid selection"
        )
    else:
        recommendation = "random"
        reason = (
            f"hybrid selection did not beat random sampling on the frozen evaluation set "
            f"(hybrid gain {hybrid_gain * 100:+.1f} points, random {random_gain * 100:+.1f}); "
            "falling back to random selection"
        )

    ci = None
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        diff = credits["hybrid"] - credits["random"]
        means = np.concatenate(
            [
                diff[
                    rng.integers(0, len(diff), size=(min(100, bootstrap - start), len(diff)))
                ].mean(axis=1)
                for start in range(0, bootstrap, 100)
            ]
        )
        ci = (float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975)))

    per_slice = pd.DataFrame(
        {
            "slice": slices,
            "baseline": baseline_credit,
            "hybrid": credits["hybrid"],
            "random": credits["random"],
        }
    )
    by_slice = (
        per_slice.groupby("slice", sort=True)
        .agg(
            n=("baseline", "size"),
            baseline_score=("baseline", "mean"),
            hybrid_score=("hybrid", "mean"),
            random_score=("random", "mean"),
        )
        .reset_index()
    )
    by_slice["hybrid_gain"] = by_slice["hybrid_score"] - by_slice["baseline_score"]
    by_slice["random_gain"] = by_slice["random_score"] - by_slice["baseline_score"]

    return ExperimentReport(
        baseline_score=baseline_score,
        baseline_note=baseline_note,
        arms=arms,
        recommendation=recommendation,
        reason=reason,
        n_eval=len(scored),
        by_slice=by_slice,
        gain_difference_ci=ci,
        notes=notes,
    )
