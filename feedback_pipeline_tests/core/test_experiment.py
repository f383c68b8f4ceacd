import numpy as np
import pandas as pd
import pytest

from feedback_pipeline.core.experiment import label_efficiency, selection_experiment
from feedback_pipeline.core.preference_model import PreferenceModel, uncertainty_for
from feedback_pipeline.core.selection import embed_texts, hybrid_select, random_select
from feedback_pipeline_tests.core.test_preference_model import (
    FEATURES,
    as_training,
    synthetic_pairs,
)

BATCH = 60


def test_label_efficiency_reproduces_the_seed_log():
    random_gain, random_per_point = label_efficiency(400, 0.61, 0.64)
    hybrid_gain, hybrid_per_point = label_efficiency(400, 0.61, 0.68)
    assert f"{random_gain:.2f} {random_per_point:.1f}" == "0.03 133.3"
    assert f"{hybrid_gain:.2f} {hybrid_per_point:.1f}" == "0.07 57.1"
    assert label_efficiency(400, 0.61, 0.60) == (pytest.approx(-0.01), None)


@pytest.fixture(scope="module")
def world():
    """A pool dominated by easy routine failures, a small routine-only base and a frozen set."""
    routine_pool = synthetic_pairs(300, seed=10, slices=["routine"])
    other_pool = synthetic_pairs(200, seed=11, slices=["fixture", "injection", "accessible"])
    pool = pd.concat([routine_pool, other_pool], ignore_index=True)
    base = as_training(synthetic_pairs(80, seed=12, slices=["routine"]))
    frozen = synthetic_pairs(400, seed=13)
    return pool, base, frozen


def test_experiment_runs_end_to_end_through_selection(world):
    pool, base, frozen = world
    base_model = PreferenceModel(n_features=FEATURES).fit(
        base["prompt"], base["chosen"], base["rejected"]
    )
    uncertainty, note = uncertainty_for(base_model, pool["prompt"], pool["text_a"], pool["text_b"])
    assert uncertainty is not None and "80 accepted pairs" in note
    embeddings = embed_texts(
        (pool["prompt"] + " " + pool["text_a"] + " " + pool["text_b"]).tolist(),
        dim=16,
        n_features=FEATURES,
    )
    hybrid = hybrid_select(embeddings, uncertainty, BATCH, weight_uncertainty=0.6)
    randomly = random_select(len(pool), BATCH, seed=7)

    report = selection_experiment(
        as_training(pool.iloc[hybrid.indices]),
        as_training(pool.iloc[randomly]),
        frozen,
        base_train=base,
        n_features=FEATURES,
        bootstrap=200,
    )

    assert set(report.arms) == {"hybrid", "random"}
    for arm in report.arms.values():
        assert arm.accepted_labels == BATCH
        assert arm.gain == pytest.approx(arm.candidate_score - report.baseline_score)
        assert arm.gain > 0
        assert arm.labels_per_percentage_point == pytest.approx(BATCH / (arm.gain * 100))
    expected = "hybrid" if report.arms["hybrid"].gain > report.arms["random"].gain else "random"
    assert report.recommendation == expected
    assert report.n_eval == 400
    by_slice = report.by_slice.set_index("slice")
    assert set(by_slice.index) == {"routine", "fixture", "injection", "accessible"}
    assert by_slice["n"].sum() == 400
    assert by_slice.loc["routine", "baseline_score"] > by_slice.loc["accessible", "baseline_score"]
    assert by_slice.loc["accessible", "random_score"] < by_slice.loc["routine", "random_score"]
    low, high = report.gain_difference_ci
    assert low <= report.arms["hybrid"].gain - report.arms["random"].gain <= high
    summary = report.summary()
    assert summary["hybrid_gain"] == report.arms["hybrid"].gain
    assert "Recommendation" in report.to_markdown()


def test_hybrid_rigged_to_one_easy_cluster_loses_and_policy_falls_back(world):
    pool, base, frozen = world
    easy = pool[pool["slice"] == "routine"].head(BATCH)
    spread = pool.iloc[random_select(len(pool), BATCH, seed=0)]

    report = selection_experiment(
        as_training(easy), as_training(spread), frozen, base_train=base, n_features=FEATURES
    )

    assert report.arms["hybrid"].gain < report.arms["random"].gain
    assert report.recommendation == "random"
    assert "did not beat random" in report.reason

    swapped = selection_experiment(
        as_training(spread), as_training(easy), frozen, base_train=base, n_features=FEATURES
    )
    assert swapped.recommendation == "hybrid"


def test_without_base_pairs_the_baseline_is_chance(world):
    pool, _, frozen = world
    batch = as_training(pool.iloc[random_select(len(pool), BATCH, seed=1)])
    report = selection_experiment(batch, batch, frozen, n_features=FEATURES, bootstrap=0)
    assert report.baseline_score == 0.5
    assert "untrained" in report.baseline_note
    assert report.arms["hybrid"].gain == report.arms["random"].gain
    assert report.recommendation == "random"


def test_only_sided_frozen_labels_are_scored(world):
    pool, base, frozen = world
    batch = as_training(pool.head(10))
    with_ties = frozen.copy()
    with_ties.loc[:49, "label"] = "TIE"
    report = selection_experiment(batch, batch, with_ties, base_train=base, n_features=FEATURES)
    assert report.n_eval == 350
    assert any("50 frozen items" in note for note in report.notes)
    with pytest.raises(ValueError, match="no items labelled A or B"):
        selection_experiment(batch, batch, with_ties.assign(label="TIE"), n_features=FEATURES)
    with pytest.raises(ValueError, match="missing columns"):
        selection_experiment(batch.drop(columns="chosen"), batch, frozen, n_features=FEATURES)


def test_uneven_batches_are_noted():
    frozen = synthetic_pairs(60, seed=20)
    report = selection_experiment(
        as_training(synthetic_pairs(30, 21)),
        as_training(synthetic_pairs(20, 22)),
        frozen,
        n_features=FEATURES,
        bootstrap=0,
    )
    assert any("different accepted labels" in note for note in report.notes)
    assert np.isfinite(report.arms["random"].candidate_score)


def pool_rows(pairs: pd.DataFrame, day: str = "2026-05-10") -> pd.DataFrame:
    """Labelled synthetic pairs as the eligible pool a round sees (the labels stay hidden)."""
    return pairs.assign(trace_day=day, task="pairwise", queue="PREFERENCE_QUEUE",
                        entered_on=day)


def round_arms(pool: pd.DataFrame, base: pd.DataFrame, budget: int, seed: int = 7):
    """One labeling round over `pool` exactly as the stage draws it (core.rounds), with the
    uncertainty of a model trained on `base`; returns each arm's rows of the pool."""
    from feedback_pipeline.core.rounds import parse_review_budget, plan_round

    model = PreferenceModel(n_features=FEATURES).fit(base["prompt"], base["chosen"],
                                                     base["rejected"])
    uncertainty, _ = uncertainty_for(model, pool["prompt"], pool["text_a"], pool["text_b"])
    plan = plan_round("2026-05-10", pool_rows(pool), pool.iloc[0:0],
                      parse_review_budget(budget, 1), seed=seed, uncertainty=uncertainty,
                      embed_dim=16)
    by_id = pool.set_index("trace_id")
    return {arm: by_id.loc[plan.issued.loc[plan.issued["arm"] == arm, "trace_id"]].reset_index()
            for arm in ("hybrid", "random")}


def test_a_planted_informative_region_is_covered_by_the_hybrid_arm_which_wins():
    """Most of the pool is routine work the model already knows; a small, learnable region
    (fixture failures) is what the frozen set tests and the model cannot yet judge. The round's
    hybrid arm must find that region, and its candidate must beat the control arm's on the
    frozen items, by an interval that excludes zero."""
    from feedback_pipeline.core.candidates import PreferenceModelCandidate
    from feedback_pipeline.core.experiment import compare_arms

    routine = synthetic_pairs(400, seed=30, slices=["routine"])
    region = synthetic_pairs(50, seed=31, slices=["fixture"])
    pool = pd.concat([routine, region], ignore_index=True)
    base = as_training(synthetic_pairs(80, seed=32, slices=["routine"]))
    frozen = pd.concat([synthetic_pairs(240, seed=33, slices=["fixture"]),
                        synthetic_pairs(60, seed=34, slices=["routine"])], ignore_index=True)
    arms = round_arms(pool, base, budget=40)
    in_region = {arm: int((rows["slice"] == "fixture").sum()) for arm, rows in arms.items()}
    assert len(arms["hybrid"]) == len(arms["random"]) == 20
    assert not set(arms["hybrid"]["trace_id"]) & set(arms["random"]["trace_id"])
    assert in_region["hybrid"] >= 10 > in_region["random"]

    report = compare_arms({arm: as_training(rows) for arm, rows in arms.items()}, frozen,
                          PreferenceModelCandidate(n_features=FEATURES), base, seed=0,
                          bootstrap=500, slice_groups={"planted region": ["fixture"]})
    assert report.recommendation == "hybrid"
    assert report.arms["hybrid"].gain > report.arms["random"].gain
    assert report.evidence.startswith("hybrid better")
    assert report.gain_difference_ci[0] > 0
    group = report.by_slice.set_index("slice").loc["planted region (fixture)"]
    assert group["hybrid_gain"] > group["random_gain"]


def test_when_hybrid_is_no_better_the_report_says_random_with_its_evidence():
    """Every region equally known: the selector has nothing to find, so it cannot beat the
    control arm, and the experiment returns to the simpler baseline."""
    from feedback_pipeline.core.candidates import PreferenceModelCandidate
    from feedback_pipeline.core.experiment import compare_arms

    pool = synthetic_pairs(300, seed=40, slices=["routine"])
    base = as_training(synthetic_pairs(80, seed=41, slices=["routine"]))
    frozen = synthetic_pairs(200, seed=42, slices=["routine"])
    arms = round_arms(pool, base, budget=40)
    report = compare_arms({arm: as_training(rows) for arm, rows in arms.items()}, frozen,
                          PreferenceModelCandidate(n_features=FEATURES), base, seed=0,
                          bootstrap=500, issued={"hybrid": 20, "random": 20},
                          review_seconds={"hybrid": 2000.0, "random": 1800.0})
    assert report.recommendation == "random"
    assert "did not beat random" in report.reason
    assert not report.evidence.startswith("hybrid better")
    assert report.arms["random"].seconds_per_accepted_label == pytest.approx(1800.0 / 20)
    assert "review s per label" in report.to_markdown()
