import pandas as pd

from feedback_pipeline.stages.selection import current_recommendation, select_batches
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
