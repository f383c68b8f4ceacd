"""Small helpers shared by the stage modules: metadata that is safe to show in the UI."""


from collections.abc import Mapping, Sequence
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from feedback_pipeline.core.agreement import PAIRWISE_LABELS, AgreementReport, format_figure
from feedback_pipeline.core.contract import DEFAULT_MAX_LINE_BYTES, id_list
from feedback_pipeline.resources import PipelineResource

RESTRICTED_IO = "restricted_io_manager"
WAREHOUSE_IO = "io_manager"
SHARD_STEP_IO = "shard_step_io_manager"
"""What the ops of a sharded stage hand each other (io_manager.StepIOManager)."""


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


def write_confusion_heatmap(
    report_or_matrix: AgreementReport | Sequence[Sequence[int]] | np.ndarray,
    labels: Sequence[str] | None = None,
    path: str | Path = "confusion_matrix.png",
) -> None:
    """Write the pooled confusion matrix as a PNG heatmap (matplotlib, no global backend):
    drawn here, in the stage layer, so core.agreement stays numbers only."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if isinstance(report_or_matrix, AgreementReport):
        matrix = np.asarray(report_or_matrix.summary["confusion_matrix"], dtype=int)
        labels = labels or report_or_matrix.summary["labels"]
        title = ("Reviewer agreement: Conger's kappa "
                 f"{format_figure(report_or_matrix.summary.get('conger_kappa'))}")
    else:
        matrix = np.asarray(report_or_matrix, dtype=int)
        title = "Reviewer agreement"
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError("confusion matrix must be square")
    labels = list(labels or PAIRWISE_LABELS[: matrix.shape[0]])
    fig = Figure(figsize=(1.3 * len(labels) + 2, 1.2 * len(labels) + 1.5), dpi=110,
                 layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("reviewer_b")
    ax.set_ylabel("reviewer_a")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if matrix[i, j] > threshold else "black")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
