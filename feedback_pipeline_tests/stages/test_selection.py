import pandas as pd
import pyarrow as pa

from feedback_pipeline.stages.selection import (
    current_recommendation,
    earlier_pairs,
    pool_ids,
    select_batches,
)
from feedback_pipeline.storage import Storage


def test_the_experiment_runs_in_the_release_and_reports_both_arms(pipeline_run):
    root = pipeline_run[0]
    storage = Storage(root)
    report = storage.read_table("warehouse", "selection_experiment_report", None).to_pandas()
    assert set(report["arm"]) == {"baseline", "hybrid", "random"}
    arms = report.set_index("arm")
    assert arms.loc["hybrid", "accepted_labels"] > 0 and arms.loc["random", "accepted_labels"] > 0
    for arm in ("hybrid", "random"):
        assert abs(arms.loc[arm, "gain"] - (arms.loc[arm, "score"]
                                            - arms.loc["baseline", "score"])) < 1e-9
    assert current_recommendation(storage) in {"hybrid", "random"}
    assert report["recommendation"].nunique() == 1


def test_a_random_recommendation_turns_the_hybrid_arm_off():
    pool = pd.DataFrame({"trace_id": [f"t{i}" for i in range(30)], "slice": "s",
                         "prompt": [f"prompt {i}" for i in range(30)],
                         "text_a": [f"answer a {i}" for i in range(30)],
                         "text_b": [f"answer b {i % 7}" for i in range(30)]})
    history = pd.DataFrame({"prompt": ["p1", "p2", "p3"], "chosen": ["good fix", "good", "ok"],
                            "rejected": ["rm -rf", "bad", "leak"]})
    hybrid, _ = select_batches(pool, history, 5, 0.6, 1, "hybrid")
    assert set(hybrid["arm"]) == {"hybrid", "random"}
    fallback, notes = select_batches(pool, history, 5, 0.6, 1, "random")
    assert set(fallback["arm"]) == {"random"} and len(fallback) == 5
    assert any("random" in note for note in notes)


def test_the_model_trains_on_the_newest_pairs_only_up_to_the_policy_limit(tmp_path):
    storage = Storage(tmp_path)
    for day, n in (("2026-05-01", 4), ("2026-05-02", 3), ("2026-05-03", 2)):
        storage.write_table("warehouse", "preference_pairs", day, pa.table({
            "trace_id": [f"{day}-{i}" for i in range(n)], "prompt": [day] * n,
            "chosen": ["c"] * n, "rejected": ["r"] * n}))
    history = earlier_pairs(storage, "2026-05-04", limit=4)
    assert len(history) == 4
    assert history["prompt"].value_counts().to_dict() == {"2026-05-03": 2, "2026-05-02": 2}
    assert len(earlier_pairs(storage, "2026-05-03", limit=100)) == 7
    assert earlier_pairs(storage, "2026-05-01", limit=100).empty


def test_a_large_day_pool_is_a_seeded_sample_of_the_preference_queue():
    queues = pd.DataFrame({"trace_id": [f"t{i}" for i in range(40)],
                           "destination": ["PREFERENCE_QUEUE", "DEMONSTRATION_QUEUE"] * 20})
    sampled = pool_ids(queues, limit=5, seed=7)
    assert len(set(sampled)) == 5
    assert set(sampled) <= {f"t{i}" for i in range(0, 40, 2)}
    assert sampled.tolist() == pool_ids(queues, limit=5, seed=7).tolist()
    assert sorted(pool_ids(queues, limit=100, seed=7)) == sorted(f"t{i}" for i in range(0, 40, 2))
