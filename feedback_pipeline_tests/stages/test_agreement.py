"""agreement_report on a real Dagster instance: every statistic under its own name, scores too."""
from __future__ import annotations

import json

import dagster as dg

from feedback_pipeline.core import agreement as ag
from feedback_pipeline.definitions import build_definitions
from feedback_pipeline.jobs import DAILY_GROUPS, groups
from feedback_pipeline.storage import Storage
from feedback_pipeline_tests.conftest import DAYS, copy_root


def test_daily_report_names_each_statistic_and_reads_pointwise_scores(generated_root, tmp_path):
    root = copy_root(generated_root, tmp_path / "data")
    defs = build_definitions(str(root))
    storage = Storage(root)
    assets = [a for a in defs.assets if getattr(a, "partitions_def", None) is not None]
    day = DAYS[0]
    result = dg.materialize(assets, partition_key=day, resources=defs.resources,
                            instance=dg.DagsterInstance.ephemeral(),
                            selection=groups(DAILY_GROUPS))
    assert result.success
    rows = storage.read_table("warehouse", "agreement_report", day).to_pandas()
    summary = dict(zip(rows.loc[rows["section"] == "summary", "key"],
                       rows.loc[rows["section"] == "summary", "value"], strict=True))
    for name in ag.GATE_STATISTICS:
        assert name in summary and f"{name}_level" in summary
    assert set(json.loads(summary["statistic_definitions"])) == set(ag.GATE_STATISTICS)
    assert summary["gated_statistic"] in ag.GATE_STATISTICS
    labels = storage.read_table("warehouse", "reviewed_labels", day).to_pandas()
    scored = labels[(labels["task"] == "pointwise") & labels["score"].notna()
                    & (labels["status"] != ag.NOT_A_VOTE)]
    duplicated = scored.groupby(["trace_id", "candidate_id"])["reviewer_id"].nunique()
    assert int(summary["score_n_items"]) == int((duplicated >= 2).sum())
    demonstrated = labels[(labels["task"] == "demonstration") & labels["answer"].notna()
                          & (labels["status"] != ag.NOT_A_VOTE)]
    demo_items = demonstrated.groupby("trace_id")["reviewer_id"].nunique()
    assert int(summary["demonstration_n_items"]) == int((demo_items >= 2).sum())
    if (duplicated >= 2).any():
        assert summary["score_insufficient_reason"] != "no duplicate-scored items"
        assert summary["alpha_ratio"] != "None" or summary["alpha_interval"] == "None"
