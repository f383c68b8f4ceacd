"""judge_calibration and judge_accepted_labels: an LLM judge is advisory until it proves itself.

Swapped choices are mapped back, agreement with human outcomes and order flips are measured, and
a blocking check keeps every judge label out of the preference lane when calibration fails.
These assets run in their own job so a biased judge never stops the daily data pipeline.
"""


from typing import Any

import dagster as dg
import pandas as pd

from feedback_pipeline.core.contract import quarantine_to_table, read_lines
from feedback_pipeline.core.judge import calibrate_judge, judge_preferences
from feedback_pipeline.core.judge_input import read_judge_labels
from feedback_pipeline.core.parallel import stage_workers, stop_workers
from feedback_pipeline.partitions import daily_partitions
from feedback_pipeline.resources import PipelineResource
from feedback_pipeline.stages.common import RESTRICTED_IO, WAREHOUSE_IO, id_list, max_line_bytes


def load_judge_labels(pipeline: PipelineResource, day: str
                      ) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The day's judge labels as a frame, and the lines that broke the contract."""
    storage = pipeline.storage
    limit = max_line_bytes(pipeline)
    labels = read_judge_labels(((read_lines(path, limit), storage.relative(path))
                                for path in storage.landing_files("judge", day, (".jsonl",))),
                               workers=stage_workers())
    stop_workers()  # calibration runs here alone: its frames need the room
    return labels


@dg.multi_asset(
    outs={
        "judge_calibration": dg.AssetOut(io_manager_key=WAREHOUSE_IO, kinds={"parquet"},
                                         description="Per gold item: the judge's choice in both "
                                         "orders (mapped back) against the human outcome."),
        "judge_quarantine": dg.AssetOut(io_manager_key=RESTRICTED_IO, kinds={"parquet"},
                                        description="Judge lines that broke the contract."),
    },
    partitions_def=daily_partitions,
    group_name="judge",
    can_subset=False,
    ins={"preference_pairs": dg.AssetIn(metadata={"columns": ["trace_id", "outcome", "slice"]})},
    check_specs=[dg.AssetCheckSpec("judge_auto_accept_allowed", asset="judge_calibration",
                                   blocking=True,
                                   description="Agreement with human gold reaches the declared "
                                   "gate and no case flips under order swap.")],
)
def judge_calibration(context: dg.AssetExecutionContext, pipeline: PipelineResource,
                      preference_pairs: pd.DataFrame):
    judge, quarantine = load_judge_labels(pipeline, context.partition_key)
    gold = pd.DataFrame({"trace_id": preference_pairs["trace_id"],
                         "label": preference_pairs["outcome"],
                         "slice": preference_pairs["slice"]})
    calibration = calibrate_judge(judge, gold, pipeline.policy.judge_agreement_gate)
    summary = calibration.summary()
    yield dg.Output(calibration.rows, output_name="judge_calibration", metadata={
        "dagster/row_count": len(calibration.rows),
        "agreement": float(summary["agreement"]) if summary["agreement"] is not None else -1.0,
        "n_gold": summary["n_gold"],
        "order_sensitive": summary["n_order_sensitive"],
        "auto_accept_enabled": summary["auto_accept_enabled"],
    })
    yield dg.Output(quarantine_to_table(quarantine), output_name="judge_quarantine",
                    metadata={"dagster/row_count": len(quarantine)})
    yield dg.AssetCheckResult(
        check_name="judge_auto_accept_allowed",
        asset_key="judge_calibration",
        passed=bool(summary["auto_accept_enabled"]),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "rule": f"agreement >= {summary['gate']} and no order-sensitive case",
            "agreement": float(summary["agreement"]) if summary["agreement"] is not None
            else -1.0,
            "order_sensitive_ids": id_list(summary["order_sensitive"]),
            "reason": summary["reason"],
        },
    )


@dg.asset(
    io_manager_key=WAREHOUSE_IO,
    partitions_def=daily_partitions,
    group_name="judge",
    kinds={"parquet"},
    description="Judge labels accepted in place of a human preference (only after calibration "
                "passed; the blocking check stops this asset otherwise).",
    deps=["judge_calibration"],
)
def judge_accepted_labels(context: dg.AssetExecutionContext,
                          pipeline: PipelineResource) -> dg.Output[pd.DataFrame]:
    storage = pipeline.storage
    rows = storage.read_table("warehouse", "judge_calibration", context.partition_key).to_pandas()
    judge, _ = load_judge_labels(pipeline, context.partition_key)
    gold = rows.drop_duplicates("trace_id")[["trace_id", "gold_label", "slice"]].rename(
        columns={"gold_label": "label"})
    calibration = calibrate_judge(judge, gold, pipeline.policy.judge_agreement_gate)
    accepted = judge_preferences(judge, calibration)
    return dg.Output(accepted, metadata={"dagster/row_count": len(accepted)})
