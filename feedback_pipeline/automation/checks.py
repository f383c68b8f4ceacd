"""Audit checks that re-verify what is already stored, run by the checks-only `gate_audit` job.

The promotion gates run inside the runs that build the data; these run on their own schedule
against the stored tables and the latest release, so that a newer deny list, a newer residue
scanner or a tampered release file is noticed without re-materializing anything.
"""

import dagster as dg

from feedback_pipeline.core.contract import id_list
from feedback_pipeline.core.manifest import next_version
from feedback_pipeline.core.texts import REDACTED_TRACE_TEXTS, REVIEW_TASK_TEXTS, residue_in_table
from feedback_pipeline.resources import PipelineResource
from feedback_pipeline.storage import WAREHOUSE
from feedback_pipeline.verify import verify_release

RESCANNED = (("redacted_traces", REDACTED_TRACE_TEXTS), ("review_tasks", REVIEW_TASK_TEXTS))


@dg.asset_check(
    asset="redacted_traces",
    name="warehouse_residue_rescan",
    description="Re-scans every stored partition of redacted_traces and review_tasks with the "
                "current residue scanner and deny list.",
)
def warehouse_residue_rescan(pipeline: PipelineResource) -> dg.AssetCheckResult:
    storage, deny_terms = pipeline.storage, pipeline.deny_terms()
    offending: list[str] = []
    days_hit: set[str] = set()
    kinds: dict[str, int] = {}
    scanned = 0
    for table, layout in RESCANNED:
        for day in storage.table_days(WAREHOUSE, table):
            for batch in storage.batches(WAREHOUSE, table, day).iter_batches():
                scanned += batch.num_rows
                ids, found = residue_in_table(batch, layout, deny_terms)
                if ids:
                    days_hit.add(day)
                    offending += ids
                for kind, count in found.items():
                    kinds[kind] = kinds.get(kind, 0) + count
    return dg.AssetCheckResult(
        passed=not offending,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "rule": "independent residue scan finds nothing raw in any stored reviewer-facing "
                    "table",
            "reason": f"{len(offending)} row(s) on {len(days_hit)} day(s) hold raw text; "
                      f"re-run those days" if offending else "passed",
            "rows_scanned": scanned,
            "offending_rows": len(offending),
            "offending_ids": id_list(offending),
            "offending_days": ", ".join(sorted(days_hit)) or "none",
            "kinds": ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())) or "none",
        },
    )


@dg.asset_check(
    asset="dataset_release",
    name="release_integrity",
    description="The latest release's files still match their sha256 and none of its rows "
                "leaks into the current frozen evaluation set.",
)
def release_integrity(pipeline: PipelineResource) -> dg.AssetCheckResult:
    storage = pipeline.storage
    _, latest = next_version(storage.list_versions(), pipeline.policy.dataset_name)
    if latest is None:
        return dg.AssetCheckResult(passed=True, metadata={
            "rule": "sha256 of every file and leakage against the frozen set",
            "reason": "no release yet"})
    problems = verify_release(str(storage.root), latest)
    leaked = sorted({p.split()[1] for p in problems if p.startswith("leak: ")})
    other = [p for p in problems if not p.startswith("leak: ")]
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "rule": "sha256 of every file and leakage against the frozen set",
            "dataset_version": latest,
            "reason": (f"{len(other)} file problem(s), {len(leaked)} leaked row(s)"
                       if problems else "passed"),
            "offending_ids": id_list(leaked),
            "file_problems": len(other),
        },
    )


AUDIT_CHECKS = [warehouse_residue_rescan, release_integrity]
