"""review_tasks out, reviewed_labels in: the rubric decides, every artifact in its own lane."""


import hashlib
import hmac
import json

import dagster as dg
import pandas as pd

from feedback_pipeline.core.contract import (
    ParsedLines,
    quarantine_row,
    quarantine_to_table,
    read_lines,
)
from feedback_pipeline.core.labelstudio import (
    make_pseudonymiser,
    parse_label_studio_export,
    to_import_tasks,
)
from feedback_pipeline.core.redaction import Redactor, TokenTable
from feedback_pipeline.core.review import REVIEW_COLUMNS, parse_review_lines, resolve_reviews
from feedback_pipeline.core.tasks import TASK_SCHEMA, build_tasks, task_texts, tasks_to_jsonl
from feedback_pipeline.core.vault import resolve_vault_key
from feedback_pipeline.partitions import daily_partitions
from feedback_pipeline.resources import PipelineResource
from feedback_pipeline.stages.common import RESTRICTED_IO, WAREHOUSE_IO, counts_table, value_counts
from feedback_pipeline.stages.redaction import residue_check_result, residue_ids
from feedback_pipeline.storage import WAREHOUSE, BatchStream, PartitionBatches

REVIEW_SUFFIXES = (".jsonl", ".json")


def reviewer_pseudonymiser():
    """Keyed with a derivation of the vault key, so pseudonyms cannot be reversed by guessing."""
    key = hmac.new(resolve_vault_key().secret, b"reviewer-pseudonym", hashlib.sha256).digest()
    return make_pseudonymiser(key)


@dg.asset(
    io_manager_key=WAREHOUSE_IO,
    partitions_def=daily_partitions,
    group_name="review",
    kinds={"parquet"},
    description="Redacted review tasks per queue, also exported as JSONL and as a Label Studio "
                "import file for reviewers.",
    check_specs=[dg.AssetCheckSpec("no_residue_in_review_tasks", asset="review_tasks",
                                   blocking=True,
                                   description="Nothing a reviewer receives holds raw text.")],
)
def review_tasks(context: dg.AssetExecutionContext, pipeline: PipelineResource,
                 redacted_traces: PartitionBatches, routed_queues: pd.DataFrame):
    """Streams tasks to the table and both export files; an export appears only when the
    whole day passed the residue scan."""
    rubric = pipeline.rubric()
    deny_terms = pipeline.deny_terms()
    storage = pipeline.storage
    folder = storage.exports_dir / "review_tasks" / context.partition_key
    offending: list[str] = []
    kinds: dict[str, int] = {}
    counts: dict[str, int] = {}
    spool_jsonl = storage.spool(WAREHOUSE, TASK_SCHEMA)

    def task_batches():
        for frame in redacted_traces.iter_frames():
            tasks = build_tasks(frame, routed_queues, rubric.version, rubric.policy_text)
            bad, found = residue_ids(tasks.to_dict("records"), task_texts, deny_terms,
                                     id_field="task_id")
            offending.extend(bad)
            for kind, n in found.items():
                kinds[kind] = kinds.get(kind, 0) + n
            for task, n in tasks["task"].value_counts().items():
                counts[str(task)] = counts.get(str(task), 0) + int(n)
            spool_jsonl.write(tasks)
            yield tasks

    yield dg.Output(BatchStream(TASK_SCHEMA, task_batches()), metadata={
        "by_task": counts_table(counts, "task") if counts else dg.MetadataValue.md("none")})
    exported = spool_jsonl.stream()
    if offending:
        context.log.error(f"{len(offending)} task(s) failed the residue scan; export withheld")
        for _ in exported:
            pass
    else:
        with storage.open_atomic(folder / "tasks.jsonl") as jsonl, \
                storage.open_atomic(folder / "label_studio_tasks.json") as studio:
            studio.write("[")
            first = True
            for batch in exported:
                frame = batch.to_pandas()
                jsonl.write(tasks_to_jsonl(frame))
                for item in to_import_tasks(frame):
                    studio.write(("" if first else ",\n") + json.dumps(item, ensure_ascii=False))
                    first = False
            studio.write("]\n")
    yield residue_check_result("no_residue_in_review_tasks", "review_tasks", offending, kinds,
                               sum(counts.values()))


def _load_reviews(pipeline: PipelineResource, day: str) -> ParsedLines:
    storage = pipeline.storage
    known = pipeline.known_rubrics()
    pseudonym = reviewer_pseudonymiser()
    parsed = ParsedLines()
    for path in storage.landing_files("reviews", day, REVIEW_SUFFIXES):
        source = storage.relative(path)
        if path.name.endswith(".jsonl"):
            parsed.extend(parse_review_lines(read_lines(path), source, known))
            continue
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            parsed.quarantine.append(quarantine_row(source, err.lineno, f"not valid JSON "
                                                    f"({err.msg})", "", None))
            continue
        parsed.extend(parse_label_studio_export(payload, source, known))
    for row in parsed.rows:
        row["reviewer_id"] = pseudonym(row["reviewer_id"])
    return parsed


def redact_review_text(reviews: pd.DataFrame, redactor: Redactor) -> pd.DataFrame:
    """Reasons and corrected answers are free text: redacted like any trace text."""
    out = reviews.copy()
    for column in ("reason", "answer"):
        if column in out:
            out[column] = [redactor.redact_text(v, TokenTable()) if isinstance(v, str) else v
                           for v in out[column]]
    return out


LANES = {
    "reviewed_labels": "Every valid review with its rubric-derived outcome and status.",
    "preference_pairs": "Accepted prompt/chosen/rejected pairs with full provenance.",
    "demonstrations": "Approved and corrected answers for supervised fine-tuning.",
    "pointwise_assessments": "Single-answer labels and 1-5 scores.",
    "adjudication_queue": "Disagreements, ties and rubric conflicts awaiting adjudication.",
    "incident_records": "BOTH_BAD pairs and unsafe traces, with the reason.",
}


@dg.multi_asset(
    outs={
        **{name: dg.AssetOut(io_manager_key=WAREHOUSE_IO, kinds={"parquet"}, description=desc)
           for name, desc in LANES.items()},
        "review_quarantine": dg.AssetOut(io_manager_key=RESTRICTED_IO, kinds={"parquet"},
                                         description="Reviews that could not be used, with "
                                         "the reason (restricted zone)."),
    },
    partitions_def=daily_partitions,
    group_name="review",
    can_subset=False,
)
def reviewed_labels(context: dg.AssetExecutionContext, pipeline: PipelineResource,
                    redacted_traces: PartitionBatches, routed_queues: pd.DataFrame):
    policy = pipeline.policy
    parsed = _load_reviews(pipeline, context.partition_key)
    reviews = pd.DataFrame(parsed.rows, columns=REVIEW_COLUMNS)
    needed = set(reviews["trace_id"]) | set(routed_queues.loc[
        routed_queues["destination"] == "DEMONSTRATION_QUEUE", "trace_id"])
    traces = redacted_traces.rows_where_in("trace_id", needed)
    redactor = Redactor(pipeline.deny_terms(), version=policy.redaction_version)
    reviews = redact_review_text(reviews, redactor)
    rubrics = {v: pipeline.rubric(v) for v in pipeline.known_rubrics()}
    resolved = resolve_reviews(reviews, traces, routed_queues,
                               pipeline.rubric(), rubric_by_version=rubrics)
    quarantine = quarantine_to_table(parsed.quarantine + resolved.quarantine.to_dict("records"))
    frames = {
        "reviewed_labels": resolved.labels,
        "preference_pairs": resolved.preference_pairs,
        "demonstrations": resolved.demonstrations,
        "pointwise_assessments": resolved.pointwise,
        "adjudication_queue": resolved.adjudication,
        "incident_records": resolved.incidents,
    }
    for name, frame in frames.items():
        metadata = {"dagster/row_count": len(frame)}
        if name == "reviewed_labels" and len(frame):
            metadata["by_status"] = counts_table(value_counts(frame["status"]), "status")
        yield dg.Output(frame, output_name=name, metadata=metadata)
    reasons = value_counts(pd.Series([r.split(" (")[0].split("'")[0][:60]
                                      for r in quarantine.column("reason").to_pylist()],
                                     dtype=object))
    yield dg.Output(quarantine, output_name="review_quarantine",
                    metadata={"dagster/row_count": quarantine.num_rows,
                              "reasons": counts_table(reasons, "reason") if reasons
                              else dg.MetadataValue.md("none")})
