"""The agreement report: every coefficient per task type, slice and reviewer pair, the
gold check, the criterion diagnosis, their intervals and the gate value.

`agreement_report` turns the inputs into an `AgreementReport` (a flat summary plus tables);
`gate_value` reads the declared statistic (point or lower bound) for the release gate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from feedback_pipeline.core.agreement.statistics import (
    CI_LEVEL,
    FLEISS_METHOD,
    KAPPA_METHOD,
    PAIRWISE_LABELS,
    SCORE_LEVELS,
    SCORE_VALUES,
    _alpha_from_coincidences,
    _coincidences,
    _conger_kappa,
    _ItemTypes,
    _kappa_parts,
    _label_replicates,
    _label_table,
    _label_types,
    _LabelTable,
    _latest_per_reviewer,
    _package_alpha,
    _pair_counts,
    _pair_membership,
    _percentile_ci,
    _pooled_parts,
    _resample_weights,
    _reviewer_marginals,
    _reviewer_membership,
    _unit_codes,
)
from feedback_pipeline.core.rubric import CRITERIA_FIELDS

MIN_GOLD_ITEMS = 5
GOLD_FLAG_ALPHA = 0.05
GOLD_MISS_PRIOR = (1.0, 19.0)
"""Beta(alpha, beta) prior on the other reviewers' gold miss rate: a 5% prior miss rate worth
20 gold answers (policy ``gold_miss_prior``)."""
GATE_STATISTICS: dict[str, tuple[str, str]] = {
    "cohens_kappa": ("cohens_kappa", "kappa_ci_low"),
    "conger_kappa": ("conger_kappa", "conger_kappa_ci_low"),
    "fleiss_kappa": ("fleiss_kappa", "fleiss_kappa_ci_low"),
    "gwet_ac1": ("gwet_ac1", "gwet_ac1_ci_low"),
    "krippendorff_alpha_nominal": ("krippendorff_alpha_nominal", "alpha_nominal_ci_low"),
    "alpha_ordinal": ("alpha_ordinal", "alpha_ordinal_ci_low"),
    "alpha_interval": ("alpha_interval", "alpha_interval_ci_low"),
    "alpha_ratio": ("alpha_ratio", "alpha_ratio_ci_low"),
    "score_alpha_nominal": ("score_alpha_nominal", "score_alpha_nominal_ci_low"),
    "score_fleiss_kappa": ("score_fleiss_kappa", "score_fleiss_kappa_ci_low"),
}
"""Statistic name -> (point key, interval lower-bound key) in the summary. Every name is also
accepted by the policy's ``agreement_statistic`` (settings.AGREEMENT_STATISTICS)."""
SCORE_STATISTICS = frozenset({"alpha_ordinal", "alpha_interval", "alpha_ratio",
                              "score_alpha_nominal", "score_fleiss_kappa"})
# summary-key prefix of each label statistic's interval, bootstrap se / bias / defined count
_LABEL_CI_PREFIX = {"cohens_kappa": "kappa", "conger_kappa": "conger_kappa",
                    "fleiss_kappa": "fleiss_kappa", "gwet_ac1": "gwet_ac1",
                    "krippendorff_alpha_nominal": "alpha_nominal"}
STATISTIC_DEFINITIONS: dict[str, str] = {
    "cohens_kappa": "Cohen (1960): (p_o - p_e) / (1 - p_e), p_e from each of the two reviewers' "
    "own label shares; defined only for exactly two reviewers (None otherwise: see "
    "fleiss_kappa, conger_kappa); missing labels: only the items both reviewers rated count.",
    "conger_kappa": "Conger (1980) over within-item review pairs: p_o = share of agreeing pairs, "
    "p_e = mean over pairs of sum_c p_a(c) p_b(c), p_r reviewer r's own label shares; missing "
    "labels: only the pairs that exist count.",
    "fleiss_kappa": "Fleiss (1971): (P_bar - P_e) / (1 - P_e), one pooled label distribution; "
    "missing labels: " + FLEISS_METHOD + ".",
    "gwet_ac1": "Gwet (2008) AC1: (P_bar - p_e) / (1 - p_e), P_bar as Fleiss, p_e = 1/(q-1) "
    "sum_c pi_c (1 - pi_c), pi_c the mean over items of the share of ratings in c, q the "
    "number of declared labels; missing labels: items with n_i >= 2, each weighted equally.",
    "krippendorff_alpha_nominal": "Krippendorff's alpha, nominal distance: 1 - D_o / D_e from "
    "the coincidence matrix; missing labels: native (units with >= 2 values count).",
    "alpha_ordinal": "Krippendorff's alpha on 1-5 scores, ordinal distance (rank-based); "
    "missing scores: native (units with >= 2 values count).",
    "alpha_interval": "Krippendorff's alpha on 1-5 scores, interval distance (c - k)^2; "
    "missing scores: native (units with >= 2 values count).",
    "alpha_ratio": "Krippendorff's alpha on 1-5 scores, ratio distance ((c - k)/(c + k))^2; "
    "missing scores: native (units with >= 2 values count).",
    "score_alpha_nominal": "Krippendorff's alpha on 1-5 scores taken as nominal categories "
    "(any two different scores disagree equally); missing scores: native (units with >= 2 "
    "values count).",
    "score_fleiss_kappa": "Fleiss (1971) on 1-5 scores taken as nominal categories: (P_bar - "
    "P_e) / (1 - P_e), one pooled score distribution; missing scores: " + FLEISS_METHOD + ".",
}
PAIRWISE_COLUMNS = ["reviewer_a", "reviewer_b", "n_items", "observed", "chance", "kappa"]
SLICE_COLUMNS = [
    "slice",
    "n_items",
    "n_reviews",
    "n_reviewers",
    "observed",
    "kappa",
    "alpha",
    "disagreements",
    "disagreement_rate",
    "share_of_disagreements",
]
REVIEWER_COLUMNS = [
    "reviewer_id",
    "n_reviews",
    "duplicate_items",
    "agreement_with_others",
    "gold_items",
    "gold_misses",
    "gold_miss_rate",
    "others_miss_rate",
    "gold_baseline_rate",
    "gold_p_value",
    "flagged",
    "flag_reason",
]
CRITERION_COLUMNS = ["criterion", "n_disagreements", "share"]
MARKDOWN_ROWS = (  # (display name, summary key, interval key prefix, items key)
    ("Cohen's kappa", "cohens_kappa", "kappa_ci", "n_items"),
    ("Conger's kappa", "conger_kappa", "conger_kappa_ci", "n_items"),
    ("Fleiss' kappa", "fleiss_kappa", "fleiss_kappa_ci", "n_items"),
    ("Gwet's AC1", "gwet_ac1", "gwet_ac1_ci", "n_items"),
    ("Krippendorff's alpha", "krippendorff_alpha_nominal", "alpha_nominal_ci", "n_items"),
    ("Krippendorff's alpha", "alpha_ordinal", "alpha_ordinal_ci", "score_n_items"),
    ("Krippendorff's alpha", "alpha_interval", "alpha_interval_ci", "score_n_items"),
    ("Krippendorff's alpha", "alpha_ratio", "alpha_ratio_ci", "score_n_items"),
    ("Krippendorff's alpha", "score_alpha_nominal", "score_alpha_nominal_ci", "score_n_items"),
    ("Fleiss' kappa", "score_fleiss_kappa", "score_fleiss_kappa_ci", "score_n_items"),
)
@dataclass
class AgreementReport:
    summary: dict[str, Any]
    pairwise: pd.DataFrame
    by_slice: pd.DataFrame
    by_reviewer: pd.DataFrame
    by_criterion: pd.DataFrame

    def to_markdown(self) -> str:
        """A short human summary for the asset page: figures, gate inputs and where to look."""
        s = self.summary
        lines = ["## Reviewer agreement", ""]
        if not s["sufficient"]:
            lines += [f"**Insufficient to measure:** {s['insufficient_reason']}", ""]
        lines += [
            "| figure | value | 95% CI | level | items | reviewers |",
            "|---|---|---|---|---|---|",
        ]
        for name, key, ci, items in MARKDOWN_ROWS:
            if s.get(key) is None and key != "conger_kappa":
                continue
            reviewers = s["score_n_reviewers"] if items == "score_n_items" else s["n_reviewers"]
            lines.append(
                f"| {name} (`{key}`) | {format_figure(s.get(key))} | {format_figure(s.get(ci + '_low'))} to "
                f"{format_figure(s.get(ci + '_high'))} | {s[key + '_level']} | {s[items]} | "
                f"{reviewers} |"
            )
        if s.get("cohens_kappa_note"):
            lines += ["", f"Cohen's kappa: {s['cohens_kappa_note']}"]
        if s.get("gated_statistic"):
            lines += ["", f"Gated on `{s['gated_statistic']}`"
                      + (f": {s['gated_statistic_note']}." if s.get("gated_statistic_note")
                         else ".")]
        lines += [
            "",
            f"Conger's observed agreement {format_figure(s['observed_agreement'])}, chance agreement "
            f"{format_figure(s['chance_agreement'])} (`{s['kappa_method']}` over {s['kappa_pairs']} "
            f"reviewer pairs); Fleiss' chance agreement {format_figure(s.get('fleiss_chance_agreement'))} "
            f"({s['fleiss_kappa_method']}); Gwet's chance agreement "
            f"{format_figure(s.get('gwet_chance_agreement'))}. {s['bootstrap']} bootstrap replicates "
            f"over items (seed {s['seed']}).",
        ]
        if not s.get("score_sufficient", True) and s.get("score_insufficient_reason"):
            lines += ["", f"Score alphas: {s['score_insufficient_reason']}."]
        if s.get("demonstration_n_items"):
            lines += ["", f"Demonstrations: on {s['demonstration_n_items']} items reviewed more "
                      f"than once, the corrected answers all agree on "
                      f"{format_figure(s['demonstration_accept_rate'])} of them (95% CI "
                      f"{format_figure(s['demonstration_accept_rate_ci_low'])} to "
                      f"{format_figure(s['demonstration_accept_rate_ci_high'])}; accepted, the rest go "
                      f"to adjudication); {format_figure(s['demonstration_pair_agreement'])} of review "
                      "pairs agree."]
        if s.get("ci_warning"):
            lines += ["", f"**Interval warning:** {s['ci_warning']}."]
        lines += [
            "",
            "### Confusion matrix (pooled over reviewer pairs; rows reviewer_a, columns reviewer_b)",
            "",
            "| | " + " | ".join(s["labels"]) + " |",
            "|---" * (len(s["labels"]) + 1) + "|",
        ]
        for label, row in zip(s["labels"], s["confusion_matrix"], strict=True):
            lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
        if len(self.by_slice):
            lines += ["", "### By slice", "", "| slice | items | Conger's kappa | nominal alpha | disagreement rate |",
                      "|---|---|---|---|---|"]
            for r in self.by_slice.itertuples(index=False):
                lines.append(
                    f"| {r.slice} | {r.n_items} | {format_figure(r.kappa)} | {format_figure(r.alpha)} | "
                    f"{format_figure(r.disagreement_rate)} |"
                )
        flagged = self.by_reviewer[self.by_reviewer["flagged"]] if len(self.by_reviewer) else []
        if len(flagged):
            lines += ["", "### Reviewers flagged by the gold-item check", ""]
            lines += [f"- `{r.reviewer_id}`: {r.flag_reason}" for r in flagged.itertuples()]
        if len(self.by_criterion):
            lines += ["", "### Criteria the disagreements sit on", "",
                      "| criterion | disagreements | share |", "|---|---|---|"]
            for r in self.by_criterion.itertuples(index=False):
                lines.append(f"| {r.criterion} | {r.n_disagreements} | {format_figure(r.share)} |")
        return "\n".join(lines) + "\n"


def agreement_report(
    reviews: pd.DataFrame,
    *,
    gold: pd.DataFrame | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    min_items: int = 10,
    labels: Sequence[str] = PAIRWISE_LABELS,
    scores: pd.DataFrame | None = None,
    demonstrations: pd.DataFrame | None = None,
    gold_miss_prior: tuple[float, float] = GOLD_MISS_PRIOR,
) -> AgreementReport:
    """Agreement, its uncertainty and its diagnosis for one batch of reviews (see module doc).

    ``reviews`` holds label rows (``label``) and may hold score rows (``score``); ``scores``,
    when given, holds the pointwise score rows separately (trace_id, candidate_id,
    reviewer_id, score: see ``pointwise_scores``) and is what the score alphas use;
    ``demonstrations`` (DEMONSTRATION_COLUMNS) what the demonstration figures use."""
    if "label" not in reviews.columns and "score" in reviews.columns:
        reviews = reviews.assign(label=None)
    missing = {"trace_id", "reviewer_id", "label"} - set(reviews.columns)
    if missing:
        raise ValueError(f"reviews lack columns {sorted(missing)}")
    if bootstrap < 0:
        raise ValueError("bootstrap must be >= 0")
    labels = tuple(labels)
    rng = np.random.default_rng(seed)
    frame, dropped = _latest_per_reviewer(reviews)
    score_frame = frame
    if scores is not None:
        missing = {"trace_id", "reviewer_id", "score"} - set(scores.columns)
        if missing:
            raise ValueError(f"scores lack columns {sorted(missing)}")
        score_frame, score_dropped = _latest_per_reviewer(scores)
        dropped += score_dropped
    label_rows = frame[frame["label"].notna()]
    table = _label_table(label_rows, labels)
    summary: dict[str, Any] = {
        "kappa_method": KAPPA_METHOD,
        "dedup_rule": "latest review per (reviewer, item): by reviewed_at if present, "
        "else last in input order",
        "self_duplicates_dropped": dropped,
        "n_reviews": int(len(frame)),
        "n_label_reviews": int(len(label_rows)),
        "n_reviewers": table.n_reviewers,
        "labels": list(labels),
        "bootstrap": int(bootstrap),
        "seed": int(seed),
        "ci_level": CI_LEVEL,
        "ci_method": "percentile bootstrap, items resampled with replacement",
        "min_items": int(min_items),
        "cohens_kappa_level": "nominal",
        "conger_kappa_level": "nominal",
        "fleiss_kappa_level": "nominal",
        "gwet_ac1_level": "nominal",
        "krippendorff_alpha_nominal_level": "nominal",
        "alpha_ordinal_level": "ordinal",
        "alpha_interval_level": "interval",
        "alpha_ratio_level": "ratio",
        "score_alpha_nominal_level": "nominal",
        "score_fleiss_kappa_level": "nominal",
        "statistic_definitions": dict(STATISTIC_DEFINITIONS),
        "gated_statistic": None,
        "gated_statistic_note": None,
        "gated_statistic_level": None,
    }
    counts = _pair_counts(table, len(labels))
    summary.update(_label_figures(table, counts, bootstrap, rng))
    summary.update(_score_figures(score_frame, bootstrap, rng))
    if demonstrations is not None and not demonstrations.empty:
        demonstrations = _latest_per_reviewer(demonstrations)[0]
    summary.update(_demonstration_figures(demonstrations, bootstrap, rng))
    summary.update(_sufficiency(summary, min_items))
    pairwise = _pairwise_table(table, counts)
    by_slice = _slice_table(table, labels)
    by_reviewer = _reviewer_table(frame, table, gold, labels, gold_miss_prior)
    by_criterion, criteria_meta = _criterion_table(table, label_rows)
    summary.update(criteria_meta)
    summary["n_flagged_reviewers"] = int(by_reviewer["flagged"].sum()) if len(by_reviewer) else 0
    summary["gold_miss_prior"] = [float(v) for v in gold_miss_prior]
    return AgreementReport(_jsonable(summary), pairwise, by_slice, by_reviewer, by_criterion)


def gate_value(
    report: AgreementReport, statistic: str = "cohens_kappa", on: str = "point"
) -> float | None:
    """The figure a gate compares with its threshold; None when it cannot be measured.

    Label statistics need ``sufficient``; the score alphas need ``score_sufficient``; the
    matching ``*insufficient_reason`` says why not. ``cohens_kappa`` is undefined for more than
    two reviewers, so a gate declared on it then uses ``conger_kappa`` (what this pipeline has
    always gated on); ``report.summary`` records the name actually used in ``gated_statistic``
    and why in ``gated_statistic_note``."""
    if statistic not in GATE_STATISTICS:
        raise ValueError(f"statistic must be one of {sorted(GATE_STATISTICS)}, got {statistic!r}")
    if on not in ("point", "lower_bound"):
        raise ValueError(f"on must be 'point' or 'lower_bound', got {on!r}")
    used, note = statistic, None
    summary = report.summary
    if statistic == "cohens_kappa" and summary.get("n_reviewers", 0) > 2:
        used = "conger_kappa"
        note = (f"cohens_kappa is defined for two reviewers only; with "
                f"{summary['n_reviewers']} reviewers the gate uses conger_kappa, its "
                f"multi-reviewer generalisation (declare fleiss_kappa, conger_kappa, gwet_ac1 "
                f"or krippendorff_alpha_nominal to name the statistic explicitly)")
    summary["gated_statistic"] = used
    summary["gated_statistic_note"] = note
    summary["gated_statistic_level"] = summary.get(f"{used}_level")
    scored = used in SCORE_STATISTICS
    if not summary.get("score_sufficient" if scored else "sufficient"):
        return None
    point_key, low_key = GATE_STATISTICS[used]
    value = summary.get(point_key if on == "point" else low_key)
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _label_figures(
    table: _LabelTable, counts: np.ndarray, bootstrap: int, rng: np.random.Generator
) -> dict[str, Any]:
    n_pairs, n_labels = counts.shape[0], counts.shape[1]
    po, pe, kappa = _conger_kappa(counts, _reviewer_marginals(table), table.pair_reviewers)
    undefined = int(np.isnan(_kappa_parts(counts)[2]).sum()) if n_pairs else 0
    domain = list(range(n_labels))
    alpha = _package_alpha(table.value_counts, "nominal", domain)
    p_bar, fleiss_pe, fleiss, gwet_pe, gwet = (
        (float(v[0]) for v in _pooled_parts(table.value_counts)) if table.n_items
        else (math.nan,) * 5)
    two = table.n_reviewers == 2
    shared = counts.sum(axis=(1, 2))
    out: dict[str, Any] = {
        "n_items": table.n_items,
        "n_review_pairs": int(len(table.pair_id)),
        "kappa_pairs": n_pairs,
        "kappa_pairs_undefined": undefined,
        "kappa_median_pair_items": float(np.median(shared)) if n_pairs else 0.0,
        "kappa_pairs_level": "per reviewer pair: Cohen's kappa on shared items",
        "observed_agreement": _num(po),
        "chance_agreement": _num(pe),
        "cohens_kappa": _num(kappa) if two else None,
        "cohens_kappa_note": None if two or table.n_items == 0 else (
            f"Cohen's kappa is defined for exactly two reviewers; these duplicate items have "
            f"{table.n_reviewers}. See fleiss_kappa (pooled chance agreement) or conger_kappa "
            f"(each reviewer's own label shares)."),
        "conger_kappa": _num(kappa),
        "fleiss_kappa": _num(fleiss),
        "fleiss_kappa_method": FLEISS_METHOD,
        "fleiss_observed_agreement": _num(p_bar),
        "fleiss_chance_agreement": _num(fleiss_pe),
        "gwet_ac1": _num(gwet),
        "gwet_chance_agreement": _num(gwet_pe),
        "gwet_ac1_categories": n_labels,
        "krippendorff_alpha_nominal": _num(alpha),
        "confusion_matrix": counts.sum(axis=0).astype(int).tolist(),
        "ci_warning": None,
    }
    for prefix in _LABEL_CI_PREFIX.values():
        out.update({f"{prefix}_ci_low": None, f"{prefix}_ci_high": None,
                    f"{prefix}_bootstrap_se": None, f"{prefix}_bootstrap_bias": None,
                    f"{prefix}_bootstrap_defined": 0})
    if bootstrap == 0 or table.n_items == 0:
        return out
    width = n_pairs * n_labels * n_labels
    types = _label_types(table)
    membership = _pair_membership(table, n_labels)[:, types.representative]
    reviewer_membership = _reviewer_membership(table)[:, types.representative]
    type_counts = table.value_counts[types.representative]
    coincidences = _coincidences(type_counts)
    replicates: dict[str, list[np.ndarray]] = {name: [] for name in _LABEL_CI_PREFIX}
    for weights in _resample_weights(rng, types, bootstrap, width):
        k, a = _label_replicates(weights, membership, reviewer_membership, coincidences,
                                 table.pair_reviewers, n_labels)
        pooled = _pooled_parts(type_counts, weights)
        replicates["conger_kappa"].append(k)
        replicates["krippendorff_alpha_nominal"].append(a)
        replicates["fleiss_kappa"].append(pooled[2])
        replicates["gwet_ac1"].append(pooled[4])
    if two:
        replicates["cohens_kappa"] = replicates["conger_kappa"]
    notes = []
    for name, prefix in _LABEL_CI_PREFIX.items():
        if not replicates[name]:
            continue
        values = np.concatenate(replicates[name])
        point = out[name]
        low, high, defined = _percentile_ci(values)
        out.update({f"{prefix}_ci_low": low, f"{prefix}_ci_high": high,
                    f"{prefix}_bootstrap_defined": defined})
        if defined < 2 or point is None:
            continue
        finite = values[np.isfinite(values)]
        se, bias = float(finite.std(ddof=1)), float(finite.mean() - point)
        out.update({f"{prefix}_bootstrap_se": se, f"{prefix}_bootstrap_bias": bias})
        if abs(bias) > 0.5 * se and abs(bias) > 1e-3 and not (two and name == "cohens_kappa"):
            notes.append(f"{name} bootstrap bias {bias:+.4f} exceeds half its standard error "
                         f"{se:.4f}, so its percentile interval is shifted")
    if notes:
        out["ci_warning"] = "; ".join(notes)
    return out


def _score_figures(
    frame: pd.DataFrame, bootstrap: int, rng: np.random.Generator
) -> dict[str, Any]:
    """Krippendorff's alpha at each SCORE_LEVELS over (trace, candidate) items with >= 2
    scores, each with its item-resampling bootstrap interval."""
    out: dict[str, Any] = {"score_n_items": 0, "score_n_reviews": 0, "score_n_reviewers": 0,
                           "score_fleiss_observed_agreement": None,
                           "score_fleiss_chance_agreement": None}
    for name in _SCORE_KEYS.values():
        out.update({name: None, f"{name}_ci_low": None, f"{name}_ci_high": None,
                    f"{name}_bootstrap_defined": 0})
    if "score" not in frame.columns:
        return out
    rows = frame[frame["score"].notna()]
    if rows.empty:
        return out
    scores = pd.to_numeric(rows["score"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isin(scores, SCORE_VALUES)
    if bad.any():
        raise ValueError(f"scores outside {SCORE_VALUES}: {sorted(set(rows['score'][bad]))[:5]}")
    unit_code = _unit_codes(rows)
    value_counts = np.zeros((unit_code.max() + 1, len(SCORE_VALUES)), dtype=np.int64)
    np.add.at(value_counts, (unit_code, scores.astype(int) - SCORE_VALUES[0]), 1)
    pairable = value_counts.sum(axis=1) >= 2
    value_counts = value_counts[pairable]
    out.update(
        score_n_items=int(pairable.sum()),
        score_n_reviews=int(len(rows)),
        score_n_reviewers=int(pd.unique(
            rows["reviewer_id"].astype(str).to_numpy(dtype=object)[pairable[unit_code]]).size),
    )
    if not pairable.any():
        return out
    for level, name in _SCORE_KEYS.items():
        if level != "fleiss":
            out[name] = _num(_package_alpha(value_counts, level, SCORE_VALUES))
    p_bar, fleiss_pe, fleiss, _, _ = (float(v[0]) for v in _pooled_parts(value_counts))
    out.update(score_fleiss_kappa=_num(fleiss), score_fleiss_observed_agreement=_num(p_bar),
               score_fleiss_chance_agreement=_num(fleiss_pe))
    if bootstrap == 0:
        return out
    v = len(SCORE_VALUES)
    uniques, inverse = np.unique(value_counts, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    representative = np.zeros(len(uniques), dtype=np.int64)
    representative[inverse] = np.arange(len(inverse))
    types = _ItemTypes(inverse, np.bincount(inverse, minlength=len(uniques)), representative)
    coincidences = _coincidences(uniques)
    boots: dict[str, list[np.ndarray]] = {level: [] for level in _SCORE_KEYS}
    for weights in _resample_weights(rng, types, bootstrap, v * v):
        boot_o = (weights @ coincidences).reshape(-1, v, v)
        for level, store in boots.items():
            store.append(_pooled_parts(uniques, weights)[2] if level == "fleiss" else
                         _alpha_from_coincidences(boot_o, level, SCORE_VALUES))
    for level, store in boots.items():
        low, high, defined = _percentile_ci(np.concatenate(store))
        name = _SCORE_KEYS[level]
        out.update({f"{name}_ci_low": low, f"{name}_ci_high": high,
                    f"{name}_bootstrap_defined": defined})
    return out


_SCORE_KEYS = {**{level: f"alpha_{level}" for level in SCORE_LEVELS},
               "nominal": "score_alpha_nominal", "fleiss": "score_fleiss_kappa"}
"""Score figure -> summary key: alpha at each SCORE_LEVELS, nominal alpha and Fleiss' kappa
with the five scores taken as categories (Fleiss 1971's diagnoses are such a table)."""
"""What the demonstration figures read of a demonstration review: its answer as a key (the
answer with its whitespace collapsed, hashed: two reviewers agree when their corrected answers
are the same text, the rule resolution accepts a demonstration by)."""
def _demonstration_figures(frame: pd.DataFrame | None, bootstrap: int,
                           rng: np.random.Generator) -> dict[str, Any]:
    """Agreement on demonstrations over items with >= 2 reviews: the share of items whose
    answers all agree (`demonstration_accept_rate`: accepted, not sent to adjudication), with
    its item-resampling interval, and the share of within-item review pairs that agree."""
    out: dict[str, Any] = {"demonstration_n_items": 0, "demonstration_n_reviews": 0,
                           "demonstration_accept_rate": None,
                           "demonstration_accept_rate_ci_low": None,
                           "demonstration_accept_rate_ci_high": None,
                           "demonstration_pair_agreement": None}
    if frame is None or frame.empty:
        return out
    item = pd.factorize(frame["trace_id"].astype(str))[0]
    answer = pd.factorize(frame["answer_key"].astype(str))[0]
    per_answer = pd.DataFrame({"item": item, "answer": answer}).value_counts()
    counts = per_answer.to_numpy(dtype=np.int64)
    items = per_answer.index.get_level_values("item").to_numpy()
    n_i = np.bincount(items, weights=counts).astype(np.int64)
    agreeing = np.bincount(items, weights=counts * (counts - 1) / 2)
    distinct = np.bincount(items)
    keep = n_i >= 2
    if not keep.any():
        return out
    accepted = (distinct[keep] == 1).astype(float)
    pairs = n_i[keep] * (n_i[keep] - 1) / 2
    out.update(demonstration_n_items=int(keep.sum()),
               demonstration_n_reviews=int(n_i[keep].sum()),
               demonstration_accept_rate=float(accepted.mean()),
               demonstration_pair_agreement=float(agreeing[keep].sum() / pairs.sum()))
    if bootstrap == 0:
        return out
    profile = np.stack([accepted, pairs, agreeing[keep]], axis=1)
    uniques, inverse = np.unique(profile, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    representative = np.zeros(len(uniques), dtype=np.int64)
    representative[inverse] = np.arange(len(inverse))
    types = _ItemTypes(inverse, np.bincount(inverse, minlength=len(uniques)), representative)
    replicates = [weights @ uniques[:, 0] / weights.sum(axis=1)
                  for weights in _resample_weights(rng, types, bootstrap, len(uniques))]
    low, high, _ = _percentile_ci(np.concatenate(replicates))
    out.update(demonstration_accept_rate_ci_low=low, demonstration_accept_rate_ci_high=high)
    return out


def _sufficiency(summary: dict[str, Any], min_items: int) -> dict[str, Any]:
    """Whether the pairwise figures (and, separately, the score figures) can be gated on."""
    n = summary["n_items"]
    if n == 0:
        reason = "no duplicate-reviewed items: nothing to measure agreement on"
    elif n < min_items:
        reason = f"only {n} duplicate-reviewed items; {min_items} needed"
    elif summary["conger_kappa"] is None:
        reason = "kappa undefined: every duplicate review used the same label (chance agreement 1)"
    else:
        reason = None
    n_scores = summary["score_n_items"]
    if n_scores == 0:
        score_reason = "no duplicate-scored items"
    elif n_scores < min_items:
        score_reason = f"only {n_scores} duplicate-scored items; {min_items} needed"
    elif summary["alpha_interval"] is None:
        score_reason = "alpha undefined: every duplicate score was the same"
    else:
        score_reason = None
    return {"sufficient": reason is None, "insufficient_reason": reason,
            "score_sufficient": score_reason is None, "score_insufficient_reason": score_reason}


def _pairwise_table(table: _LabelTable, counts: np.ndarray) -> pd.DataFrame:
    """One row per reviewer pair sharing items; kappa as sklearn's, from the pair's matrix."""
    if len(counts) == 0:
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in PAIRWISE_COLUMNS})
    observed, chance, kappa = _kappa_parts(counts)
    return pd.DataFrame({
        "reviewer_a": table.reviewer_ids[table.pair_reviewers[:, 0]],
        "reviewer_b": table.reviewer_ids[table.pair_reviewers[:, 1]],
        "n_items": counts.sum(axis=(1, 2)).astype(np.int64),
        "observed": observed,
        "chance": chance,
        "kappa": kappa,
    })


def _slice_table(table: _LabelTable, labels: tuple[str, ...]) -> pd.DataFrame:
    if table.n_items == 0:
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in SLICE_COLUMNS})
    n_labels = len(labels)
    n_pairs = len(table.pair_reviewers)
    disagree_item = table.value_counts.max(axis=1) < table.value_counts.sum(axis=1)
    total_disagreements = int(disagree_item.sum())
    slice_codes, slice_names = pd.factorize(pd.Series(table.item_slice, dtype=object), sort=True)
    rows = []
    for s, name in enumerate(slice_names):
        in_slice = slice_codes == s
        pair_mask = in_slice[table.pair_item]
        cells = (table.pair_id[pair_mask] * n_labels * n_labels
                 + table.pair_a[pair_mask] * n_labels + table.pair_b[pair_mask])
        counts = np.bincount(cells, minlength=n_pairs * n_labels * n_labels).reshape(
            n_pairs, n_labels, n_labels).astype(float)
        review_mask = in_slice[table.review_item]
        po, _, kappa = _conger_kappa(counts, _reviewer_marginals(table, review_mask),
                                     table.pair_reviewers)
        n_dis = int(disagree_item[in_slice].sum())
        n_items = int(in_slice.sum())
        rows.append((
            str(name), n_items, int(review_mask.sum()),
            int(len(np.unique(table.review_reviewer[review_mask]))), _nan(po), _nan(kappa),
            _nan(_package_alpha(table.value_counts[in_slice], "nominal", range(n_labels))),
            n_dis, n_dis / n_items, n_dis / total_disagreements if total_disagreements else 0.0,
        ))
    out = pd.DataFrame(rows, columns=SLICE_COLUMNS)
    return out.sort_values(["disagreement_rate", "n_items"], ascending=[False, False],
                           ignore_index=True)


def _reviewer_table(
    frame: pd.DataFrame, table: _LabelTable, gold: pd.DataFrame | None, labels: tuple[str, ...],
    prior: tuple[float, float] = GOLD_MISS_PRIOR,
) -> pd.DataFrame:
    reviewers = np.asarray(sorted(frame["reviewer_id"].astype(str).unique()), dtype=object)
    out = pd.DataFrame({"reviewer_id": reviewers})
    out["n_reviews"] = (frame["reviewer_id"].astype(str).value_counts()
                        .reindex(reviewers).fillna(0).astype(int).to_numpy())
    dup = pd.Series(np.bincount(table.review_reviewer, minlength=len(table.reviewer_ids)),
                    index=table.reviewer_ids)
    out["duplicate_items"] = dup.reindex(reviewers).fillna(0).astype(int).to_numpy()
    agree = table.pair_a == table.pair_b
    both = np.concatenate([table.pair_reviewers[table.pair_id, 0],
                           table.pair_reviewers[table.pair_id, 1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = (np.bincount(both, weights=np.concatenate([agree, agree]).astype(float),
                            minlength=len(table.reviewer_ids))
                / np.bincount(both, minlength=len(table.reviewer_ids)))
    out["agreement_with_others"] = (pd.Series(rate, index=table.reviewer_ids)
                                    .reindex(reviewers).to_numpy(dtype=float))
    gold_items, misses = _gold_misses(frame, gold, labels, reviewers)
    out["gold_items"], out["gold_misses"] = gold_items, misses
    alpha, beta = _check_prior(prior)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["gold_miss_rate"] = np.where(gold_items > 0, misses / gold_items, np.nan)
        others_n = gold_items.sum() - gold_items
        others_misses = misses.sum() - misses
        others_rate = np.where(others_n > 0, others_misses / others_n, np.nan)
        # posterior mean under Beta(alpha, beta): never 0, so one miss is never p = 0
        baseline = np.where(others_n > 0, (others_misses + alpha) / (others_n + alpha + beta),
                            np.nan)
    out["others_miss_rate"] = others_rate
    out["gold_baseline_rate"] = baseline
    judged = (gold_items >= MIN_GOLD_ITEMS) & np.isfinite(baseline)
    p_value = np.full(len(reviewers), np.nan)
    p_value[judged] = stats.binom.sf(misses[judged] - 1, gold_items[judged], baseline[judged])
    out["gold_p_value"] = p_value
    n_tested = int(judged.sum())
    threshold = GOLD_FLAG_ALPHA / max(n_tested, 1)
    flagged = judged & (p_value < threshold) & (out["gold_miss_rate"].to_numpy() > baseline)
    out["flagged"] = flagged
    out["flag_reason"] = [
        (f"missed {m} of {n} gold items ({m / n:.0%}) vs {om} of {on} ({o:.0%}) for the other "
         f"reviewers, baseline {b:.1%} with a Beta({alpha:g}, {beta:g}) prior; one-sided "
         f"binomial p={p:.2g} < {GOLD_FLAG_ALPHA}/{n_tested} (Bonferroni)")
        if f else None
        for f, m, n, om, on, o, b, p in zip(flagged, misses, gold_items, others_misses,
                                            others_n, others_rate, baseline, p_value,
                                            strict=True)
    ]
    out["flag_reason"] = out["flag_reason"].astype(object)
    return out[REVIEWER_COLUMNS]


def _gold_misses(
    frame: pd.DataFrame, gold: pd.DataFrame | None, labels: tuple[str, ...],
    reviewers: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    zeros = np.zeros(len(reviewers), dtype=np.int64)
    if gold is None or gold.empty:
        return zeros, zeros.copy()
    missing = {"trace_id", "label"} - set(gold.columns)
    if missing:
        raise ValueError(f"gold lacks columns {sorted(missing)}")
    answers = gold[["trace_id", "label"]].astype(str).drop_duplicates()
    bad = sorted(set(answers["label"]) - set(labels))
    if bad:
        raise ValueError(f"gold labels outside {labels}: {bad[:5]}")
    conflicting = answers["trace_id"].duplicated(keep=False)
    if conflicting.any():
        raise ValueError(f"{int(conflicting.sum())} gold rows give one trace different labels")
    joined = _gold_join(frame, answers)
    per = joined.groupby("reviewer_id")["miss"].agg(["size", "sum"]).reindex(reviewers).fillna(0)
    return per["size"].to_numpy(dtype=np.int64), per["sum"].to_numpy(dtype=np.int64)


def _check_prior(prior: Sequence[float]) -> tuple[float, float]:
    alpha, beta = (float(v) for v in prior)
    if not (math.isfinite(alpha) and math.isfinite(beta) and alpha > 0 and beta > 0):
        raise ValueError(f"gold_miss_prior needs alpha > 0 and beta > 0, got {tuple(prior)}")
    return alpha, beta


def _gold_join(frame: pd.DataFrame, answers: pd.DataFrame) -> pd.DataFrame:
    """One row per labelled review of a gold trace: trace_id, reviewer_id, label,
    gold_label, miss (and reviewed_at when the reviews carry it)."""
    columns = ["trace_id", "reviewer_id", "label"]
    labelled = frame.loc[frame["label"].notna(), columns].astype(str)
    if "reviewed_at" in frame.columns:
        labelled["reviewed_at"] = pd.to_datetime(frame.loc[labelled.index, "reviewed_at"],
                                                 utc=True, errors="coerce", format="mixed")
    joined = labelled.merge(answers.rename(columns={"label": "gold_label"}), on="trace_id")
    joined["miss"] = joined["label"] != joined["gold_label"]
    return joined


def gold_answers(reviews: pd.DataFrame, gold: pd.DataFrame | None,
                 labels: Sequence[str] = PAIRWISE_LABELS) -> pd.DataFrame:
    """Each reviewer's answers on gold traces, as the gold check counts them (latest review
    per reviewer and trace): reviewer_id, trace_id, reviewed_at (NaT when unknown), miss.
    The input of the reviewer-standing rule (core.manifest.reviewer_standing)."""
    empty = pd.DataFrame({"reviewer_id": pd.Series(dtype=object),
                          "trace_id": pd.Series(dtype=object),
                          "reviewed_at": pd.Series(dtype="datetime64[us, UTC]"),
                          "miss": pd.Series(dtype=bool)})
    if gold is None or gold.empty or reviews.empty:
        return empty
    frame, _ = _latest_per_reviewer(reviews)
    reviewers = np.asarray(sorted(frame["reviewer_id"].astype(str).unique()), dtype=object)
    _gold_misses(frame, gold, tuple(labels), reviewers)  # validates the gold answers
    answers = gold[["trace_id", "label"]].astype(str).drop_duplicates()
    joined = _gold_join(frame, answers)
    if "reviewed_at" not in joined.columns:
        joined["reviewed_at"] = pd.NaT
    return joined[["reviewer_id", "trace_id", "reviewed_at", "miss"]].reset_index(drop=True)


def _criterion_table(
    table: _LabelTable, label_rows: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """For each disagreeing pair of reviews, which rubric fields the two reviewers marked
    differently on any candidate; share = pairs naming the field / pairs compared."""
    empty = pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in CRITERION_COLUMNS})
    disagree = np.flatnonzero(table.pair_a != table.pair_b)
    meta = {"criteria_pairs_compared": 0, "criteria_unparseable": 0}
    if "criteria_json" not in label_rows.columns or len(disagree) == 0:
        return empty, meta
    review_a, review_b = table.pair_review_a[disagree], table.pair_review_b[disagree]
    involved = np.unique(np.concatenate([review_a, review_b]))
    raw = label_rows["criteria_json"].loc[involved].to_numpy(dtype=object)
    text_code, texts = pd.factorize(pd.Series(raw, dtype=object).map(
        lambda v: json.dumps(v, sort_keys=True) if isinstance(v, dict) else (v or None)))
    parsed = [_criteria_masks(text) for text in texts]
    unparseable = np.array([m is None for m in parsed] + [True])
    meta["criteria_unparseable"] = int(unparseable[text_code[text_code >= 0]].sum())
    candidates, _ = pd.factorize(pd.Series([m[0] if m else () for m in parsed] + [()],
                                           dtype=object))
    width = max([len(m[1]) for m in parsed if m] + [1])
    masks = np.zeros((len(parsed) + 1, width), dtype=np.int64)
    for i, m in enumerate(parsed):
        if m:
            masks[i, : len(m[1])] = m[1]
    code_a = text_code[np.searchsorted(involved, review_a)]
    code_b = text_code[np.searchsorted(involved, review_b)]
    ok = ~unparseable[code_a] & ~unparseable[code_b]
    same = ok & (candidates[code_a] == candidates[code_b])
    differing = np.bitwise_or.reduce(masks[code_a[same]] ^ masks[code_b[same]], axis=1)
    odd = [_differing_fields(parsed[a], parsed[b])
           for a, b in zip(code_a[ok & ~same], code_b[ok & ~same], strict=True)]
    differing = np.concatenate([differing, np.asarray(odd, dtype=np.int64)])
    compared = int(ok.sum())
    meta["criteria_pairs_compared"] = compared
    if compared == 0:
        return empty, meta
    tally = [int(((differing >> bit) & 1).sum()) for bit in range(len(CRITERIA_FIELDS))]
    out = pd.DataFrame({"criterion": list(CRITERIA_FIELDS), "n_disagreements": tally})
    out["share"] = out["n_disagreements"] / compared
    return out.sort_values("n_disagreements", ascending=False, kind="stable",
                           ignore_index=True), meta


def _criteria_masks(text: Any) -> tuple[tuple[str, ...], tuple[int, ...]] | None:
    """(sorted candidate ids, one bit mask of CRITERIA_FIELDS per candidate) or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        return None
    ids = tuple(sorted(value))
    masks = tuple(
        sum(1 << bit for bit, name in enumerate(CRITERIA_FIELDS) if value[c].get(name))
        for c in ids
    )
    return ids, masks


def _differing_fields(
    a: tuple[tuple[str, ...], tuple[int, ...]], b: tuple[tuple[str, ...], tuple[int, ...]]
) -> int:
    marks_a, marks_b = dict(zip(*a, strict=True)), dict(zip(*b, strict=True))
    out = 0
    for candidate in set(marks_a) | set(marks_b):
        out |= marks_a.get(candidate, 0) ^ marks_b.get(candidate, 0)
    return out


def _num(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _nan(value: Any) -> float:
    value = float(value)
    return value if math.isfinite(value) else math.nan


def _dtype(column: str) -> str:
    if column in ("reviewer_a", "reviewer_b", "slice", "criterion", "reviewer_id", "flag_reason"):
        return "object"
    if column in ("n_items", "n_reviews", "n_reviewers", "disagreements", "n_disagreements"):
        return "int64"
    return "float64"


def _jsonable(summary: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        out[key] = value
    return out


def format_figure(value: Any) -> str:
    """A figure as the report prints it: three decimals, n/a when undefined."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.3f}"


