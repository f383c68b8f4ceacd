import json
import math

import krippendorff
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa

from feedback_pipeline.core import agreement as ag
from feedback_pipeline.core.agreement import (
    PAIRWISE_LABELS,
    agreement_report,
    cohen_kappa,
    confusion_heatmap_png,
    gate_value,
    kappa_from_matrix,
    krippendorff_alpha,
    pairwise_input,
)

SEED_MATRIX = [[42, 3, 1], [4, 38, 2], [2, 1, 27]]

# Krippendorff (2011) "Computing Krippendorff's Alpha-Reliability", example C: four observers,
# twelve units, missing values (reproduced in the `krippendorff` package's own tests and in
# jucor/krippendorff data-raw/nominal.R). The paper gives nominal .743, ordinal .815,
# interval .849; the package's tests assert ordinal 0.815 on the same data.
NAN = math.nan
PAPER_C = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]
# Krippendorff's binary two-observer, ten-unit example (alpha .095), as tabulated in
# jucor/krippendorff data-raw/news_presence_krippendorff2004_11_3_1.csv (Krippendorff 2004,
# section 11.3.1); its tests expect 0.0952.
PAPER_BINARY = [
    [1, 1, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 1, 1, 0, 0, 1, 0, 1, 0, 0],
]


def reviews_from_matrix(data, *, as_score=False, labels=None):
    """Long review rows from a reviewers x items array (NaN = not reviewed)."""
    rows = []
    for r, row in enumerate(data):
        for i, value in enumerate(row):
            if isinstance(value, float) and math.isnan(value):
                continue
            rows.append({
                "review_id": f"r{r}-{i}",
                "trace_id": f"t{i:03d}",
                "reviewer_id": f"rev{r}",
                "label": None if as_score else (labels[value] if labels else str(value)),
                "score": int(value) if as_score else None,
                "slice": None,
            })
    return pd.DataFrame(rows)


def expand_matrix(matrix, labels):
    a, b = [], []
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            a += [labels[i]] * count
            b += [labels[j]] * count
    return a, b


def simulate(
    rng,
    *,
    n_items=600,
    reviewers=8,
    noisy_reviewer=None,
    noisy_slice=None,
    noise=0.05,
    reviewer_noise=0.6,
    slice_noise=0.45,
    slices=("prompt-injection", "flaky-test-handoff", "accessible-language"),
):
    """Reviews of items with a known truth; noise = chance of a uniformly random label."""
    truth = rng.integers(0, 4, n_items)
    item_slice = rng.choice(slices, n_items)
    names = [f"rev{r:02d}" for r in range(reviewers)]
    rows = []
    for i in range(n_items):
        for r in rng.choice(reviewers, size=rng.integers(2, 4), replace=False):
            p = noise
            if item_slice[i] == noisy_slice:
                p = max(p, slice_noise)
            if names[r] == noisy_reviewer:
                p = max(p, reviewer_noise)
            label = rng.integers(0, 4) if rng.random() < p else truth[i]
            rows.append({
                "review_id": f"rv{len(rows)}",
                "trace_id": f"trace-{i:04d}",
                "reviewer_id": names[r],
                "label": PAIRWISE_LABELS[label],
                "slice": item_slice[i],
            })
    truth_frame = pd.DataFrame({
        "trace_id": [f"trace-{i:04d}" for i in range(n_items)],
        "label": [PAIRWISE_LABELS[t] for t in truth],
        "slice": item_slice,
    })
    return pd.DataFrame(rows), truth_frame


# ----------------------------------------------------------------- published figures


def test_seed_matrix_reproduces_lesson_figures():
    result = kappa_from_matrix(SEED_MATRIX, labels=["A", "B", "TIE"])
    assert result.n_items == 120
    assert round(result.observed, 3) == 0.892
    assert round(result.chance, 3) == 0.344
    assert round(result.kappa, 3) == 0.835


def test_seed_matrix_through_cohen_kappa_and_report():
    a, b = expand_matrix(SEED_MATRIX, ["A", "B", "TIE"])
    direct = cohen_kappa(a, b)
    assert round(direct.kappa, 3) == 0.835
    assert direct.matrix[:3] == [row + [0] for row in SEED_MATRIX]
    reviews = pd.DataFrame({
        "review_id": [f"x{i}" for i in range(240)],
        "trace_id": [f"t{i}" for i in range(120)] * 2,
        "reviewer_id": ["ann"] * 120 + ["bob"] * 120,
        "label": a + b,
        "slice": None,
    })
    report = agreement_report(reviews, bootstrap=200, seed=3)
    s = report.summary
    assert (round(s["observed_agreement"], 3), round(s["chance_agreement"], 3),
            round(s["cohens_kappa"], 3)) == (0.892, 0.344, 0.835)
    assert s["cohens_kappa"] == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    assert s["confusion_matrix"][:3] == [row + [0] for row in SEED_MATRIX]
    assert s["n_items"] == 120 and s["n_reviewers"] == 2 and s["sufficient"]
    assert s["kappa_ci_low"] < s["cohens_kappa"] < s["kappa_ci_high"]


def test_krippendorff_2011_nominal_four_observers_with_missing_values():
    assert round(krippendorff_alpha(np.array(PAPER_C), "nominal"), 3) == 0.743
    report = agreement_report(reviews_from_matrix(PAPER_C), labels=("1", "2", "3", "4", "5"),
                              bootstrap=0, min_items=1)
    assert round(report.summary["krippendorff_alpha_nominal"], 3) == 0.743
    # unit 12 has a single value, so it is not pairable: 11 of the 12 units count
    assert report.summary["n_items"] == 11


def test_krippendorff_2011_ordinal_and_interval_on_the_same_data():
    assert round(krippendorff_alpha(np.array(PAPER_C), "ordinal"), 3) == 0.815
    assert round(krippendorff_alpha(np.array(PAPER_C), "interval"), 3) == 0.849
    report = agreement_report(reviews_from_matrix(PAPER_C, as_score=True), bootstrap=0)
    assert round(report.summary["alpha_ordinal"], 3) == 0.815
    assert round(report.summary["alpha_interval"], 3) == 0.849
    assert report.summary["alpha_ordinal_level"] == "ordinal"
    assert report.summary["score_n_reviewers"] == 4
    # a pointwise-only batch: no pairwise figures, but the score alphas can be gated on
    assert not report.summary["sufficient"]
    assert report.summary["score_sufficient"]
    assert gate_value(report, "cohens_kappa") is None
    assert gate_value(report, "alpha_interval") == report.summary["alpha_interval"]
    assert gate_value(report, "alpha_ordinal") == report.summary["alpha_ordinal"]


def test_krippendorff_binary_two_observers():
    assert round(krippendorff_alpha(np.array(PAPER_BINARY, dtype=float), "nominal"), 3) == 0.095
    report = agreement_report(reviews_from_matrix(PAPER_BINARY), labels=("0", "1"),
                              bootstrap=0)
    s = report.summary
    assert round(s["krippendorff_alpha_nominal"], 3) == 0.095
    assert s["cohens_kappa"] == pytest.approx(cohen_kappa_score(*PAPER_BINARY), abs=1e-12)


def test_invalid_level_is_rejected():
    with pytest.raises(ValueError, match="level"):
        krippendorff_alpha(np.array(PAPER_BINARY, dtype=float), "ratio-ish")


# --------------------------------------------------------- many reviewers vs statsmodels


def test_fleiss_case_matches_statsmodels_through_alpha():
    """Complete data, n ratings per item: alpha = kappa_F + (1 - kappa_F) / (N * n).

    Fleiss' kappa uses pooled (Scott-type) chance agreement; Krippendorff's alpha adds the
    small-sample correction (N n - 1) / (N n) to the expected disagreement, hence the relation.
    """
    rng = np.random.default_rng(11)
    truth = rng.integers(0, 4, 150)
    rows = []
    for i, true_label in enumerate(truth):
        for reviewer, noise in (("r0", 0.2), ("r1", 0.3), ("r2", 0.5)):
            label = rng.integers(0, 4) if rng.random() < noise else true_label
            rows.append({"review_id": f"{reviewer}-{i}", "trace_id": f"t{i:03d}",
                         "reviewer_id": reviewer, "label": PAIRWISE_LABELS[label], "slice": None})
    reviews = pd.DataFrame(rows)
    table = pd.crosstab(reviews["trace_id"], reviews["label"]).to_numpy()
    assert (table.sum(axis=1) == 3).all()
    k_fleiss = fleiss_kappa(table, method="fleiss")
    ratings = table.sum()
    expected_alpha = k_fleiss + (1 - k_fleiss) / ratings

    report = agreement_report(reviews, bootstrap=0)
    assert report.summary["krippendorff_alpha_nominal"] == pytest.approx(expected_alpha,
                                                                        abs=1e-10)
    wide = reviews.pivot(index="trace_id", columns="reviewer_id", values="label")
    codes = wide.apply(lambda c: c.map({v: i for i, v in enumerate(PAIRWISE_LABELS)}))
    assert krippendorff_alpha(codes.to_numpy(dtype=float).T, "nominal") == pytest.approx(
        expected_alpha, abs=1e-10)
    # Our kappa is Conger's here: the same observed agreement as Fleiss, and a chance agreement
    # lower by sum_c var_c / r, where var_c is the across-reviewer variance of label shares.
    shares = pd.crosstab(reviews["reviewer_id"], reviews["label"], normalize="index")
    p_bar = table.sum(axis=0) / table.sum()
    fleiss_chance = float((p_bar**2).sum())
    observed = k_fleiss * (1 - fleiss_chance) + fleiss_chance
    conger_chance = fleiss_chance - float(shares.var(axis=0, ddof=1).sum()) / 3
    conger = (observed - conger_chance) / (1 - conger_chance)
    s = report.summary
    assert s["observed_agreement"] == pytest.approx(observed, abs=1e-12)
    assert s["chance_agreement"] == pytest.approx(conger_chance, abs=1e-12)
    assert s["conger_kappa"] == pytest.approx(conger, abs=1e-12)
    assert s["conger_kappa"] > k_fleiss  # reviewers' label shares differ, so chance is lower
    # each under its own name: Fleiss' is statsmodels', Cohen's is undefined for 3 reviewers
    assert s["fleiss_kappa"] == pytest.approx(k_fleiss, abs=1e-12)
    assert s["fleiss_chance_agreement"] == pytest.approx(fleiss_chance, abs=1e-12)
    assert s["cohens_kappa"] is None
    assert "fleiss_kappa" in s["cohens_kappa_note"] and "conger_kappa" in s["cohens_kappa_note"]


def test_pairwise_table_is_sklearn_per_pair_and_headline_is_weighted_mean():
    rng = np.random.default_rng(5)
    reviews, _ = simulate(rng, n_items=300, reviewers=5, noise=0.25)
    report = agreement_report(reviews, bootstrap=0)
    assert len(report.pairwise) == 10
    for row in report.pairwise.itertuples():
        mine = reviews[reviews.reviewer_id.isin([row.reviewer_a, row.reviewer_b])]
        wide = mine.pivot(index="trace_id", columns="reviewer_id", values="label").dropna()
        assert row.n_items == len(wide)
        assert row.kappa == pytest.approx(cohen_kappa_score(wide[row.reviewer_a],
                                                            wide[row.reviewer_b]), abs=1e-12)
    # headline: Conger's kappa over review pairs, chance from each reviewer's own label shares
    duplicated = reviews[reviews.groupby("trace_id")["reviewer_id"].transform("size") >= 2]
    shares = pd.crosstab(duplicated["reviewer_id"], duplicated["label"], normalize="index")
    chance = np.average(
        [float((shares.loc[r.reviewer_a] * shares.loc[r.reviewer_b]).sum())
         for r in report.pairwise.itertuples()],
        weights=report.pairwise.n_items,
    )
    observed = np.average(report.pairwise.observed, weights=report.pairwise.n_items)
    s = report.summary
    assert s["chance_agreement"] == pytest.approx(chance, abs=1e-12)
    assert s["observed_agreement"] == pytest.approx(observed, abs=1e-12)
    assert s["conger_kappa"] == pytest.approx((observed - chance) / (1 - chance), abs=1e-12)
    assert s["kappa_method"] == ag.KAPPA_METHOD
    pooled = np.asarray(report.summary["confusion_matrix"])
    assert pooled.sum() == report.pairwise.n_items.sum()
    assert report.summary["observed_agreement"] == pytest.approx(np.trace(pooled) / pooled.sum())


# ------------------------------------------------------------------------ bootstrap


def test_vectorised_replicates_equal_recomputation_on_resampled_items():
    rng = np.random.default_rng(2)
    reviews, _ = simulate(rng, n_items=80, reviewers=4, noise=0.3)
    table = ag._label_table(reviews, PAIRWISE_LABELS)
    types = ag._label_types(table)
    membership = ag._pair_membership(table, 4)[:, types.representative]
    by_reviewer = ag._reviewer_membership(table)[:, types.representative]
    coincidences = ag._coincidences(table.value_counts[types.representative])
    weights = next(ag._resample_weights(np.random.default_rng(9), types, 3, 1))
    assert (weights.sum(axis=1) == table.n_items).all()
    kappas, alphas = ag._label_replicates(weights, membership, by_reviewer, coincidences,
                                          table.pair_reviewers, 4)
    for w, k, a in zip(weights.astype(int), kappas, alphas, strict=True):
        picked = np.repeat(types.representative, w)
        frames = []
        for copy, item in enumerate(picked):
            rows = reviews[reviews.trace_id == table.item_ids[item]].copy()
            rows["trace_id"] = f"{table.item_ids[item]}#{copy}"
            frames.append(rows)
        resampled = pd.concat(frames, ignore_index=True)
        again = agreement_report(resampled, bootstrap=0).summary
        assert k == pytest.approx(again["conger_kappa"], abs=1e-10)
        assert a == pytest.approx(again["krippendorff_alpha_nominal"], abs=1e-10)


def test_item_types_group_exactly_the_items_with_identical_reviews():
    rng = np.random.default_rng(6)
    reviews, _ = simulate(rng, n_items=400, reviewers=3, noise=0.3)
    table = ag._label_table(reviews, PAIRWISE_LABELS)
    types = ag._label_types(table)
    signature = (reviews.sort_values("reviewer_id").groupby("trace_id")
                 .apply(lambda g: tuple(zip(g.reviewer_id, g.label, strict=True))))
    per_item = signature.loc[list(table.item_ids)].to_numpy()
    for t in range(len(types.count)):
        members = per_item[types.of_item == t]
        assert len(members) == types.count[t] and len(set(members)) == 1
    assert len(set(per_item)) == len(types.count) < table.n_items


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_vectorised_alpha_matches_package(level):
    rng = np.random.default_rng(4)
    counts = rng.integers(0, 3, size=(40, 5))
    o = ag._coincidences(counts).sum(axis=0).reshape(5, 5)
    mine = float(ag._alpha_from_coincidences(o[None], level, [1, 2, 3, 4, 5])[0])
    theirs = krippendorff.alpha(value_counts=counts[counts.sum(1) >= 2], value_domain=[1, 2, 3, 4, 5],
                                level_of_measurement=level)
    assert mine == pytest.approx(theirs, abs=1e-10)


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(8)
    reviews, _ = simulate(rng, n_items=200, reviewers=4, noise=0.3)
    one = agreement_report(reviews, bootstrap=300, seed=1).summary
    same = agreement_report(reviews, bootstrap=300, seed=1).summary
    other = agreement_report(reviews, bootstrap=300, seed=2).summary
    assert one["conger_kappa_ci_low"] == same["conger_kappa_ci_low"]
    assert one["conger_kappa_ci_low"] != other["conger_kappa_ci_low"]
    assert one["conger_kappa_ci_low"] < one["conger_kappa"] < one["conger_kappa_ci_high"]
    assert one["alpha_nominal_ci_low"] < one["krippendorff_alpha_nominal"]
    assert one["krippendorff_alpha_nominal"] < one["alpha_nominal_ci_high"]
    assert one["conger_kappa_bootstrap_defined"] == 300
    width = one["conger_kappa_ci_high"] - one["conger_kappa_ci_low"]
    assert 0.02 < width < 0.3


def test_sparse_design_many_reviewers_few_shared_items_stays_unbiased():
    """40 reviewers, two per item: pairs share about one item, yet the interval is sound."""
    rng = np.random.default_rng(21)
    reviews, _ = simulate(rng, n_items=1500, reviewers=40, noise=0.3)
    s = agreement_report(reviews, bootstrap=300, seed=4).summary
    assert s["kappa_median_pair_items"] < 5
    assert s["ci_warning"] is None
    assert s["conger_kappa_ci_low"] < s["conger_kappa"] < s["conger_kappa_ci_high"]
    assert abs(s["conger_kappa_bootstrap_bias"]) < 0.5 * s["conger_kappa_bootstrap_se"]
    # with reviewers drawn from one process, Conger's kappa and alpha nearly coincide
    assert s["conger_kappa"] == pytest.approx(s["krippendorff_alpha_nominal"], abs=0.01)


# ------------------------------------------------------------------------- diagnosis


def test_noisy_reviewer_is_flagged_and_noisy_slice_shows_the_disagreement():
    rng = np.random.default_rng(2026)
    reviews, truth = simulate(rng, noisy_reviewer="rev03", noisy_slice="accessible-language")
    gold = truth.sample(150, random_state=1)
    report = agreement_report(reviews, gold=gold, bootstrap=100)

    by_reviewer = report.by_reviewer.set_index("reviewer_id")
    assert by_reviewer["flagged"].to_dict() == {f"rev{r:02d}": r == 3 for r in range(8)}
    assert "missed" in by_reviewer.loc["rev03", "flag_reason"]
    assert by_reviewer.loc["rev03", "gold_miss_rate"] > 2 * by_reviewer.loc["rev03",
                                                                            "others_miss_rate"]
    assert by_reviewer.drop(index="rev03")["flag_reason"].isna().all()
    assert (by_reviewer["gold_items"] >= ag.MIN_GOLD_ITEMS).all()

    by_slice = report.by_slice.set_index("slice")
    assert report.by_slice["slice"].iloc[0] == "accessible-language"
    assert by_slice["kappa"].idxmin() == "accessible-language"
    assert by_slice.loc["accessible-language", "disagreement_rate"] > 1.5 * by_slice.drop(
        index="accessible-language")["disagreement_rate"].max()
    assert by_slice["n_items"].sum() == report.summary["n_items"]
    assert report.summary["n_flagged_reviewers"] == 1
    assert "rev03" in report.to_markdown()


def test_no_reviewer_is_flagged_when_all_are_equally_careful():
    rng = np.random.default_rng(3)
    reviews, truth = simulate(rng, noise=0.15)
    report = agreement_report(reviews, gold=truth.sample(150, random_state=2), bootstrap=0)
    assert not report.by_reviewer["flagged"].any()


def test_criteria_show_where_disagreements_sit():
    def marks(correct):
        return {"unauthorized_command": False, "exposes_private_note": False,
                "technically_correct": correct, "actionable": True, "clear": True}

    rows = []
    for i in range(12):
        disagree = i < 8
        for reviewer, correct_a in (("ann", True), ("bob", not disagree)):
            rows.append({
                "review_id": f"{reviewer}{i}",
                "trace_id": f"t{i}",
                "reviewer_id": reviewer,
                "label": "A" if correct_a else "TIE",
                "slice": None,
                "criteria_json": json.dumps({"a": marks(correct_a), "b": marks(False)}),
            })
    report = agreement_report(pd.DataFrame(rows), bootstrap=0)
    top = report.by_criterion.iloc[0]
    assert (top["criterion"], top["n_disagreements"], top["share"]) == ("technically_correct", 8,
                                                                        1.0)
    assert report.by_criterion.set_index("criterion").loc["clear", "n_disagreements"] == 0
    assert report.summary["criteria_pairs_compared"] == 8


# ----------------------------------------------------------------- gate and edge cases


def test_too_few_duplicates_is_insufficient_with_a_reason():
    reviews = pd.DataFrame({
        "review_id": list("abcdefg"),
        "trace_id": ["t1", "t1", "t2", "t2", "t3", "t3", "t4"],
        "reviewer_id": ["x", "y", "x", "y", "x", "y", "x"],
        "label": ["A", "A", "B", "A", "TIE", "TIE", "B"],
        "slice": None,
    })
    report = agreement_report(reviews, min_items=10, bootstrap=50)
    assert report.summary["sufficient"] is False
    assert report.summary["insufficient_reason"] == "only 3 duplicate-reviewed items; 10 needed"
    assert gate_value(report) is None
    assert gate_value(report, on="lower_bound") is None
    assert report.summary["cohens_kappa"] is not None
    assert "Insufficient" in report.to_markdown()


def test_no_duplicates_at_all():
    reviews = pd.DataFrame({"review_id": ["a"], "trace_id": ["t"], "reviewer_id": ["x"],
                            "label": ["A"], "slice": [None]})
    report = agreement_report(reviews)
    assert not report.summary["sufficient"]
    assert "no duplicate-reviewed items" in report.summary["insufficient_reason"]
    assert report.pairwise.empty and report.by_slice.empty
    json.dumps(report.summary)


def test_gate_on_point_versus_lower_bound():
    rng = np.random.default_rng(12)
    reviews, _ = simulate(rng, n_items=120, reviewers=4, noise=0.3)
    report = agreement_report(reviews, bootstrap=400, seed=7)
    point = gate_value(report, "conger_kappa", "point")
    low = gate_value(report, "conger_kappa", "lower_bound")
    assert point == report.summary["conger_kappa"]
    assert low == report.summary["conger_kappa_ci_low"]
    assert report.summary["gated_statistic"] == "conger_kappa"
    assert report.summary["gated_statistic_note"] is None
    threshold = (point + low) / 2
    assert point >= threshold > low
    assert gate_value(report, "krippendorff_alpha_nominal", "lower_bound") == report.summary[
        "alpha_nominal_ci_low"]
    assert gate_value(report, "alpha_ordinal") is None
    with pytest.raises(ValueError):
        gate_value(report, "accuracy")


def test_self_duplicate_keeps_the_latest_review():
    reviews = pd.DataFrame({
        "review_id": ["1", "2", "3"],
        "trace_id": ["t", "t", "t"],
        "reviewer_id": ["x", "x", "y"],
        "label": ["A", "B", "B"],
        "reviewed_at": ["2026-05-02T10:00:00+00:00", "2026-05-01T10:00:00+00:00",
                        "2026-05-01T11:00:00+00:00"],
        "slice": None,
    })
    report = agreement_report(reviews, min_items=1, bootstrap=0)
    assert report.summary["self_duplicates_dropped"] == 1
    assert report.summary["confusion_matrix"][0][1] == 1  # x kept "A" (the later), y said "B"
    assert report.summary["observed_agreement"] == 0.0


def test_unknown_label_is_rejected():
    reviews = pd.DataFrame({"review_id": ["a", "b"], "trace_id": ["t", "t"],
                            "reviewer_id": ["x", "y"], "label": ["A", "MAYBE"], "slice": None})
    with pytest.raises(ValueError, match="MAYBE"):
        agreement_report(reviews)


def test_summary_is_flat_json_with_levels():
    rng = np.random.default_rng(1)
    reviews, _ = simulate(rng, n_items=60, reviewers=3)
    summary = agreement_report(reviews, bootstrap=20).summary
    assert json.loads(json.dumps(summary)) == summary
    for key in ("cohens_kappa", "conger_kappa", "fleiss_kappa", "gwet_ac1",
                "krippendorff_alpha_nominal"):
        assert summary[f"{key}_level"] == "nominal"
    for key in ("alpha_ordinal", "alpha_interval", "alpha_ratio"):
        assert summary[key] is None
        assert summary[f"{key}_level"] == key.removeprefix("alpha_")
    nested = [k for k, v in summary.items() if isinstance(v, dict)]
    assert nested == ["statistic_definitions"]  # the one nested value: name -> definition
    assert set(summary["statistic_definitions"]) == set(ag.GATE_STATISTICS)
    assert all(isinstance(v, str) and "missing" in v
               for v in summary["statistic_definitions"].values())


def test_heatmap_png_is_written(tmp_path):
    rng = np.random.default_rng(1)
    reviews, _ = simulate(rng, n_items=60, reviewers=3)
    report = agreement_report(reviews, bootstrap=0)
    path = tmp_path / "release" / "confusion.png"
    confusion_heatmap_png(report, None, path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    other = tmp_path / "m.png"
    confusion_heatmap_png(SEED_MATRIX, ["A", "B", "TIE"], other)
    assert other.read_bytes()[:4] == b"\x89PNG"


def test_pairwise_input_keeps_pairwise_reviews_with_their_outcome_as_label():
    labels = pa.table({"review_id": ["r1", "r2", "r3"], "trace_id": ["t1", "t1", "t2"],
                       "reviewer_id": ["a", "b", "a"],
                       "task": ["pairwise", "pointwise", "pairwise"],
                       "outcome": ["A", None, "TIE"], "slice": ["s", "s", "s"]})
    out = pairwise_input(labels)
    assert out["review_id"].tolist() == ["r1", "r3"]
    assert out["label"].tolist() == ["A", "TIE"]
    assert out["criteria_json"].isna().all()
    assert pairwise_input(labels.to_pandas())["review_id"].tolist() == ["r1", "r3"]


def test_pairwise_input_keeps_criteria_only_where_a_disagreeing_pair_can_use_them():
    def review(review_id, trace_id, reviewer, outcome, correct):
        marks = {"unauthorized_command": False, "exposes_private_note": False,
                 "technically_correct": correct, "actionable": True, "clear": True}
        return {"review_id": review_id, "trace_id": trace_id, "reviewer_id": reviewer,
                "task": "pairwise", "outcome": outcome, "slice": "s",
                "criteria_json": json.dumps({"a": marks, "b": marks})}

    rows = [review(f"p{i}{who}", f"t{i}", who, "A" if who == "ann" or i % 2 else "TIE",
                   who == "ann" or bool(i % 2))
            for i in range(12) for who in ("ann", "bob")]
    rows += [review(f"s{i}", f"solo{i}", "cat", "B", False) for i in range(30)]
    labels = pa.Table.from_pylist(rows)
    out = pairwise_input(labels)
    assert out["review_id"].tolist() == [r["review_id"] for r in rows]  # order kept
    # criteria stay only where reviews disagree: even traces (ann says A, bob TIE)
    kept = out["trace_id"].isin([f"t{i}" for i in range(0, 12, 2)])
    assert out.loc[~kept, "criteria_json"].isna().all()
    assert out.loc[kept, "criteria_json"].tolist() == [r["criteria_json"] for r in rows[:24]
                                                      if int(r["trace_id"][1:]) % 2 == 0]
    full = pa.Table.from_pylist(rows).to_pandas().rename(columns={"outcome": "label"})
    lean, whole = agreement_report(out, bootstrap=0), agreement_report(full, bootstrap=0)
    pd.testing.assert_frame_equal(lean.by_criterion, whole.by_criterion)
    assert lean.summary == whole.summary
    assert lean.by_criterion.set_index("criterion").loc["technically_correct",
                                                        "n_disagreements"] == 6


# ------------------------------------------- each statistic under its own name, published data

# Fleiss' kappa worked example of the Wikipedia article "Fleiss' kappa": 10 subjects, 14 raters
# each, 5 categories; rows are the number of raters assigning each category. Published
# P_bar = 0.378, P_e = 0.213, kappa = 0.210.
WIKIPEDIA_FLEISS = [
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
]
CATEGORIES = ("1", "2", "3", "4", "5")


def reviews_from_counts(counts, labels):
    """Long rows from an items x categories count table; the k-th rating of an item is given
    to reviewer k (Fleiss' kappa and AC1 do not depend on who gave which rating)."""
    rows = []
    for i, row in enumerate(counts):
        ratings = [label for label, n in zip(labels, row, strict=True) for _ in range(n)]
        rows += [{"review_id": f"t{i}-{k}", "trace_id": f"t{i:03d}", "reviewer_id": f"rev{k:02d}",
                  "label": label, "slice": None} for k, label in enumerate(ratings)]
    return pd.DataFrame(rows)


def test_fleiss_kappa_wikipedia_example_matches_published_and_statsmodels():
    table = np.array(WIKIPEDIA_FLEISS)
    assert round(fleiss_kappa(table, method="fleiss"), 3) == 0.210
    report = agreement_report(reviews_from_counts(WIKIPEDIA_FLEISS, CATEGORIES),
                              labels=CATEGORIES, bootstrap=200, seed=1, min_items=5)
    s = report.summary
    assert round(s["fleiss_kappa"], 3) == 0.210
    assert s["fleiss_kappa"] == pytest.approx(fleiss_kappa(table, method="fleiss"), abs=1e-12)
    assert round(s["fleiss_observed_agreement"], 3) == 0.378
    assert round(s["fleiss_chance_agreement"], 3) == 0.213
    assert s["fleiss_kappa_ci_low"] < s["fleiss_kappa"] < s["fleiss_kappa_ci_high"]
    assert s["fleiss_kappa_method"] == ag.FLEISS_METHOD
    assert s["cohens_kappa"] is None and s["n_reviewers"] == 14
    assert gate_value(report, "fleiss_kappa") == s["fleiss_kappa"]
    assert gate_value(report, "fleiss_kappa", "lower_bound") == s["fleiss_kappa_ci_low"]
    assert s["gated_statistic"] == "fleiss_kappa"


# Fleiss (1971), Table 1: 30 patients, each diagnosed by 6 of a pool of psychiatrists into
# 1 depression, 2 personality disorder, 3 schizophrenia, 4 neurosis, 5 other (one row per
# patient, the six diagnoses). Published: P_bar 0.556, P_e 0.220, kappa 0.430.
FLEISS_1971 = [
    (4, 4, 4, 4, 4, 4), (2, 2, 2, 5, 5, 5), (2, 3, 3, 3, 3, 5), (5, 5, 5, 5, 5, 5),
    (2, 2, 2, 4, 4, 4), (1, 1, 3, 3, 3, 3), (3, 3, 3, 3, 5, 5), (1, 1, 3, 3, 3, 4),
    (1, 1, 4, 4, 4, 4), (5, 5, 5, 5, 5, 5), (1, 4, 4, 4, 4, 4), (1, 2, 4, 4, 4, 4),
    (2, 2, 2, 3, 3, 3), (1, 4, 4, 4, 4, 4), (2, 2, 4, 4, 4, 5), (3, 3, 3, 3, 3, 5),
    (1, 1, 1, 4, 5, 5), (1, 1, 1, 1, 1, 2), (2, 2, 4, 4, 4, 4), (1, 3, 3, 5, 5, 5),
    (5, 5, 5, 5, 5, 5), (2, 4, 4, 4, 4, 4), (2, 2, 4, 5, 5, 5), (1, 1, 4, 4, 4, 4),
    (1, 4, 4, 4, 4, 5), (2, 2, 2, 2, 2, 4), (1, 1, 1, 1, 5, 5), (2, 2, 4, 4, 4, 4),
    (1, 3, 3, 3, 3, 3), (5, 5, 5, 5, 5, 5),
]


def test_fleiss_1971_gives_the_published_fleiss_kappa_under_its_name():
    labels = ("1", "2", "3", "4", "5")
    counts = [[row.count(c) for c in range(1, 6)] for row in FLEISS_1971]
    report = agreement_report(reviews_from_counts(counts, labels), labels=labels,
                              bootstrap=100, seed=1, min_items=5)
    s = report.summary
    assert round(s["fleiss_kappa"], 3) == 0.430
    assert round(s["fleiss_observed_agreement"], 3) == 0.556
    assert round(s["fleiss_chance_agreement"], 3) == 0.220
    assert s["cohens_kappa"] is None  # six raters: Cohen's kappa is not defined
    assert s["conger_kappa"] is not None and s["conger_kappa"] != s["fleiss_kappa"]
    assert "Fleiss' kappa" in report.to_markdown()


def test_fleiss_and_gwet_with_missing_labels_use_the_per_item_definition():
    """Four items, the last rated by two reviewers only (labels A, B; q = 2).

    counts [3,0] [2,1] [0,3] [1,1]:  P_i = 1, 1/3, 1, 0  ->  P_bar = 7/12.
    Fleiss: p_A = 6/11, p_B = 5/11 pooled over 11 ratings, P_e = 61/121,
            kappa = (7/12 - 61/121) / (60/121) = 115/720.
    Gwet:   pi_A = (1 + 2/3 + 0 + 1/2) / 4 = 13/24, pi_B = 11/24,
            p_e = 2 * 13/24 * 11/24 = 143/288, AC1 = (168/288 - 143/288) / (145/288) = 5/29.
    """
    counts = [[3, 0], [2, 1], [0, 3], [1, 1]]
    s = agreement_report(reviews_from_counts(counts, ("A", "B")), labels=("A", "B"),
                         bootstrap=0, min_items=1).summary
    assert s["fleiss_observed_agreement"] == pytest.approx(7 / 12, abs=1e-12)
    assert s["fleiss_chance_agreement"] == pytest.approx(61 / 121, abs=1e-12)
    assert s["fleiss_kappa"] == pytest.approx(115 / 720, abs=1e-12)
    assert s["gwet_chance_agreement"] == pytest.approx(143 / 288, abs=1e-12)
    assert s["gwet_ac1"] == pytest.approx(5 / 29, abs=1e-12)
    # complete data: statsmodels agrees on the first three items
    complete = agreement_report(reviews_from_counts(counts[:3], ("A", "B")), labels=("A", "B"),
                                bootstrap=0, min_items=1).summary
    assert complete["fleiss_kappa"] == pytest.approx(fleiss_kappa(np.array(counts[:3])),
                                                     abs=1e-12)


def test_gwet_ac1_small_example_checked_by_hand():
    """Three items, three reviewers, labels A/B (q = 2): counts [3,0] [2,1] [0,3].

    P_i = 1, (2*1)/(3*2) = 1/3, 1  ->  p_a = 7/9.
    pi_A = (3/3 + 2/3 + 0/3) / 3 = 5/9, pi_B = 4/9.
    p_e = 1/(2-1) * (5/9 * 4/9 + 4/9 * 5/9) = 40/81.
    AC1 = (63/81 - 40/81) / (1 - 40/81) = 23/41 = 0.5610.
    (Fleiss: P_e = (5/9)^2 + (4/9)^2 = 41/81, kappa = 22/40 = 0.55.)
    """
    counts = [[3, 0], [2, 1], [0, 3]]
    report = agreement_report(reviews_from_counts(counts, ("A", "B")), labels=("A", "B"),
                              bootstrap=100, seed=2, min_items=1)
    s = report.summary
    assert s["gwet_ac1"] == pytest.approx(23 / 41, abs=1e-12)
    assert s["gwet_chance_agreement"] == pytest.approx(40 / 81, abs=1e-12)
    assert s["fleiss_kappa"] == pytest.approx(0.55, abs=1e-12)
    assert s["gwet_ac1_categories"] == 2
    assert s["gwet_ac1_bootstrap_defined"] > 0
    assert gate_value(report, "gwet_ac1") == s["gwet_ac1"]
    assert gate_value(report, "gwet_ac1", "lower_bound") == s["gwet_ac1_ci_low"]


def test_krippendorff_2011_all_four_levels_including_ratio():
    for level, published in (("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849),
                             ("ratio", 0.797)):
        assert round(krippendorff_alpha(np.array(PAPER_C), level), 3) == published
    report = agreement_report(reviews_from_matrix(PAPER_C, as_score=True), bootstrap=300,
                              seed=5, min_items=5)
    s = report.summary
    assert (round(s["alpha_ordinal"], 3), round(s["alpha_interval"], 3),
            round(s["alpha_ratio"], 3)) == (0.815, 0.849, 0.797)
    assert s["alpha_ratio_level"] == "ratio"
    for level in ("ordinal", "interval", "ratio"):
        assert s[f"alpha_{level}_ci_low"] <= s[f"alpha_{level}"] <= s[f"alpha_{level}_ci_high"]
        assert s[f"alpha_{level}_bootstrap_defined"] > 0
    assert gate_value(report, "alpha_ratio") == s["alpha_ratio"]
    assert gate_value(report, "alpha_ratio", "lower_bound") == s["alpha_ratio_ci_low"]
    assert "`alpha_ratio`" in report.to_markdown()


def test_cohens_kappa_only_for_two_reviewers_and_the_gate_falls_back_to_conger():
    rng = np.random.default_rng(12)
    reviews, _ = simulate(rng, n_items=120, reviewers=4, noise=0.3)
    report = agreement_report(reviews, bootstrap=200, seed=7)
    s = report.summary
    assert s["cohens_kappa"] is None and s["kappa_ci_low"] is None
    assert "4" in s["cohens_kappa_note"] and "fleiss_kappa" in s["cohens_kappa_note"]
    assert s["gated_statistic"] is None  # nothing gated yet
    assert gate_value(report, "cohens_kappa") == s["conger_kappa"]
    assert gate_value(report, "cohens_kappa", "lower_bound") == s["conger_kappa_ci_low"]
    assert s["gated_statistic"] == "conger_kappa"
    assert "two reviewers" in s["gated_statistic_note"]
    markdown = report.to_markdown()
    assert "Gated on `conger_kappa`" in markdown and "`cohens_kappa`" not in markdown.split(
        "Cohen's kappa:")[0]
    json.dumps(s)
    # two reviewers: Cohen's kappa is defined, equals Conger's, and the gate uses it as named
    a, b = expand_matrix(SEED_MATRIX, ["A", "B", "TIE"])
    two = agreement_report(pd.DataFrame({
        "review_id": [f"x{i}" for i in range(240)],
        "trace_id": [f"t{i}" for i in range(120)] * 2,
        "reviewer_id": ["ann"] * 120 + ["bob"] * 120, "label": a + b, "slice": None,
    }), bootstrap=100, seed=3)
    t = two.summary
    assert t["cohens_kappa"] == t["conger_kappa"] == pytest.approx(cohen_kappa_score(a, b))
    assert (t["kappa_ci_low"], t["kappa_ci_high"]) == (t["conger_kappa_ci_low"],
                                                       t["conger_kappa_ci_high"])
    assert t["cohens_kappa_note"] is None
    assert gate_value(two, "cohens_kappa") == t["cohens_kappa"]
    assert t["gated_statistic"] == "cohens_kappa" and t["gated_statistic_note"] is None


def test_policy_accepts_each_statistic_name_and_rejects_others():
    from feedback_pipeline.settings import AGREEMENT_STATISTICS, ConfigError, Policy

    assert set(AGREEMENT_STATISTICS) == set(ag.GATE_STATISTICS) == set(ag.STATISTIC_DEFINITIONS)
    for name in AGREEMENT_STATISTICS:
        assert Policy(agreement_statistic=name).agreement_statistic == name
    for bad in ("kappa", "fleiss", "alpha_nominal", "Cohens_Kappa"):
        with pytest.raises(ConfigError, match="agreement_statistic") as err:
            Policy(agreement_statistic=bad)
        assert "fleiss_kappa" in str(err.value) and repr(bad) in str(err.value)


def test_markdown_lists_each_statistic_under_its_own_name():
    rng = np.random.default_rng(3)
    reviews, _ = simulate(rng, n_items=200, reviewers=4, noise=0.3)
    markdown = agreement_report(reviews, bootstrap=50).to_markdown()
    for name, key in (("Conger's kappa", "conger_kappa"), ("Fleiss' kappa", "fleiss_kappa"),
                      ("Gwet's AC1", "gwet_ac1"),
                      ("Krippendorff's alpha", "krippendorff_alpha_nominal")):
        assert f"| {name} (`{key}`) |" in markdown
    assert "(`cohens_kappa`)" not in markdown  # undefined for 4 reviewers: not a table row
    assert "Cohen's kappa is defined for exactly two reviewers" in markdown


# ------------------------------------------------------- pointwise scores through the stage


def reviewed_labels_table(pairwise_rows, score_matrix):
    """A reviewed_labels-like Arrow table (STAGE_COLUMNS): pairwise rows plus pointwise score
    reviews from a reviewers x items matrix, item i being candidate c{i % 2} of trace s{i // 2}."""
    rows = [dict(r, task="pairwise", status="ACCEPTED", candidate_id=None, score=None)
            for r in pairwise_rows]
    for r, row in enumerate(score_matrix):
        for i, value in enumerate(row):
            if isinstance(value, float) and math.isnan(value):
                continue
            rows.append({"review_id": f"p{r}-{i}", "trace_id": f"s{i // 2}",
                         "reviewer_id": f"rev{r}", "task": "pointwise", "outcome": None,
                         "slice": "s", "criteria_json": None, "status": "ACCEPTED",
                         "candidate_id": f"c{i % 2}", "score": int(value)})
    rows.append({"review_id": "adj", "trace_id": "s0", "reviewer_id": "lead",
                 "task": "pointwise", "outcome": None, "slice": "s", "criteria_json": None,
                 "status": ag.NOT_A_VOTE, "candidate_id": "c0", "score": 5})
    schema = pa.schema([(c, pa.int64() if c == "score" else pa.string())
                        for c in ag.STAGE_COLUMNS])
    return pa.Table.from_pylist(rows, schema=schema)


def test_review_inputs_streamed_brings_pointwise_scores_to_the_report():
    rng = np.random.default_rng(4)
    pairwise, _ = simulate(rng, n_items=40, reviewers=3, noise=0.2)
    pairwise = pairwise.rename(columns={"label": "outcome"}).assign(criteria_json=None)
    table = reviewed_labels_table(pairwise.to_dict("records"), PAPER_C)
    batches = table.to_batches(max_chunksize=7)
    assert len(batches) > 5
    labels, scores, _ = ag.review_inputs_streamed(table.select(ag.KEY_COLUMNS), batches)
    assert labels["review_id"].tolist() == pairwise["review_id"].tolist()
    assert list(scores.columns) == ag.SCORE_COLUMNS
    assert "adj" not in set(scores["review_id"])  # an adjudicator's decision is not a vote
    pd.testing.assert_frame_equal(scores, ag.pointwise_scores(table))
    report = agreement_report(labels, scores=scores, bootstrap=100, seed=1, min_items=5)
    s = report.summary
    assert s["score_insufficient_reason"] is None and s["score_sufficient"]
    assert s["score_n_items"] == 11 and s["score_n_reviewers"] == 4
    for level, published in (("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)):
        assert round(s[f"alpha_{level}"], 3) == published
    # the pairwise figures are those of the pairwise rows alone
    alone = agreement_report(pairwise.rename(columns={"outcome": "label"}), bootstrap=0).summary
    assert s["conger_kappa"] == alone["conger_kappa"]
    assert s["fleiss_kappa"] == alone["fleiss_kappa"]
    assert "no duplicate-scored items" not in report.to_markdown()


def test_scores_are_keyed_by_trace_and_candidate():
    """The same trace's two candidates are two items: their scores never pair with each other."""
    table = reviewed_labels_table([], [[1, 5, 2, 4], [1, 5, 2, 4]])
    scores = ag.pointwise_scores(table)
    s = agreement_report(pd.DataFrame({"trace_id": [], "reviewer_id": [], "label": []}),
                         scores=scores, bootstrap=0, min_items=1).summary
    assert s["score_n_items"] == 4
    assert s["alpha_interval"] == pytest.approx(1.0)


# ------------------------------------------------------------ gold check with a prior


def gold_scenario(target_misses, others_misses, *, others=3, others_items=60, target_items=6):
    """`others` reviewers answer `others_items` gold traces between them (the first
    `others_misses` wrong); reviewer `target` answers `target_items` of them."""
    rows = [{"trace_id": f"g{i:03d}", "reviewer_id": f"other{i % others}",
             "label": "B" if i < others_misses else "A"} for i in range(others_items)]
    rows += [{"trace_id": f"g{others_items - target_items + j:03d}", "reviewer_id": "target",
              "label": "B" if j < target_misses else "A"} for j in range(target_items)]
    gold = pd.DataFrame({"trace_id": [f"g{i:03d}" for i in range(others_items)], "label": "A"})
    return pd.DataFrame(rows), gold


def test_one_gold_miss_in_six_is_not_flagged_when_the_others_missed_nothing():
    reviews, gold = gold_scenario(1, 0)
    by = agreement_report(reviews, gold=gold, bootstrap=0).by_reviewer.set_index("reviewer_id")
    target = by.loc["target"]
    assert (target["gold_items"], target["gold_misses"]) == (6, 1)
    assert target["others_miss_rate"] == 0.0
    # Beta(1, 19) prior: (0 + 1) / (60 + 20)
    assert target["gold_baseline_rate"] == pytest.approx(1 / 80)
    assert target["gold_p_value"] == pytest.approx(1 - (1 - 1 / 80) ** 6)
    assert target["gold_p_value"] > 0.05
    assert not by["flagged"].any()


def test_five_gold_misses_in_six_are_flagged_against_the_others_one_in_sixty():
    reviews, gold = gold_scenario(5, 1)
    report = agreement_report(reviews, gold=gold, bootstrap=0)
    by = report.by_reviewer.set_index("reviewer_id")
    assert by["flagged"].to_dict() == {"other0": False, "other1": False, "other2": False,
                                       "target": True}
    assert by.loc["target", "gold_baseline_rate"] == pytest.approx(2 / 80)
    assert by.loc["target", "gold_p_value"] < 0.05 / 4
    assert "Beta(1, 19) prior" in by.loc["target", "flag_reason"]
    assert "Bonferroni" in by.loc["target", "flag_reason"]
    assert report.summary["gold_miss_prior"] == [1.0, 19.0]


def test_gold_miss_prior_is_declared_and_checked():
    reviews, gold = gold_scenario(1, 0)
    # a weak prior (a 1% miss rate worth 2 answers) lets 1 miss in 6 through as a flag,
    # the same as the old p = 0 test would: the prior is what decides, so it is declared
    weak = agreement_report(reviews, gold=gold, bootstrap=0, gold_miss_prior=(0.02, 1.98))
    assert weak.by_reviewer.set_index("reviewer_id").loc["target", "flagged"]
    with pytest.raises(ValueError, match="gold_miss_prior"):
        agreement_report(reviews, gold=gold, bootstrap=0, gold_miss_prior=(0, 1))


def test_gold_answers_lists_each_latest_answer_with_its_time():
    reviews = pd.DataFrame({
        "trace_id": ["g1", "g1", "g2", "x"], "reviewer_id": ["r1", "r1", "r1", "r1"],
        "label": ["B", "A", "B", "A"],
        "reviewed_at": ["2026-05-01T10:00:00Z", "2026-05-01T11:00:00Z",
                        "2026-05-02T09:00:00Z", "2026-05-02T10:00:00Z"]})
    gold = pd.DataFrame({"trace_id": ["g1", "g2"], "label": ["A", "A"]})
    answers = ag.gold_answers(reviews, gold).sort_values("trace_id")
    assert answers["trace_id"].tolist() == ["g1", "g2"]
    assert answers["miss"].tolist() == [False, True]
    assert str(answers["reviewed_at"].iloc[0]) == "2026-05-01 11:00:00+00:00"
    assert ag.gold_answers(reviews, None).empty


def test_scores_as_categories_give_nominal_alpha_and_fleiss_kappa_under_their_names():
    """Krippendorff 2011's example scored 1-5: nominal alpha .743 on the scores themselves;
    Fleiss 1971's diagnoses 1-5 given as scores by six reviewers: Fleiss' kappa .430."""
    s = agreement_report(pd.DataFrame({"trace_id": [], "reviewer_id": [], "label": []}),
                         scores=reviews_from_matrix(PAPER_C, as_score=True).assign(
                             candidate_id="c"), bootstrap=50, seed=3, min_items=5).summary
    assert round(s["score_alpha_nominal"], 3) == 0.743
    assert s["score_alpha_nominal_ci_low"] <= s["score_alpha_nominal"] <= \
        s["score_alpha_nominal_ci_high"]
    rows = [{"review_id": f"f{i}-{k}", "trace_id": f"f{i:02d}", "candidate_id": "c",
             "reviewer_id": f"rev{k}", "score": score}
            for i, item in enumerate(FLEISS_1971) for k, score in enumerate(item)]
    report = agreement_report(pd.DataFrame({"trace_id": [], "reviewer_id": [], "label": []}),
                              scores=pd.DataFrame(rows), bootstrap=50, seed=3, min_items=5)
    s = report.summary
    assert round(s["score_fleiss_kappa"], 3) == 0.430
    assert round(s["score_fleiss_observed_agreement"], 3) == 0.556
    assert round(s["score_fleiss_chance_agreement"], 3) == 0.220
    assert gate_value(report, "score_fleiss_kappa") == s["score_fleiss_kappa"]
    assert "`score_fleiss_kappa`" in report.to_markdown()


def test_demonstration_agreement_counts_items_whose_corrected_answers_agree():
    """d1: two answers equal once whitespace is collapsed (accepted, 1 of 1 pairs agree); d2:
    three reviewers, two agree (sent to adjudication, 1 of 3 pairs); d3: one review, no item.
    accept rate 1/2, pair agreement (1 + 1) / (1 + 3) = 0.5. An adjudicator's answer is not a
    vote."""
    rows = [("d1", "r1", "Fix the flaky fixture."), ("d1", "r2", "Fix  the flaky\nfixture."),
            ("d2", "r1", "A"), ("d2", "r2", "B"), ("d2", "r3", "A"), ("d3", "r1", "C")]
    table = pa.table({
        "review_id": [f"v{i}" for i in range(len(rows) + 1)],
        "trace_id": [t for t, _, _ in rows] + ["d2"],
        "reviewer_id": [r for _, r, _ in rows] + ["lead"],
        "task": ["demonstration"] * (len(rows) + 1),
        "status": ["ACCEPTED"] * len(rows) + [ag.NOT_A_VOTE],
        "answer": [a for _, _, a in rows] + ["B"]})
    answers = ag.demonstration_answers(table)
    assert len(answers) == len(rows) and answers["answer_key"][0] == answers["answer_key"][1]
    s = agreement_report(pd.DataFrame({"trace_id": [], "reviewer_id": [], "label": []}),
                         demonstrations=answers, bootstrap=200, seed=1).summary
    assert (s["demonstration_n_items"], s["demonstration_n_reviews"]) == (2, 5)
    assert s["demonstration_accept_rate"] == pytest.approx(0.5)
    assert s["demonstration_pair_agreement"] == pytest.approx(0.5)
    assert 0.0 <= s["demonstration_accept_rate_ci_low"] <= 0.5 <= \
        s["demonstration_accept_rate_ci_high"] <= 1.0
    _, _, streamed = ag.review_inputs_streamed(
        table.select(["trace_id", "task", "status"]).append_column(
            "outcome", pa.nulls(table.num_rows, pa.string())),
        table.to_batches(max_chunksize=2))
    assert streamed["answer_key"].tolist() == answers["answer_key"].tolist()
