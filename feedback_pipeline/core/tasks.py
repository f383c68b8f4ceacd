"""Review tasks built from redacted traces: what a reviewer sees, and nothing more.

Tasks are built and serialised column-wise in DuckDB over Arrow batches, so a day of a million
traces never becomes a million Python dicts.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from feedback_pipeline.core.routing import (
    DEMONSTRATION_QUEUE,
    FROZEN_EVALUATION,
    INCIDENT_REVIEW,
    NEEDS_TRIAGE,
    PREFERENCE_QUEUE,
)
from feedback_pipeline.core.texts import REVIEW_TASK_TEXTS, residue_in_table

TASK_FOR_QUEUE = {
    PREFERENCE_QUEUE: "pairwise",
    DEMONSTRATION_QUEUE: "demonstration",
    NEEDS_TRIAGE: "pointwise",
    INCIDENT_REVIEW: "incident",
}
TASK_COLUMNS = ["task_id", "trace_id", "queue", "task", "slice", "prompt", "context",
                "candidate_a_id", "candidate_a", "candidate_b_id", "candidate_b",
                "approved_answer", "rubric_version", "policy_text", "redaction_version"]
TASK_SCHEMA = pa.schema([(c, pa.string()) for c in TASK_COLUMNS])
TASK_TEXT_COLUMNS = ("prompt", "context", "candidate_a", "candidate_b", "approved_answer")
PRIMARY_SCHEMA = pa.schema([("trace_id", pa.string()), ("queue", pa.string()),
                            ("task", pa.string())])
_TRACE_FIELDS = {"slice": pa.string(), "context": pa.string(), "approved_answer": pa.string(),
                 "redaction_version": pa.string()}


def primary_queues(queues: pd.DataFrame) -> pa.Table:
    """trace_id -> the one queue (and task) a reviewer gets; frozen traces get none."""
    frozen = set(queues.loc[queues["destination"] == FROZEN_EVALUATION, "trace_id"])
    order = {queue: rank for rank, queue in enumerate(TASK_FOR_QUEUE)}
    rank = queues["destination"].map(order)
    kept = queues.loc[rank.notna() & ~queues["trace_id"].isin(frozen), ["trace_id", "destination"]]
    kept = kept.assign(rank=rank[kept.index]).sort_values(["rank"], kind="stable")
    kept = kept.drop_duplicates("trace_id")
    return pa.table({"trace_id": pa.array(kept["trace_id"].astype(object), pa.string()),
                     "queue": pa.array(kept["destination"].astype(object), pa.string()),
                     "task": pa.array(kept["destination"].map(TASK_FOR_QUEUE).astype(object),
                                      pa.string())}, schema=PRIMARY_SCHEMA)


def _with_trace_fields(traces: pa.Table) -> pa.Table:
    for name, kind in _TRACE_FIELDS.items():
        if name not in traces.column_names:
            traces = traces.append_column(name, pa.nulls(traces.num_rows, kind))
    return traces


def build_task_table(traces: pa.Table | pa.RecordBatch, primary: pa.Table, rubric_version: str,
                     policy_text: str) -> pa.Table:
    """One task per reviewable trace of `traces`, in trace order (DuckDB over Arrow)."""
    if isinstance(traces, pa.RecordBatch):
        traces = pa.Table.from_batches([traces])
    batch = _with_trace_fields(traces).append_column(
        "_row", pa.array(range(traces.num_rows), pa.int64()))
    with duckdb.connect() as con:
        con.register("batch", batch)
        con.register("primary_queue", primary)
        result = con.sql(
            """
            SELECT b.trace_id || ':' || p.task AS task_id, b.trace_id, p.queue, p.task,
                   b.slice, b.prompt, b.context,
                   b.candidates[1].candidate_id AS candidate_a_id,
                   b.candidates[1].text AS candidate_a,
                   b.candidates[2].candidate_id AS candidate_b_id,
                   b.candidates[2].text AS candidate_b,
                   b.approved_answer, $rubric AS rubric_version, $policy AS policy_text,
                   b.redaction_version
            FROM batch b JOIN primary_queue p ON b.trace_id = p.trace_id
            ORDER BY b._row
            """,
            params={"rubric": rubric_version, "policy": policy_text},
        ).to_arrow_table()
    return result.cast(TASK_SCHEMA)


TASK_TRACE_COLUMNS = ["trace_id", "prompt", "candidates", *_TRACE_FIELDS]


@dataclass(frozen=True)
class TaskSettings:
    """What a worker needs to build and scan one batch of tasks as the stage would."""

    rubric_version: str
    policy_text: str
    deny_terms: tuple[str, ...]


def build_scanned_tasks(
    item: tuple[pa.RecordBatch | pa.Table, pa.Table, TaskSettings],
) -> tuple[pa.Table, list[str], dict[str, int]]:
    """One batch's tasks and their residue scan (offending task ids, kinds found): the whole
    per-batch cost of the stage, so it runs in a worker process (core.parallel)."""
    traces, primary, settings = item
    tasks = build_task_table(traces, primary, settings.rubric_version, settings.policy_text)
    offending, kinds = residue_in_table(tasks, REVIEW_TASK_TEXTS, settings.deny_terms)
    return tasks, offending, kinds


def build_tasks(traces: pd.DataFrame, queues: pd.DataFrame, rubric_version: str,
                policy_text: str) -> pd.DataFrame:
    """build_task_table for a small pandas frame of traces (tests, previews)."""
    table = pa.Table.from_pandas(traces, preserve_index=False)
    return build_task_table(table, primary_queues(queues), rubric_version,
                            policy_text).to_pandas()


def export_task_files(connect: Callable[[], duckdb.DuckDBPyConnection], source: str,
                      jsonl: Path, studio: Path, fields: tuple[str, ...]) -> None:
    """The review tasks of `source` (a DuckDB FROM clause over the stored table) written by
    DuckDB straight to two local files: JSONL, one object per task with its keys sorted, and
    a Label Studio import file, a JSON array of {"data": {field: text}} with missing values as
    empty strings (the objects of import_task_json). No Python string per task: the exports
    were a third of the stage's time at 10^6 tasks.

    Each file is written by its own connection (from `connect`) on one thread, the two at
    once. A file must keep task order: with two threads on one query DuckDB buffered 1.8 GB
    to do so at 10^6 tasks, where one thread streams in 290 MB. Two cursors of one connection
    ran one after the other (14 s); two connections overlap (11 s)."""
    columns = ", ".join(f'"{c}"' for c in sorted(TASK_SCHEMA.names))
    statements = [
        f"COPY (SELECT {columns} FROM {source}) TO '{_quoted(jsonl)}' (FORMAT json)",
        f"COPY (SELECT {_studio_data(fields)} AS data FROM {source}) "
        f"TO '{_quoted(studio)}' (FORMAT json, ARRAY true)",
    ]
    with ThreadPoolExecutor(len(statements)) as pool:
        for done in [pool.submit(_copy_on_one_thread, connect, sql) for sql in statements]:
            done.result()


def _copy_on_one_thread(connect: Callable[[], duckdb.DuckDBPyConnection], sql: str) -> None:
    with connect() as con:
        con.execute("SET threads = 1")
        con.execute("SET memory_limit = '512MB'")
        con.execute(sql)


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def _studio_data(fields: tuple[str, ...]) -> str:
    """The DuckDB struct of a Label Studio task's data: each field, missing as ''."""
    return "{" + ", ".join(f"'{c}': coalesce(\"{c}\", '')" for c in fields) + "}"


def import_task_json(tasks: pa.Table, fields: tuple[str, ...]) -> list[str]:
    """Label Studio's import objects, one JSON text per task: {"data": {field: text}},
    with missing values as empty strings."""
    with duckdb.connect() as con:
        con.register("tasks", tasks)
        return con.sql(f"SELECT to_json({{'data': {_studio_data(fields)}}})::VARCHAR "
                       "FROM tasks").to_arrow_table().column(0).to_pylist()
