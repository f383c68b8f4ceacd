import json
import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest

from feedback_pipeline.cli import run_job, run_pipeline
from feedback_pipeline.core.candidates import PreferenceModelCandidate
from feedback_pipeline.core.experiment import compare_arms
from feedback_pipeline.core.rounds import AGED_OUT, METHOD_FALLBACK, WAITING
from feedback_pipeline.settings import load_policy
from feedback_pipeline.stages.selection import (
    ALL_ROUNDS,
    current_recommendation,
    earlier_pairs,
    recommendation_of,
    write_recommendation,
)
from feedback_pipeline.storage import WAREHOUSE, Storage
from feedback_pipeline.synth.review_simulator import answer_exported_tasks
from feedback_pipeline_tests.core.test_preference_model import (
    FEATURES,
    as_training,
    synthetic_pairs,
)

LOOP_DAYS = ["2026-05-01", "2026-05-02", "2026-05-03"]
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def rounds_of(storage: Storage) -> dict[str, pd.DataFrame]:
    return {day: storage.read_table(WAREHOUSE, "selected_batch", day).to_pandas()
            for day in storage.table_days(WAREHOUSE, "selected_batch")}


def assert_rounds_hold(storage: Storage) -> None:
    """Every round: disjoint, equal arms; one round per trace; the exported tasks are exactly
    what the round issued; the backlog holds the rest of the eligible work."""
    seen: set[str] = set()
    for day, issued in rounds_of(storage).items():
        hybrid = set(issued.loc[issued["arm"] == "hybrid", "trace_id"])
        control = set(issued.loc[issued["arm"] == "random", "trace_id"])
        in_experiment = issued[issued["in_experiment"]]
        assert not hybrid & control
        assert (in_experiment["arm"] == "hybrid").sum() == (in_experiment["arm"] == "random").sum()
        assert len(control) > 0
        assert not seen & set(issued["trace_id"]), f"{day} re-issued a trace"
        seen |= set(issued["trace_id"])
        tasks = storage.read_table(WAREHOUSE, "review_tasks", day).to_pandas()
        assert sorted(tasks["trace_id"]) == sorted(issued["trace_id"])
        assert (tasks["round_id"] == f"round-{day}").all()
        assert tasks.set_index("trace_id")["arm"].fillna("none").to_dict() == \
            issued.set_index("trace_id")["arm"].fillna("none").to_dict()
        exported = [json.loads(line) for line in
                    (storage.exports_dir / "review_tasks" / day / "tasks.jsonl").read_text()
                    .splitlines()]
        assert sorted(t["trace_id"] for t in exported) == sorted(issued["trace_id"])
        backlog = storage.read_table(WAREHOUSE, "review_backlog", day).to_pandas()
        assert not set(backlog["trace_id"]) & set(issued["trace_id"])
        queues = storage.read_table(WAREHOUSE, "routed_queues", day).to_pandas()
        routed = set(queues.loc[queues["destination"] != "FROZEN_EVALUATION", "trace_id"]) - \
            set(queues.loc[queues["destination"] == "FROZEN_EVALUATION", "trace_id"])
        placed = set(backlog["trace_id"]) | seen
        assert routed <= placed, "a routed trace is neither issued nor in the backlog"


def test_every_round_on_the_generated_root_holds(pipeline_run):
    root = pipeline_run[0]
    storage = Storage(root)
    assert_rounds_hold(storage)
    report = storage.read_table(WAREHOUSE, "selection_experiment_report", None).to_pandas()
    assert set(report["arm"]) == {"baseline", "hybrid", "random"}
    reported = pipeline_run[2].get_latest_materialization_event(
        dg.AssetKey("selector_recommendation"))
    assert reported is not None, "the experiment reports the verdict the next round reads"
    verdict = reported.asset_materialization.metadata["recommendation"].value
    assert verdict == report["recommendation"].iloc[0]
    assert current_recommendation(storage, str(report["selection_policy_version"].iloc[0]))[0] \
        == verdict
    assert ALL_ROUNDS in set(report["scope"])
    for _, scope in report.groupby(["scope", "candidate"]):
        arms = scope.set_index("arm")
        for arm in ("hybrid", "random"):
            assert abs(arms.loc[arm, "gain"] - (arms.loc[arm, "score"]
                                                - arms.loc["baseline", "score"])) < 1e-9
            assert arms.loc[arm, "accepted_labels"] <= arms.loc[arm, "issued"]
    assert report["recommendation"].nunique() == 1
    assert current_recommendation(storage, "hybrid-selector-v3")[0] in {"hybrid", "random"}
    release = next((root / "releases").iterdir())
    pairs = pd.read_parquet(release / "preference_pairs.parquet")
    assert {"round_id", "arm"} <= set(pairs.columns)
    members = pd.concat(rounds_of(storage).values()).set_index("trace_id")
    issued = pairs[pairs["trace_id"].isin(members.index)]
    assert len(issued) and (issued["arm"].fillna("none") == members.loc[
        issued["trace_id"], "arm"].fillna("none").to_numpy()).all()


@pytest.fixture(scope="module")
def loop_root(tmp_path_factory: pytest.TempPathFactory):
    """Three on-export days; the first two run as the closed loop: each round's exported
    tasks are answered by the simulated reviewers, then taken in."""
    from feedback_pipeline.synth.generator import generate

    root = tmp_path_factory.mktemp("loop") / "data"
    generate(root, days=3, traces_per_day=50, seed=5, start=date.fromisoformat(LOOP_DAYS[0]),
             reviews="on_export")
    with (root / "config" / "policy.yaml").open("a", encoding="utf-8") as policy:
        policy.write("review_budget: {preference: 12}\nbacklog_max_age_days: 1\n")
    instance = dg.DagsterInstance.local_temp(str(tmp_path_factory.mktemp("loop_home")))
    outcome = run_pipeline(root, end=LOOP_DAYS[1], instance=instance,
                           reviewers=lambda day: reviewed_days(root, day))
    return root, instance, outcome


def reviewed_days(root: Path, day: str) -> set[str]:
    answered = answer_exported_tasks(root, day)
    return {p.parent.name for p in (*answered.written, *answered.removed)}


@pytest.mark.slow
def test_the_closed_loop_reviews_only_what_rounds_issued_and_counts_its_cost(loop_root):
    root, _, outcome = loop_root
    storage = Storage(root)
    assert outcome.promoted and not outcome.error, outcome
    assert len(outcome.rounds) == 2 and all("hybrid 6 / random 6" in line
                                            for line in outcome.rounds)
    assert_rounds_hold(storage)
    carried = storage.read_table(WAREHOUSE, "review_backlog", LOOP_DAYS[0]).to_pandas()
    assert (carried["status"] == WAITING).sum() > 0
    second = storage.read_table(WAREHOUSE, "selected_batch", LOOP_DAYS[1]).to_pandas()
    assert (second["trace_day"] == LOOP_DAYS[0]).any(), "round 2 took nothing from the backlog"
    issued = pd.concat(rounds_of(storage).values())
    labels = pd.concat([storage.read_table(WAREHOUSE, "reviewed_labels", d).to_pandas()
                        for d in LOOP_DAYS[:2]])
    assert len(labels) and set(labels["trace_id"]) <= set(issued["trace_id"])
    assert labels["round_id"].notna().all() and (labels["review_seconds"] > 0).all()

    report = storage.read_table(WAREHOUSE, "selection_experiment_report", None).to_pandas()
    overall = report[(report["scope"] == ALL_ROUNDS) & (report["arm"] != "baseline")]
    assert set(overall["arm"]) == {"hybrid", "random"}
    assert (overall["seconds_per_accepted_label"] > 0).all()
    assert overall["evidence"].str.len().gt(0).all()

    manifest = json.loads((next((root / "releases").iterdir()) / "manifest.json").read_text())
    cost = manifest["review_cost"]
    assert cost["seconds_per_accepted_label"] > 0
    assert set(cost["by_arm"]) >= {"hybrid", "random"}
    assert cost["accepted_labels"] == sum(v["accepted_labels"] for v in cost["by_arm"].values())
    pairs = pd.read_parquet(next((root / "releases").iterdir()) / "preference_pairs.parquet")
    assert pairs["arm"].isin(["hybrid", "random"]).all()  # every pair came from a round


@pytest.mark.slow
def test_running_the_loop_again_changes_no_round_and_writes_no_version(loop_root, tmp_path):
    root = shutil.copytree(loop_root[0], tmp_path / "data")
    storage = Storage(root)
    before = rounds_of(storage)
    versions = storage.list_versions()
    again = run_pipeline(root, end=LOOP_DAYS[1], instance=dg.DagsterInstance.ephemeral(),
                         reviewers=lambda day: reviewed_days(root, day))
    assert not again.error and not again.promoted and not again.reasons
    assert storage.list_versions() == versions
    for day, frame in rounds_of(storage).items():
        pd.testing.assert_frame_equal(frame, before[day])


@pytest.mark.slow
def test_a_lost_experiment_sends_the_next_round_to_random_and_a_new_selector_resets_it(
        loop_root, tmp_path):
    """The experiment's verdict is stored; the next day's round reads it. Here the verdict is
    a real experiment in which the hybrid arm was rigged to one easy cluster."""
    root = shutil.copytree(loop_root[0], tmp_path / "data")
    storage = Storage(root)
    policy = load_policy(storage)
    routine = synthetic_pairs(300, seed=10, slices=["routine"])
    spread = synthetic_pairs(300, seed=11)
    lost = compare_arms({"hybrid": as_training(routine.head(40)),
                         "random": as_training(spread.head(40))}, synthetic_pairs(300, seed=13),
                        PreferenceModelCandidate(n_features=FEATURES),
                        as_training(routine.tail(80)), policy.random_seed, bootstrap=200,
                        min_eval_items=policy.min_eval_items)
    verdict, reason = recommendation_of([lost], policy)
    assert verdict == "random" and "did not beat random" in reason
    write_recommendation(storage, verdict, reason, lost.evidence, policy.selection_policy_version)

    result = run_job("daily_pipeline", str(root), dg.DagsterInstance.ephemeral(), False, QUIET,
                     LOOP_DAYS[2])
    assert result.success
    issued = storage.read_table(WAREHOUSE, "selected_batch", LOOP_DAYS[2]).to_pandas()
    hybrid = issued[issued["arm"] == "hybrid"]
    assert len(hybrid) and (hybrid["method"] == METHOD_FALLBACK).all()
    assert len(hybrid[hybrid["in_experiment"]]) == (issued["arm"] == "random").sum()
    assert not set(hybrid["trace_id"]) & set(issued.loc[issued["arm"] == "random", "trace_id"])
    metadata = next(e for e in result.asset_materializations_for_node("labeling_round")
                    if e.asset_key.path[-1] == "selected_batch").metadata
    assert metadata["fallback_to_random"].value is True
    assert "no better than random" in metadata["notes"].value
    backlog = storage.read_table(WAREHOUSE, "review_backlog", LOOP_DAYS[2]).to_pandas()
    assert (backlog["status"] == WAITING).any()
    assert (backlog.loc[backlog["trace_day"] == LOOP_DAYS[0], "status"] == AGED_OUT).all()

    assert current_recommendation(storage, policy.selection_policy_version)[0] == "random"
    fresh, why = current_recommendation(storage, "hybrid-selector-v4")
    assert fresh == "hybrid" and "starts with hybrid" in why


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


def test_near_frozen_reads_the_stored_fingerprints_and_fills_only_missing_ones():
    from feedback_pipeline.core.fingerprint import fingerprints
    from feedback_pipeline.stages.selection import near_frozen

    frozen_prompt = "Why does the build fail on the release branch after the merge?"
    frozen = pd.DataFrame({"trace_id": ["f1"], "prompt": [frozen_prompt],
                           "prompt_fingerprint": fingerprints([frozen_prompt])})
    prompts = [frozen_prompt.upper(), "Unrelated question about tabs and spaces in the config",
               frozen_prompt + " Thanks!"]
    pool = pd.DataFrame({"trace_id": ["copy", "other", "near"], "prompt": prompts})
    computed = near_frozen(pool, frozen, 0.8)
    assert computed == {"copy", "near"}
    stored = pool.assign(prompt_fingerprint=[fingerprints([prompts[0]])[0], None, None])
    assert near_frozen(stored, frozen, 0.8) == computed
    # a stored fingerprint is trusted as redaction wrote it: here one naming the frozen prompt
    relabelled = pool.assign(prompt_fingerprint=[None, fingerprints([frozen_prompt])[0], None])
    assert "other" in near_frozen(relabelled, frozen, 0.8)
