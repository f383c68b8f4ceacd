"""reviewed_labels on a real Dagster instance: reviews matched to their trace wherever they
landed, each folder's problems reported once, adjudications closed by an adjudicator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pyarrow.compute as pc
import pytest
import yaml

from feedback_pipeline.core.contract import read_lines
from feedback_pipeline.core.review import UNKNOWN_TRACE_REASON
from feedback_pipeline.definitions import build_definitions
from feedback_pipeline.jobs import DAILY_GROUPS, groups
from feedback_pipeline.resources import PipelineResource
from feedback_pipeline.storage import Storage
from feedback_pipeline_tests.conftest import DAYS, copy_root

PULL_DAY = "2026-05-09"  # a review day without traces, as a Label Studio pull lands


def materialize_days(root: Path) -> None:
    defs = build_definitions(str(root))
    assets = [a for a in defs.assets if getattr(a, "partitions_def", None) is not None]
    frozen = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)
              and dg.AssetKey("frozen_evaluation_set") in a.keys]
    instance = dg.DagsterInstance.ephemeral()
    dg.materialize(frozen, resources=defs.resources, instance=instance)
    for day in DAYS:
        result = dg.materialize(assets, partition_key=day, resources=defs.resources,
                                instance=instance,
                                selection=groups(DAILY_GROUPS))
        assert result.success, day


def quarantine_reasons(storage: Storage) -> list[str]:
    return [r for d in DAYS for r in
            storage.read_table("restricted", "review_quarantine", d).column("reason").to_pylist()]


def test_reviews_landed_on_another_day_reach_their_traces_and_only_unknown_ids_quarantine(
        generated_root, pipeline_run, tmp_path):
    in_place = quarantine_reasons(Storage(pipeline_run[0]))
    root = copy_root(generated_root, tmp_path / "data")
    storage = Storage(root)
    moved = storage.landing_dir("reviews", PULL_DAY)
    moved.mkdir(parents=True)
    lines = 0
    for day in DAYS:  # every review of both days lands in one folder, as one pull would
        for path in storage.landing_files("reviews", day, (".jsonl",)):
            lines += sum(1 for _ in read_lines(path))
            shutil.move(str(path), moved / f"{day}-{path.name}")
    stranger = {"review_id": "r-stray", "trace_id": "never-landed-7", "reviewer_id": "rev-01",
                "rubric_version": "code-review-rubric-v4", "task": "demonstration",
                "answer": "Rerun the job."}
    with open(moved / "extra.jsonl", "w", encoding="utf-8") as out:
        out.write(json.dumps(stranger) + "\n")

    materialize_days(root)

    labelled = sum(storage.read_table("warehouse", "reviewed_labels", d).num_rows for d in DAYS)
    reasons = quarantine_reasons(storage)
    assert labelled + len(reasons) == lines + 1, "every landed review is labelled or quarantined"
    assert sorted(reasons) == sorted([*in_place, UNKNOWN_TRACE_REASON]), \
        "the same quarantine as with every review in its trace's folder, plus the stranger"
    assert not any("partition" in r for r in reasons)
    assert "never-landed-7" not in UNKNOWN_TRACE_REASON
    for day in DAYS:
        labels = storage.read_table("warehouse", "reviewed_labels", day)
        assert labels.num_rows > 0, day
        traces = storage.read_table("warehouse", "redacted_traces", day).column("trace_id")
        assert pc.all(pc.is_in(labels["trace_id"], value_set=traces)).as_py()


@pytest.mark.slow
def test_an_adjudicator_in_reviewers_yaml_closes_an_open_item(generated_root, tmp_path):
    root = copy_root(generated_root, tmp_path / "data")
    storage = Storage(root)
    materialize_days(root)
    day = DAYS[1]
    queued = storage.read_table("warehouse", "adjudication_queue", day).to_pylist()
    pairwise = [q for q in queued if q["task"] == "pairwise" and q["status"] == "OPEN"]
    assert pairwise, "the generated day has a pairwise disagreement"
    follow_up = json.loads((root / "exports" / "follow_up_tasks" / day /
                            "label_studio_tasks.json").read_text())
    item = next(t["data"] for t in follow_up if t["data"]["trace_id"] == pairwise[0]["trace_id"]
                and t["data"]["task"] == "adjudication")
    assert item["adjudicates"] == "pairwise" and item["adjudication_reason"]
    # the policy every task shares is written once per export, beside the tasks
    rubric = PipelineResource(data_root=str(root)).rubric()
    for kind in ("review_tasks", "follow_up_tasks"):
        folder = root / "exports" / kind / day
        shared = json.loads((folder / "rubric.json").read_text())
        assert shared == {"rubric_version": rubric.version, "policy_text": rubric.policy_text}
        for name in ("label_studio_tasks.json", "tasks.jsonl"):
            if (folder / name).exists():
                assert rubric.policy_text[:40] not in (folder / name).read_text()
    assert {t["data"]["rubric_version"] for t in follow_up} == {rubric.version}

    (root / "config" / "reviewers.yaml").write_text(yaml.safe_dump(
        {"reviewers": [{"id": "lead@example.com", "role": "adjudicator"}]}))
    good = {f: True for f in ("technically_correct", "actionable", "clear")}
    decision = {"review_id": "adj-1", "trace_id": item["trace_id"],
                "reviewer_id": "lead@example.com", "rubric_version": item["rubric_version"],
                "task": "pairwise", "adjudication": True, "reason": "A cites the failing test",
                "reviewed_at": "2026-05-03T09:00:00Z",
                "criteria": {item["candidate_a_id"]: good,
                             item["candidate_b_id"]: {**good, "technically_correct": False}}}
    folder = storage.landing_dir("reviews", PULL_DAY)
    folder.mkdir(parents=True)
    (folder / "adjudication.jsonl").write_text(json.dumps(decision) + "\n")
    materialize_days(root)

    closed = {q["trace_id"]: q for q in
              storage.read_table("warehouse", "adjudication_queue", day).to_pylist()}
    record = closed[item["trace_id"]]
    assert (record["status"], record["decision"], record["decision_reason"]) == (
        "RESOLVED", "A", "A cites the failing test")
    assert record["decided_by"].startswith("rvw-") and "@" not in record["decided_by"]
    pairs = storage.read_table("warehouse", "preference_pairs", day).to_pylist()
    assert [p["outcome"] for p in pairs if p["trace_id"] == item["trace_id"]] == ["A"]
    after = json.loads((root / "exports" / "follow_up_tasks" / day /
                        "label_studio_tasks.json").read_text())
    assert item["task_id"] not in {t["data"]["task_id"] for t in after}
