"""Small helpers shared by the stage modules: metadata that is safe to show in the UI."""


from collections.abc import Mapping

import dagster as dg
import pandas as pd

from feedback_pipeline.core.contract import DEFAULT_MAX_LINE_BYTES, id_list
from feedback_pipeline.resources import PipelineResource

RESTRICTED_IO = "restricted_io_manager"
WAREHOUSE_IO = "io_manager"


def counts_table(counts: Mapping[str, int], key: str = "value") -> dg.MetadataValue:
    """A markdown table of counts (labels and numbers only, never record text)."""
    rows = "\n".join(f"| {k} | {v} |" for k, v in counts.items())
    return dg.MetadataValue.md(f"| {key} | rows |\n|---|---|\n{rows}")


def max_line_bytes(pipeline: PipelineResource) -> int:
    """The policy's `max_line_bytes` (the longest landed line read; a longer one is quarantined
    unread); the default when the root has no policy.yaml. Every stage that reads landed JSONL
    (traces, reviews, judge labels) passes it to `read_lines`."""
    if pipeline.storage.config_path("policy.yaml").exists():
        return pipeline.policy.max_line_bytes
    return DEFAULT_MAX_LINE_BYTES


def value_counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.value_counts(dropna=False).sort_index().items()}


QUEUE_IDS = {"routed_queues": dg.AssetIn(metadata={"columns": ["trace_id", "destination"]})}
"""The routed_queues columns a consumer needs: the rules' reason texts stay on disk."""


def residue_check_result(
    check_name: str, asset_key: str, offending: list[str], kinds: dict[str, int], scanned: int
) -> dg.AssetCheckResult:
    """A residue gate's result: blocking, naming the offending rows' ids and the kinds found
    (the redaction and review-task gates report alike)."""
    return dg.AssetCheckResult(
        check_name=check_name,
        asset_key=asset_key,
        passed=not offending,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "rule": "independent residue scan (core.redaction.find_residue) finds nothing raw",
            "rows_scanned": scanned,
            "offending_rows": len(offending),
            "offending_ids": id_list(offending),
            "kinds": counts_table(kinds, "kind") if kinds else dg.MetadataValue.md("none"),
        },
    )
