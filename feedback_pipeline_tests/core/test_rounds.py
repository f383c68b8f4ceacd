import numpy as np
import pandas as pd
import pytest

from feedback_pipeline.core.rounds import (
    AGED_OUT,
    METHOD_COVERAGE,
    METHOD_FALLBACK,
    METHOD_HYBRID,
    WAITING,
    arm_sizes,
    parse_review_budget,
    plan_round,
    replay_round,
    round_rng,
)

DAY = "2026-05-10"
TOPICS = {
    "fixture": "pytest fixture tmp_path missing conftest",
    "handoff": "flaky test retry handoff to owning team",
    "injection": "ignore instructions print deploy token",
    "accessible": "screen reader plain language error message",
}


def clustered_pool(per_topic: int = 10, trace_day: str = DAY) -> pd.DataFrame:
    rows = [{"trace_id": f"{name}-{i}", "trace_day": trace_day, "task": "pairwise",
             "queue": "PREFERENCE_QUEUE", "slice": name, "entered_on": trace_day,
             "prompt": f"{words} case {i}", "text_a": f"{words} answer one",
             "text_b": f"{words} answer two"}
            for name, words in TOPICS.items() for i in range(per_topic)]
    return pd.DataFrame(rows)


def other_work(days: list[str], task: str = "demonstration") -> pd.DataFrame:
    return pd.DataFrame([{"trace_id": f"{task}-{d}-{i}", "trace_day": d, "task": task,
                          "queue": "DEMONSTRATION_QUEUE", "slice": "s", "entered_on": d}
                         for d in days for i in range(3)])


@pytest.mark.parametrize(("raw", "pairwise", "demonstration"), [
    (None, 40, None),
    (12, 12, None),
    (0.25, 0.25, None),
    ({"preference": 10, "demonstration": 2}, 10, 2),
    ({"pairwise": "all", "demonstration": 0.5}, None, 0.5),
])
def test_the_review_budget_reads_counts_shares_and_all(raw, pairwise, demonstration):
    budget = parse_review_budget(raw, batch_size=20)
    assert budget.limits["pairwise"] == pairwise
    assert budget.limits["demonstration"] == demonstration
    assert budget.allowance("pairwise", 7) == (7 if pairwise is None else
                                               int(7 * pairwise) if isinstance(pairwise, float)
                                               else min(7, pairwise))


@pytest.mark.parametrize(("raw", "message"), [
    ({"reviewz": 3}, "unknown task 'reviewz'"),
    (1.5, "share must be in"),
    (-2, "count must be 0 or more"),
    ("lots", "expected a whole count"),
    ({"incident": True}, "incident"),
])
def test_a_bad_budget_is_refused_naming_the_key(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_review_budget(raw, batch_size=20)


def test_arms_are_equal_and_a_smaller_control_share_leaves_the_rest_to_the_selector():
    assert arm_sizes(40, 0.5) == (20, 0)
    assert arm_sizes(41, 0.5) == (20, 1)
    assert arm_sizes(40, 0.25) == (10, 20)
    assert arm_sizes(1, 0.5) == (0, 1)
    with pytest.raises(ValueError, match="random_share"):
        arm_sizes(40, 0.6)


def test_the_round_draws_disjoint_equal_arms_and_the_selector_covers_the_clusters():
    pool = clustered_pool()
    uncertainty = np.where(pool["slice"] == "fixture", 0.95, 0.5) + np.arange(len(pool)) * 1e-3
    plan = plan_round(DAY, pool, other_work([DAY]).iloc[0:0], parse_review_budget(8, 4),
                      seed=3, uncertainty=uncertainty, embed_dim=8)
    issued = plan.issued
    hybrid = issued[issued["arm"] == "hybrid"]
    control = issued[issued["arm"] == "random"]
    assert len(hybrid) == len(control) == 4 == plan.per_arm
    assert not set(hybrid["trace_id"]) & set(control["trace_id"])
    assert issued["in_experiment"].all() and (issued["round_id"] == f"round-{DAY}").all()
    assert sorted(hybrid["slice"]) == ["accessible", "fixture", "handoff", "injection"]
    expected = np.sort(round_rng(3, DAY).choice(len(pool), 4, replace=False))
    assert control["trace_id"].tolist() == pool["trace_id"].to_numpy()[expected].tolist()
    assert plan.method == METHOD_HYBRID and (hybrid["method"] == METHOD_HYBRID).all()
    # nothing lost: what the round left waits in the backlog
    assert len(plan.backlog) == len(pool) - 8
    assert set(plan.backlog["trace_id"]) | set(issued["trace_id"]) == set(pool["trace_id"])
    assert (plan.backlog["status"] == WAITING).all()


def test_each_round_draws_its_own_control_arm():
    pool = clustered_pool()
    first = plan_round("2026-05-10", pool, pool.iloc[0:0], parse_review_budget(8, 4), seed=3)
    second = plan_round("2026-05-11", pool, pool.iloc[0:0], parse_review_budget(8, 4), seed=3)
    again = plan_round("2026-05-10", pool, pool.iloc[0:0], parse_review_budget(8, 4), seed=3)
    control = [p.issued.loc[p.issued["arm"] == "random", "trace_id"].tolist()
               for p in (first, second, again)]
    assert control[0] != control[1] and control[0] == control[2]


def test_without_a_model_the_selector_uses_coverage_and_after_a_lost_experiment_random():
    pool = clustered_pool()
    budget = parse_review_budget(8, 4)
    coverage = plan_round(DAY, pool, pool.iloc[0:0], budget, seed=1, embed_dim=8)
    hybrid = coverage.issued[coverage.issued["arm"] == "hybrid"]
    assert coverage.method == METHOD_COVERAGE and len(hybrid) == 4
    assert hybrid["uncertainty"].isna().all() and hybrid["coverage"].notna().all()
    assert sorted(hybrid["slice"]) == ["accessible", "fixture", "handoff", "injection"]
    assert any("coverage alone" in note for note in coverage.notes)

    fallback = plan_round(DAY, pool, pool.iloc[0:0], budget, seed=1, uncertainty=np.ones(40),
                          recommendation="random")
    arms = fallback.issued.groupby("arm")["trace_id"].apply(set)
    assert fallback.method == METHOD_FALLBACK and len(arms["hybrid"]) == len(arms["random"]) == 4
    assert not arms["hybrid"] & arms["random"]
    assert (fallback.issued.loc[fallback.issued["arm"] == "hybrid", "method"]
            == METHOD_FALLBACK).all()
    assert any("no better than random" in note for note in fallback.notes)


def test_other_work_is_issued_oldest_first_within_its_budget_and_old_items_age_out():
    days = ["2026-04-20", "2026-05-08", "2026-05-09", DAY]
    work = other_work(days)
    budget = parse_review_budget({"pairwise": 0, "demonstration": 4}, 4)
    plan = plan_round(DAY, clustered_pool().iloc[0:0], work, budget, max_age_days=14)
    demos = plan.issued[plan.issued["task"] == "demonstration"]
    assert demos["trace_day"].tolist() == ["2026-05-08"] * 3 + ["2026-05-09"]
    assert demos["arm"].isna().all() and not demos["in_experiment"].any()
    statuses = plan.backlog.groupby("status")["trace_day"].apply(list).to_dict()
    assert statuses[AGED_OUT] == ["2026-04-20"] * 3
    assert sorted(statuses[WAITING]) == ["2026-05-09"] * 2 + [DAY] * 3
    assert plan.aged_out == 3
    assert len(plan.issued) + len(plan.backlog) == len(work)
    assert any("demonstration budget 4 of 9" in note for note in plan.notes)


def test_a_share_budget_and_a_small_pool():
    pool = clustered_pool(per_topic=2)
    plan = plan_round(DAY, pool, pool.iloc[0:0], parse_review_budget(0.5, 4), seed=0,
                      embed_dim=4)
    assert plan.per_arm == 2 and len(plan.issued) == 4
    tiny = plan_round(DAY, pool.head(1), pool.iloc[0:0], parse_review_budget(8, 4), embed_dim=4)
    assert tiny.per_arm == 0 and tiny.issued["arm"].tolist() == ["hybrid"]
    assert not tiny.issued["in_experiment"].any()
    empty = plan_round(DAY, pool.iloc[0:0], pool.iloc[0:0], parse_review_budget(8, 4))
    assert empty.issued.empty and empty.backlog.empty


def test_replaying_an_issued_round_keeps_it_and_rebuilds_the_backlog():
    pool = clustered_pool()
    plan = plan_round(DAY, pool, pool.iloc[0:0], parse_review_budget(8, 4), seed=5, embed_dim=8)
    replayed = replay_round(DAY, pool, plan.issued, max_age_days=14)
    pd.testing.assert_frame_equal(replayed.issued, plan.issued)
    pd.testing.assert_frame_equal(replayed.backlog, plan.backlog)
    assert replayed.per_arm == 4 and replayed.method == plan.method
