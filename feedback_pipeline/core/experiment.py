"""Does the selector earn its keep? Hybrid against random on the frozen evaluation set.

Seed listing 08 and the steps before it: equal-sized batches, one random and one hybrid, are
labelled under the same rubric; comparable candidates (same features, settings and seed, each
trained on the base pairs plus one arm) are scored on the frozen set, overall and per slice.
Gain, labels per percentage point and review cost (reviewer seconds per accepted label and per
point of gain) are reported for both. The verdict is the seed's: "hybrid" only when its gain is
strictly larger than random's, otherwise return to the simpler baseline. Beside it stands the
evidence: a paired bootstrap interval of the gain difference over frozen items, and "not
enough evidence" when that interval holds zero or the frozen set is too small to tell.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from feedback_pipeline.core.candidates import Candidate, PreferenceModelCandidate

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
    issued: int | None = None
    review_seconds: float | None = None

    @property
    def seconds_per_accepted_label(self) -> float | None:
        if self.review_seconds is None or not self.accepted_labels:
            return None
        return self.review_seconds / self.accepted_labels

    @property
    def seconds_per_point(self) -> float | None:
        if self.review_seconds is None or self.gain <= 0:
            return None
        return self.review_seconds / (self.gain * 100)


NOT_ENOUGH = "not enough evidence"


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
    evidence: str = NOT_ENOUGH
    candidate: str = PreferenceModelCandidate.name
    scope: str = "all rounds"

    def summary(self) -> dict:
        """Flat, JSON-ready figures for asset metadata."""
        out: dict = {
            "baseline_score": self.baseline_score,
            "n_eval": self.n_eval,
            "recommendation": self.recommendation,
            "reason": self.reason,
            "evidence": self.evidence,
        }
        for name, arm in self.arms.items():
            out[f"{name}_accepted_labels"] = arm.accepted_labels
            out[f"{name}_seconds_per_accepted_label"] = arm.seconds_per_accepted_label
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
            "| arm | issued | accepted labels | score | gain | labels per point | "
            "review s per label | review s per point |",
            "|---|---|---|---|---|---|---|---|",
            f"| baseline | - | - | {self.baseline_score:.3f} | - | - | - | - |",
        ]
        for arm in self.arms.values():
            lines.append(
                f"| {arm.name} | {_shown(arm.issued, '{}')} | {arm.accepted_labels} | "
                f"{arm.candidate_score:.3f} | {arm.gain:+.3f} | "
                f"{_shown(arm.labels_per_percentage_point)} | "
                f"{_shown(arm.seconds_per_accepted_label)} | {_shown(arm.seconds_per_point)} |"
            )
        ci = self.gain_difference_ci
        lines += ["", f"**Recommendation: {self.recommendation}.** {self.reason}",
                  f"Evidence: {self.evidence}" + (
                      f" (hybrid - random gain, 95% interval {ci[0] * 100:+.1f} to "
                      f"{ci[1] * 100:+.1f} points over {self.n_eval} frozen items)"
                      if ci is not None else "")]
        lines += [f"- {note}" for note in [self.baseline_note, *self.notes] if note]
        return "\n".join(lines)


def _shown(value: float | int | None, pattern: str = "{:.1f}") -> str:
    return "-" if value is None else pattern.format(value)


def _require(frame: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing columns {missing}")


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
    """compare_arms with the built-in preference-model candidate on human A/B outcomes.

    Only frozen rows labelled A or B count (a tie or both-bad has no side to predict). With no
    base pairs the baseline is an untrained model, scored as chance (0.5).
    """
    _require(frozen_eval, EVAL_COLUMNS, "frozen_eval")
    return compare_arms(
        {"hybrid": train_hybrid, "random": train_random}, frozen_eval,
        PreferenceModelCandidate(n_features=n_features, C=C), base_train, seed,
        bootstrap=bootstrap, min_eval_items=1)


def compare_arms(
    arms: dict[str, pd.DataFrame],
    evaluation: pd.DataFrame,
    candidate: Candidate,
    base_train: pd.DataFrame | None = None,
    seed: int = 0,
    *,
    issued: dict[str, int] | None = None,
    review_seconds: dict[str, float | None] | None = None,
    bootstrap: int = 1000,
    min_eval_items: int = 20,
    slice_groups: dict[str, list[str]] | None = None,
    scope: str = "all rounds",
    baseline_credit: np.ndarray | None = None,
) -> ExperimentReport:
    """Train base, base + hybrid and base + random candidates; score them on the frozen set.

    `arms` maps "hybrid" and "random" to their accepted pairs (prompt, chosen, rejected);
    `evaluation` holds the frozen items (core.candidates.EVALUATION_COLUMNS; `checks` optional).
    The items the candidate cannot score (NaN credit) are left out and said so.
    `slice_groups` names slices that matter beyond their share (e.g. safety:
    [prompt-injection]); each group gets its own row in `by_slice`. `baseline_credit`, when
    given, is the candidate's credit trained on `base_train` alone (scopes that share a base
    share it: the baseline is trained once).
    """
    for name in ARMS:
        _require(arms[name], TRAIN_COLUMNS, f"train_{name}")
    base = base_train if base_train is not None else pd.DataFrame(columns=list(TRAIN_COLUMNS))
    _require(base, TRAIN_COLUMNS, "base_train")
    evaluation = evaluation.reset_index(drop=True)
    if "checks" not in evaluation.columns:
        evaluation = evaluation.assign(checks=None)
    if "slice" not in evaluation.columns:
        evaluation = evaluation.assign(slice=None)

    def train_on(*frames: pd.DataFrame) -> pd.DataFrame:
        return pd.concat([f[list(TRAIN_COLUMNS)] for f in frames], ignore_index=True)

    baseline_all = np.asarray(candidate.credit(train_on(base), evaluation, seed)
                              if baseline_credit is None else baseline_credit, dtype=float)
    scored = ~np.isnan(baseline_all)
    notes: list[str] = []
    skipped = int((~scored).sum())
    if skipped:
        notes.append(f"{skipped} frozen items labelled TIE/BOTH_BAD or unlabelled are not "
                     f"scored by {candidate.name}")
    if not scored.any():
        raise ValueError("frozen_eval has no items labelled A or B to score against"
                         if candidate.name == PreferenceModelCandidate.name else
                         f"no frozen item can be scored by {candidate.name}")
    baseline_credit = baseline_all[scored]
    baseline_score = float(baseline_credit.mean())
    baseline_note = (f"baseline trained on {len(base)} base pairs" if len(base) else
                     "no base pairs: baseline is an untrained model scored as chance (0.5)"
                     if candidate.name == PreferenceModelCandidate.name else
                     "no base pairs: baseline is the untrained candidate")

    results: dict[str, ArmResult] = {}
    credits: dict[str, np.ndarray] = {}
    for name in ARMS:
        credit = np.asarray(candidate.credit(train_on(base, arms[name]), evaluation, seed),
                            dtype=float)[scored]
        credits[name] = np.nan_to_num(credit, nan=0.0)
        score = float(credits[name].mean())
        gain, per_point = label_efficiency(len(arms[name]), baseline_score, score)
        results[name] = ArmResult(name, len(arms[name]), score, gain, per_point,
                                  issued=(issued or {}).get(name),
                                  review_seconds=(review_seconds or {}).get(name))
    if results["hybrid"].accepted_labels != results["random"].accepted_labels:
        notes.append(
            f"batches yielded different accepted labels (hybrid "
            f"{results['hybrid'].accepted_labels}, random {results['random'].accepted_labels}); "
            "compare labels per percentage point")

    n_eval = int(scored.sum())
    recommendation, reason = _verdict(results, n_eval)
    ci = _paired_interval(credits["hybrid"] - credits["random"], bootstrap, seed)
    evidence = _evidence(ci, n_eval, min_eval_items)
    slices = evaluation.loc[scored, "slice"].astype("string").fillna("(none)").to_numpy()
    return ExperimentReport(
        baseline_score=baseline_score, baseline_note=baseline_note, arms=results,
        recommendation=recommendation, reason=reason, n_eval=n_eval,
        by_slice=_by_slice(slices, baseline_credit, credits, slice_groups or {}),
        gain_difference_ci=ci, notes=notes, evidence=evidence, candidate=candidate.name,
        scope=scope)


def _verdict(arms: dict[str, ArmResult], n_eval: int) -> tuple[str, str]:
    hybrid_gain, random_gain = arms["hybrid"].gain, arms["random"].gain
    if hybrid_gain > random_gain:
        return "hybrid", (f"hybrid gained {hybrid_gain * 100:+.1f} points against random's "
                          f"{random_gain * 100:+.1f} on {n_eval} frozen items; keep hybrid "
                          "selection")
    return "random", ("hybrid selection did not beat random sampling on the frozen evaluation "
                      f"set (hybrid gain {hybrid_gain * 100:+.1f} points, random "
                      f"{random_gain * 100:+.1f}); falling back to random selection")


def _paired_interval(diff: np.ndarray, bootstrap: int, seed: int) -> tuple[float, float] | None:
    """95% percentile interval of the mean paired credit difference over frozen items."""
    if bootstrap <= 0 or not len(diff):
        return None
    rng = np.random.default_rng(seed)
    means = np.concatenate([
        diff[rng.integers(0, len(diff), size=(min(100, bootstrap - start), len(diff)))
             ].mean(axis=1)
        for start in range(0, bootstrap, 100)])
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def _evidence(ci: tuple[float, float] | None, n_eval: int, min_eval_items: int) -> str:
    if n_eval < min_eval_items:
        return (f"{NOT_ENOUGH}: {n_eval} frozen items can be scored, fewer than "
                f"min_eval_items {min_eval_items}")
    if ci is None:
        return f"{NOT_ENOUGH}: no interval was computed"
    if ci[0] > 0:
        return "hybrid better: the interval of the gain difference is above zero"
    if ci[1] < 0:
        return "random better: the interval of the gain difference is below zero"
    return f"{NOT_ENOUGH}: the interval of the gain difference holds zero"


def _by_slice(slices: np.ndarray, baseline: np.ndarray, credits: dict[str, np.ndarray],
              groups: dict[str, list[str]]) -> pd.DataFrame:
    per_item = pd.DataFrame({"slice": slices, "baseline": baseline,
                             "hybrid": credits["hybrid"], "random": credits["random"]})
    named = [per_item.assign(slice=per_item["slice"])]
    for group, members in groups.items():
        chosen = per_item[per_item["slice"].isin(list(members))]
        if len(chosen):
            named.append(chosen.assign(slice=f"{group} ({', '.join(members)})"))
    by_slice = (pd.concat(named, ignore_index=True).groupby("slice", sort=True)
                .agg(n=("baseline", "size"), baseline_score=("baseline", "mean"),
                     hybrid_score=("hybrid", "mean"), random_score=("random", "mean"))
                .reset_index())
    by_slice["hybrid_gain"] = by_slice["hybrid_score"] - by_slice["baseline_score"]
    by_slice["random_gain"] = by_slice["random_score"] - by_slice["baseline_score"]
    return by_slice
