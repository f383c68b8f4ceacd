"""Review tasks built from redacted traces: what a reviewer sees, and nothing more.

Tasks are built and serialised column-wise in DuckDB over Arrow batches, so a day of a million
traces never becomes a million Python dicts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from feedback_pipeline.core.conversation import logged_conversation_text
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
TASK_COLUMNS = ["task_id", "trace_id", "trace_day", "round_id", "arm", "queue", "task", "slice",
                "prompt", "context", "conversation",
                "candidate_a_id", "candidate_a", "candidate_b_id", "candidate_b",
                "approved_answer", "rubric_version", "policy_text", "redaction_version"]
TASK_SCHEMA = pa.schema([(c, pa.string()) for c in TASK_COLUMNS])
SHARED_TASK_FIELDS = ("policy_text",)
"""Columns every task of an export shares (the rubric's policy): kept in the stored table, but
written once per export, in `rubric.json` beside the tasks (`shared_text_json`), not per task."""
TASK_TEXT_COLUMNS = ("prompt", "context", "conversation", "candidate_a", "candidate_b",
                     "approved_answer")
PRIMARY_SCHEMA = pa.schema([("trace_id", pa.string()), ("queue", pa.string()),
                            ("task", pa.string())])
ISSUE_COLUMNS = ("round_id", "arm", "trace_day")
"""What a round adds to a task: which round issued it, in which arm, and the trace's day."""
_TRACE_FIELDS = {"slice": pa.string(), "context": pa.string(), "approved_answer": pa.string(),
                 "redaction_version": pa.string(), "extra_json": pa.string()}


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
    """One task per trace of `traces` that has a row in `primary` (trace_id, queue, task, and
    the round's ISSUE_COLUMNS where a round issued it), in trace order, built column by column
    in Arrow (no Python object per task)."""
    if isinstance(traces, pa.RecordBatch):
        traces = pa.Table.from_batches([traces])
    traces = _with_trace_fields(traces)
    slot = pc.index_in(pc.cast(traces["trace_id"], pa.string()),
                       value_set=primary["trace_id"].combine_chunks().cast(pa.string()))
    rows = pc.indices_nonzero(pc.is_valid(slot))
    picked = traces.take(rows)
    queue = primary.take(pc.take(slot, rows))
    first, second = _nth_candidates(picked["candidates"], 2)
    n = picked.num_rows
    task = _answerable_task(pc.cast(queue["task"], pa.string()), _field(first, "candidate_id"))
    columns = {
        "task_id": pc.binary_join_element_wise(pc.cast(picked["trace_id"], pa.string()), task,
                                               ":"),
        "trace_id": picked["trace_id"],
        **{name: (queue[name] if name in queue.column_names else pa.nulls(n, pa.string()))
           for name in ISSUE_COLUMNS},
        "queue": queue["queue"],
        "task": task,
        "slice": picked["slice"],
        "prompt": picked["prompt"],
        "context": picked["context"],
        "conversation": pa.array([logged_conversation_text(x) for x in
                                  picked["extra_json"].to_pylist()], pa.string()),
        "candidate_a_id": _field(first, "candidate_id"),
        "candidate_a": _field(first, "text"),
        "candidate_b_id": _field(second, "candidate_id"),
        "candidate_b": _field(second, "text"),
        "approved_answer": picked["approved_answer"],
        "rubric_version": pa.repeat(pa.scalar(rubric_version, pa.string()), n),
        "policy_text": pa.repeat(pa.scalar(policy_text, pa.string()), n),
        "redaction_version": picked["redaction_version"],
    }
    return pa.table({name: pc.cast(columns[name], pa.string()) for name in TASK_COLUMNS},
                    schema=TASK_SCHEMA)


def _answerable_task(task: pa.Array | pa.ChunkedArray, first_candidate: pa.Array) -> pa.Array:
    """A pointwise task needs an answer to judge; a trace without one is asked for the answer
    it should have had (a demonstration) instead of being sent out empty."""
    empty = pc.and_(pc.equal(task, "pointwise"), pc.is_null(first_candidate))
    return pc.if_else(pc.fill_null(empty, False), pa.scalar("demonstration"), task)


def _nth_candidates(candidates: pa.ChunkedArray, count: int) -> list[pa.Array]:
    """The 1st .. count-th candidate struct of each row, null where a row has fewer."""
    candidates = candidates.combine_chunks()
    flat = candidates.flatten()
    starts = np.asarray(candidates.offsets)[:-1] - candidates.offsets[0].as_py()
    lengths = np.asarray(pc.fill_null(pc.list_value_length(candidates), 0))
    return [flat.take(pa.array(starts + k, mask=lengths <= k)) for k in range(count)]


def _field(structs: pa.Array, name: str) -> pa.Array:
    if structs.type.get_field_index(name) < 0:
        return pa.nulls(len(structs), pa.string())
    return pc.struct_field(structs, name)


TASK_TRACE_COLUMNS = ["trace_id", "prompt", "candidates", *_TRACE_FIELDS]


@dataclass(frozen=True)
class TaskSettings:
    """What a worker needs to build and scan one batch of tasks as the stage would."""

    rubric_version: str
    policy_text: str
    deny_terms: tuple[str, ...]


def build_scanned_tasks(traces: pa.RecordBatch | pa.Table, primary: pa.Table, *,
                        settings: TaskSettings) -> tuple[pa.Table, list[str], dict[str, int]]:
    """One batch's tasks and their residue scan (offending task ids, kinds found): the whole
    per-batch cost of the stage, so it runs in a worker process (core.runtime)."""
    tasks = build_task_table(traces, primary, settings.rubric_version, settings.policy_text)
    offending, kinds = residue_in_table(tasks, REVIEW_TASK_TEXTS, settings.deny_terms)
    return tasks, offending, kinds


def build_tasks(traces: pd.DataFrame, queues: pd.DataFrame, rubric_version: str,
                policy_text: str) -> pd.DataFrame:
    """build_task_table for a small pandas frame of traces (tests, previews)."""
    table = pa.Table.from_pandas(traces, preserve_index=False)
    return build_task_table(table, primary_queues(queues), rubric_version,
                            policy_text).to_pandas()


def issued_work(issued: pd.DataFrame) -> pa.Table:
    """A round's selected_batch rows as the `primary` table build_task_table reads."""
    columns = ["trace_id", "queue", "task", *ISSUE_COLUMNS]
    return pa.table({c: pa.array(issued[c].astype(object).where(issued[c].notna(), None),
                                 pa.string()) for c in columns})


def export_task_files(connect: Callable[[], duckdb.DuckDBPyConnection], source: str,
                      jsonl: Path, studio: Path, fields: tuple[str, ...]) -> None:
    """The review tasks of `source` (a DuckDB FROM clause over the stored table) written by
    DuckDB straight to two local files: JSONL, one object per task with its keys sorted (all
    but SHARED_TASK_FIELDS, which the caller writes once with `shared_text_json`), and
    a Label Studio import file, a JSON array of {"data": {field: text}} with missing values as
    empty strings (the objects of import_task_json). No Python string per task: the exports
    were a third of the stage's time at 10^6 tasks.

    Each file is written by its own connection (from `connect`) on one thread, the two at
    once. A file must keep task order: with two threads on one query DuckDB buffers several
    times what one thread streams in to do so. Two cursors of one connection run one after
    the other; two connections overlap."""
    columns = ", ".join(f'"{c}"' for c in sorted(TASK_SCHEMA.names)
                        if c not in SHARED_TASK_FIELDS)
    statements = [
        f"COPY (SELECT {columns} FROM {source}) TO '{_quoted(jsonl)}' (FORMAT json)",
        f"COPY (SELECT {_studio_data(fields, tuple(TASK_SCHEMA.names))} AS data FROM {source}) "
        f"TO '{_quoted(studio)}' (FORMAT json, ARRAY true)",
    ]
    with ThreadPoolExecutor(len(statements)) as pool:
        for done in [pool.submit(_copy_on_one_thread, connect, sql) for sql in statements]:
            done.result()


def shared_text_json(rubric_version: str, policy_text: str) -> str:
    """The export's `rubric.json`: what its tasks' `rubric_version` refers to, written once."""
    return json.dumps({"rubric_version": rubric_version, "policy_text": policy_text},
                      indent=2, sort_keys=True) + "\n"


def _copy_on_one_thread(connect: Callable[[], duckdb.DuckDBPyConnection], sql: str) -> None:
    with connect() as con:
        con.execute("SET threads = 1")
        con.execute("SET memory_limit = '512MB'")
        con.execute(sql)


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def _studio_data(fields: tuple[str, ...], columns: tuple[str, ...]) -> str:
    """The DuckDB struct of a Label Studio task's data: each field, missing as '' (a field
    the tasks have no column for too)."""
    return "{" + ", ".join(f"'{c}': coalesce(\"{c}\", '')" if c in columns else f"'{c}': ''"
                           for c in fields) + "}"


def import_task_json(tasks: pa.Table, fields: tuple[str, ...]) -> list[str]:
    """Label Studio's import objects, one JSON text per task: {"data": {field: text}},
    with missing values as empty strings."""
    with duckdb.connect() as con:
        con.register("tasks", tasks)
        return con.sql(f"SELECT to_json({{'data': {_studio_data(fields, tuple(tasks.column_names))}}})::VARCHAR "
                       "FROM tasks").to_arrow_table().column(0).to_pylist()
