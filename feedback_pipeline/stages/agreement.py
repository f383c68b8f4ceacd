"""agreement_report: how consistently reviewers read the rubric, per day.

The day's figures are shown in the UI (kappa and alpha plotted across days), each coefficient
under its own name (core.agreement). Pairwise labels and pointwise 1-5 scores are read in one
streamed pass, so the score alphas (ordinal, interval, ratio) reach the day's report too. The
promotion gate itself is evaluated over the whole release window in dataset_manifest; here a
failing day warns.
"""

import json

import dagster as dg
import pandas as pd

from feedback_pipeline.core.agreement import (
    KEY_COLUMNS,
    STAGE_COLUMNS,
    gate_value,
    review_inputs_streamed,
)
from feedback_pipeline.core.agreement import agreement_report as build_report
from feedback_pipeline.partitions import daily_partitions
from feedback_pipeline.resources import PipelineResource
from feedback_pipeline.stages.common import WAREHOUSE_IO
from feedback_pipeline.storage import PartitionBatches

SUMMARY_FLOATS = ("cohens_kappa", "observed_agreement", "chance_agreement",
                  "krippendorff_alpha_nominal", "kappa_ci_low", "kappa_ci_high",
                  "conger_kappa", "conger_kappa_ci_low", "conger_kappa_ci_high",
                  "fleiss_kappa", "fleiss_kappa_ci_low", "fleiss_kappa_ci_high",
                  "gwet_ac1", "gwet_ac1_ci_low", "gwet_ac1_ci_high",
                  "alpha_ordinal", "alpha_interval", "alpha_ratio", "score_alpha_nominal",
                  "score_fleiss_kappa", "demonstration_accept_rate",
                  "demonstration_pair_agreement")


@dg.asset(
    io_manager_key=WAREHOUSE_IO,
    partitions_def=daily_partitions,
    group_name="agreement",
    kinds={"parquet"},
    description="Cohen's (two reviewers), Conger's and Fleiss' kappa, Gwet's AC1, "
                "Krippendorff's alpha (labels; ordinal, interval and ratio on scores) and the "
                "confusion matrix over duplicate reviews, with per-slice and per-reviewer "
                "diagnostics.",
    check_specs=[dg.AssetCheckSpec("daily_agreement_gate", asset="agreement_report",
                                   partitions_def=daily_partitions,
                                   blocking=False,
                                   description="The day's agreement reaches the declared gate "
                                   "(warns; the window gate blocks promotion).")],
)
def agreement_report(context: dg.AssetExecutionContext, pipeline: PipelineResource,
                     reviewed_labels: PartitionBatches):
    policy = pipeline.policy
    gold = pipeline.gold()
    reviews, scores, demonstrations = review_inputs_streamed(
        reviewed_labels.to_arrow(KEY_COLUMNS),
        reviewed_labels.iter_batches(columns=STAGE_COLUMNS))
    report = build_report(reviews, scores=scores, demonstrations=demonstrations,
                          gold=pd.DataFrame(gold) if gold else None,
                          bootstrap=policy.bootstrap_samples, seed=policy.random_seed,
                          min_items=policy.min_duplicate_items)
    del reviews, scores, demonstrations
    # gate first: it records in the summary which statistic was actually used (gated_statistic)
    value = gate_value(report, policy.agreement_statistic, policy.agreement_gate_on)
    summary = report.summary
    rows = pd.concat([
        pd.DataFrame([{"section": "summary", "key": k,
                       "value": json.dumps(v) if isinstance(v, dict) else str(v)}
                      for k, v in summary.items()]),
        report.by_slice.assign(section="slice").astype(str).melt(
            id_vars=["section", "slice"], var_name="key").rename(columns={"slice": "group"})
        if not report.by_slice.empty else pd.DataFrame(),
        report.by_reviewer.assign(section="reviewer").astype(str).melt(
            id_vars=["section", "reviewer_id"], var_name="key").rename(
            columns={"reviewer_id": "group"})
        if not report.by_reviewer.empty else pd.DataFrame(),
    ], ignore_index=True).reindex(columns=["section", "group", "key", "value"])
    metadata = {f"agreement/{k}": float(summary[k]) for k in SUMMARY_FLOATS
                if isinstance(summary.get(k), int | float)}
    metadata.update({
        "n_items": int(summary.get("n_items") or 0),
        "n_reviewers": int(summary.get("n_reviewers") or 0),
        "report": dg.MetadataValue.md(report.to_markdown()),
        "dagster/row_count": len(rows),
    })
    metadata["agreement/gated_statistic"] = str(summary.get("gated_statistic"))
    yield dg.Output(rows, metadata=metadata)
    yield dg.AssetCheckResult(
        check_name="daily_agreement_gate",
        passed=value is not None and value >= policy.kappa_gate,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "statistic": policy.agreement_statistic,
            "gated_statistic": str(summary.get("gated_statistic")),
            "gated_statistic_note": str(summary.get("gated_statistic_note") or ""),
            "gate_on": policy.agreement_gate_on,
            "value": float(value) if value is not None else -1.0,
            "gate": policy.kappa_gate,
            "reason": summary.get("insufficient_reason") or "measured",
        },
    )
