"""judge_labels, judge_calibration and judge_accepted_labels: an LLM judge is advisory until it
proves itself.

The judge is calibrated on a declared, held-out human gold set (config/gold/<judge_gold_set>.jsonl,
core.judge.parse_judge_gold), never on the day's accepted pairs: Cohen's kappa and accuracy
against gold, and the order-swap test (swapped choices mapped back; a consistent judge flips its
label). The figures are re-measured and recorded on every day's materialization, so drift shows.
A judge that passes may pre-label review tasks (Label Studio predictions); its labels are never
preferences or training rows by themselves: the release lane reads no judge asset.
The landed judge files are parsed once, into judge_labels; the pre-labels are computed from
that table and the calibration's stored verdict. These assets run in their own job so a biased judge never stops the daily data pipeline.
"""


import json
from typing import Any

import dagster as dg
import pandas as pd

from feedback_pipeline.automation.alerts import ALERT_ON, STATE_CHANGE
from feedback_pipeline.core.contract import (
    id_list,
    not_accepted_reason,
    quarantine_row,
    quarantine_to_table,
    read_lines,
    unread_entries,
)
from feedback_pipeline.core.judge import (
    GoldCalibration,
    calibrate_on_gold,
    load_judge_gold,
    one_label_per_key,
    prelabels_of,
)
from feedback_pipeline.core.judge_input import read_judge_labels
from feedback_pipeline.core.labelstudio import IMPORT_FILE, with_predictions
from feedback_pipeline.core.runtime import stop_workers
from feedback_pipeline.partitions import daily_partitions
from feedback_pipeline.resources import PipelineResource
from feedback_pipeline.stages.common import RESTRICTED_IO, WAREHOUSE_IO, max_line_bytes

CALIBRATION_COLUMNS = ["judge_id", "trace_id", "judge_original", "judge_swapped_mapped_back",
                       "gold_label", "slice", "agrees", "checked_both_orders", "order_sensitive",
                       "judge_passed", "calibration_passed"]
FLAG_COLUMNS = ("agrees", "checked_both_orders", "order_sensitive", "judge_passed",
                "calibration_passed")
PRELABEL_COLUMNS = ["trace_id", "judge_id", "choice"]
JUDGE_SUFFIXES = (".jsonl", ".jsonl.gz")
NOT_A_JUDGE_FILE = not_accepted_reason("judge label", JUDGE_SUFFIXES)
TRAINING_IDS = dg.AssetIn("preference_pairs", metadata={"columns": ["trace_id"]})
"""The day's accepted pairs, read only to check that no gold item is among the training rows."""


def load_judge_labels(pipeline: PipelineResource, day: str
                      ) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The day's judge labels as a frame, and the lines that broke the contract. `.jsonl`
    and `.jsonl.gz` files are read (core.contract.read_lines); every other entry of the day's
    judge folder (another kind of file, a folder, a broken link, a left-over temporary file)
    is one file-level quarantine row saying it was not read."""
    storage = pipeline.storage
    limit = max_line_bytes(pipeline)
    folder = storage.landing_dir("judge", day)
    unread = [quarantine_row(name, 0, reason, "", None) for name, reason in
              unread_entries(folder, storage.relative(folder), JUDGE_SUFFIXES,
                             NOT_A_JUDGE_FILE)]
    labels, quarantine = read_judge_labels(
        ((read_lines(path, limit), storage.relative(path))
         for path in storage.landing_files("judge", day, JUDGE_SUFFIXES)),
        workers=pipeline.workers)
    stop_workers()  # calibration runs here alone: its frames need the room
    return labels, unread + quarantine


def judge_thresholds(pipeline: PipelineResource) -> dict[str, Any]:
    """The policy's judge keys (judge_gold_set, judge_min_kappa, judge_max_swap_inconsistency,
    judge_min_gold_items)."""
    policy = pipeline.policy
    return {"gold_set": policy.judge_gold_set, "min_kappa": policy.judge_min_kappa,
            "max_swap_inconsistency": policy.judge_max_swap_inconsistency,
            "min_gold_items": policy.judge_min_gold_items}


def calibrate_day(pipeline: PipelineResource, judge: pd.DataFrame,
                  training_ids: pd.Series) -> GoldCalibration:
    """The day's judge labels against the declared held-out gold set."""
    settings = judge_thresholds(pipeline)
    gold_set = settings.pop("gold_set")
    gold = load_judge_gold(pipeline.storage.config_path("gold", f"{gold_set}.jsonl"))
    return calibrate_on_gold(judge, gold, training_ids=training_ids, gold_set=gold_set,
                             **settings)


def _figure(value: float | None) -> float:
    return float(value) if value is not None else -1.0


def _by_judge_table(calibration: GoldCalibration) -> dg.MetadataValue:
    lines = ["| judge | gold items judged | kappa | accuracy | swap inconsistency | passed |",
             "|---|---|---|---|---|---|"]
    for r in calibration.by_judge.itertuples(index=False):
        shown = [f"{v:.3f}" if v is not None and pd.notna(v) else "n/a"
                 for v in (r.kappa, r.accuracy, r.swap_inconsistency)]
        lines.append(f"| {r.judge_id} | {r.n_items} | {' | '.join(shown)} | {r.passed} |")
    return dg.MetadataValue.md("\n".join(lines))


def calibration_metadata(calibration: GoldCalibration) -> dict[str, Any]:
    """The day's calibration figures (-1.0 where a figure is undefined)."""
    return {
        "calibration_passed": calibration.passed,
        "reason": calibration.reason,
        "gold_set": calibration.gold_set or "none",
        "n_gold": calibration.n_gold,
        "n_items": calibration.n_items,
        "kappa": _figure(calibration.kappa),
        "accuracy": _figure(calibration.accuracy),
        "swap_inconsistency": _figure(calibration.swap_inconsistency),
        "gold_in_training": calibration.gold_in_training,
        "min_kappa": calibration.min_kappa,
        "max_swap_inconsistency": calibration.max_swap_inconsistency,
        "min_gold_items": calibration.min_gold_items,
        "by_judge": _by_judge_table(calibration),
    }


@dg.multi_asset(
    outs={
        "judge_labels": dg.AssetOut(io_manager_key=WAREHOUSE_IO, kinds={"parquet"},
                                    description="The day's valid judge labels as landed (one "
                                    "row per trace, judge and order; an identical repeat is "
                                    "dropped and counted, different choices for one are all "
                                    "kept and count as inconsistent), read once here: "
                                    "calibration and pre-labels both start from this table."),
        "judge_calibration": dg.AssetOut(io_manager_key=WAREHOUSE_IO, kinds={"parquet"},
                                         description="Per (judge, held-out gold item): the "
                                         "judge's choice in both orders (mapped back) against "
                                         "the human gold label; the day's figures in metadata."),
        "judge_quarantine": dg.AssetOut(io_manager_key=RESTRICTED_IO, kinds={"parquet"},
                                        description="Judge lines that broke the contract."),
    },
    partitions_def=daily_partitions,
    group_name="judge",
    can_subset=False,
    ins={"preference_pairs": TRAINING_IDS},
    check_specs=[dg.AssetCheckSpec("judge_auto_accept_allowed", asset="judge_calibration",
                                   partitions_def=daily_partitions,
                                   description="On the held-out gold set the judge reaches the "
                                   "declared kappa on enough items and rarely flips under order "
                                   "swap, and no gold item is a training row: only then may it "
                                   "pre-label review tasks. A WARN when it falls short (the "
                                   "normal state until a judge is good enough): the run stays "
                                   "green and no judge label goes downstream.")],
)
def judge_calibration(context: dg.AssetExecutionContext, pipeline: PipelineResource,
                      preference_pairs: pd.DataFrame):
    judge, quarantine = load_judge_labels(pipeline, context.partition_key)
    judge, repeats = one_label_per_key(judge)
    if repeats.dropped or repeats.contradicted:
        context.log.warning(f"judge labels: {repeats.dropped} identical repeat(s) of a (trace, "
                            f"judge, order) dropped; {repeats.contradicted} such key(s) "
                            "labelled with different choices (counted as inconsistent)")
    calibration = calibrate_day(pipeline, judge, preference_pairs["trace_id"])
    rows = calibration.rows
    if rows.empty:
        rows = pd.DataFrame({c: pd.Series(dtype="bool" if c in FLAG_COLUMNS else "string")
                             for c in CALIBRATION_COLUMNS})
    else:
        rows = rows.assign(
            judge_passed=rows["judge_id"].astype(str).isin(set(calibration.passed_judges)),
            calibration_passed=calibration.passed)
    context.log.info(f"judge calibration: {calibration.reason}")
    yield dg.Output(judge, output_name="judge_labels", metadata={
        "dagster/row_count": len(judge),
        "repeated_labels_dropped": repeats.dropped,
        "contradicted_label_keys": repeats.contradicted})
    yield dg.Output(rows, output_name="judge_calibration", metadata={
        "dagster/row_count": len(rows), **calibration_metadata(calibration)})
    yield dg.Output(quarantine_to_table(quarantine), output_name="judge_quarantine",
                    metadata={"dagster/row_count": len(quarantine)})
    yield dg.AssetCheckResult(
        check_name="judge_auto_accept_allowed",
        asset_key="judge_calibration",
        passed=calibration.passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "rule": f"on held-out gold set {calibration.gold_set!r}: at least "
                    f"{calibration.min_gold_items} items judged in both orders, kappa >= "
                    f"{calibration.min_kappa}, swap inconsistency <= "
                    f"{calibration.max_swap_inconsistency}, no gold item in training rows",
            "kappa": _figure(calibration.kappa),
            "swap_inconsistency": _figure(calibration.swap_inconsistency),
            "n_items": calibration.n_items,
            "gold_in_training": calibration.gold_in_training,
            "gold_in_training_ids": id_list(calibration.leaked_ids),
            "reason": calibration.reason,
            ALERT_ON: STATE_CHANGE,
        },
    )


def prelabel_export(pipeline: PipelineResource, day: str, prelabels: pd.DataFrame,
                    passed: bool) -> int:
    """Adds the judge's labels as predictions to the day's review-task import file
    (exports/review_tasks/<day>/label_studio_tasks.json); the number of tasks pre-labelled.
    No file, or a failed calibration, changes nothing."""
    path = pipeline.storage.exports_dir / "review_tasks" / day / IMPORT_FILE
    if not passed or not path.exists():
        return 0
    tasks = json.loads(path.read_text(encoding="utf-8"))
    tasks, added = with_predictions(tasks, prelabels, passed)
    if added:
        pipeline.storage.write_text(path, "[\n" + ",\n".join(
            json.dumps(t, ensure_ascii=False, separators=(",", ":")) for t in tasks) + "\n]\n")
    return added


@dg.asset(
    io_manager_key=WAREHOUSE_IO,
    partitions_def=daily_partitions,
    group_name="judge",
    kinds={"parquet"},
    description="Pre-labels of a judge that passed calibration on the held-out gold set: shown "
                "to reviewers as Label Studio predictions on the day's review tasks, never "
                "preferences or training rows by themselves; empty, and no task pre-labelled, "
                "unless the judge passed calibration.",
    ins={"judge_labels": dg.AssetIn(), "judge_calibration": dg.AssetIn()},
)
def judge_accepted_labels(context: dg.AssetExecutionContext, pipeline: PipelineResource,
                          judge_labels: pd.DataFrame,
                          judge_calibration: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """From the calibration's stored verdict: the judges that passed (each on its own, and
    the day as a whole) and the gold items to leave out."""
    calibration = judge_calibration
    passed = bool(len(calibration)) and bool(calibration["calibration_passed"].all())
    judges = (sorted(calibration.loc[calibration["judge_passed"].astype(bool), "judge_id"]
                     .astype(str).unique()) if passed else [])
    prelabels = prelabels_of(judge_labels, judges, calibration["trace_id"])
    added = prelabel_export(pipeline, context.partition_key, prelabels, passed)
    return dg.Output(prelabels, metadata={"dagster/row_count": len(prelabels),
                                          "calibration_passed": passed,
                                          "tasks_prelabelled": added})
