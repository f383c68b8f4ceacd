"""The agreement report: figures per task type, slice and reviewer, gold check, gate value."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa

from feedback_pipeline.core import agreement as ag
from feedback_pipeline.core.agreement import (
    PAIRWISE_LABELS,
    agreement_report,
    cohen_kappa,
    gate_value,
    krippendorff_alpha,
    statistics,
)
from feedback_pipeline_tests.core.agreement.conftest import (
    CATEGORIES,
    FLEISS_1971,
    PAPER_BINARY,
    PAPER_C,
    SEED_MATRIX,
    WIKIPEDIA_FLEISS,
    expand_matrix,
    gold_scenario,
    reviews_from_counts,
    reviews_from_matrix,
    simulate,
)


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


def test_vectorised_replicates_equal_recomputation_on_resampled_items():
    rng = np.random.default_rng(2)
    reviews, _ = simulate(rng, n_items=80, reviewers=4, noise=0.3)
    table = statistics._label_table(reviews, PAIRWISE_LABELS)
    types = statistics._label_types(table)
    membership = statistics._pair_membership(table, 4)[:, types.representative]
    by_reviewer = statistics._reviewer_membership(table)[:, types.representative]
    coincidences = statistics._coincidences(table.value_counts[types.representative])
    weights = next(statistics._resample_weights(np.random.default_rng(9), types, 3, 1))
    assert (weights.sum(axis=1) == table.n_items).all()
    kappas, alphas = statistics._label_replicates(weights, membership, by_reviewer, coincidences,
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
