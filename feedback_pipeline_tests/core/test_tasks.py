"""Review-task exports written by DuckDB hold every task, in order, as a reviewer tool reads it."""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from feedback_pipeline.core.labelstudio import TASK_DATA_FIELDS
from feedback_pipeline.core.tasks import (
    PRIMARY_SCHEMA,
    SHARED_TASK_FIELDS,
    TASK_SCHEMA,
    TaskSettings,
    build_scanned_tasks,
    export_task_files,
    import_task_json,
)


def task_table(n: int) -> pa.Table:
    rows = []
    for i in range(n):
        row = {name: f"{name} {i} \"quoted\" \\ ünï <EMAIL_1>\nline" for name in TASK_SCHEMA.names}
        row["approved_answer"] = None if i % 2 else "fixed it"
        row["candidate_b"] = None if i % 3 == 0 else row["candidate_b"]
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=TASK_SCHEMA)


def exported(tmp_path, table: pa.Table) -> tuple[list[dict], list[dict]]:
    pq.write_table(table, tmp_path / "tasks.parquet")
    export_task_files(duckdb.connect, f"read_parquet('{tmp_path / 'tasks.parquet'}')",
                      tmp_path / "tasks.jsonl", tmp_path / "studio.json", TASK_DATA_FIELDS)
    lines = (tmp_path / "tasks.jsonl").read_text(encoding="utf-8").splitlines()
    studio = json.loads((tmp_path / "studio.json").read_text(encoding="utf-8"))
    return [json.loads(line) for line in lines], studio


def test_duckdb_exports_hold_what_the_row_serialisers_hold(tmp_path):
    table = task_table(7)
    jsonl, studio = exported(tmp_path, table)
    expected = [{k: v for k, v in sorted(row.items()) if k not in SHARED_TASK_FIELDS}
                for row in table.to_pylist()]
    assert jsonl == expected  # the shared policy text is written once, not per task
    assert not any("policy_text" in obj for obj in jsonl)
    assert not any("policy_text" in item["data"] for item in studio)
    assert all(list(obj) == sorted(obj) for obj in jsonl)  # keys sorted, as before
    assert any(obj["approved_answer"] is None for obj in jsonl)  # missing stays null
    assert studio == [json.loads(item) for item in import_task_json(table, TASK_DATA_FIELDS)]
    assert any(item["data"].get("candidate_b") == "" for item in studio)  # Label Studio: ""


def test_an_empty_day_exports_an_empty_array_and_no_lines(tmp_path):
    jsonl, studio = exported(tmp_path, TASK_SCHEMA.empty_table())
    assert jsonl == [] and studio == []


def test_a_worker_batch_builds_tasks_in_trace_order_and_names_raw_text(tmp_path):
    candidates = [{"candidate_id": "c1", "text": "looks fine"},
                  {"candidate_id": "c2", "text": "write to ops@example.com"}]
    traces = pa.table({
        "trace_id": ["t1", "t2", "t3"],
        "prompt": ["first", "second", "third"],
        "candidates": [candidates, candidates[:1], candidates],
    })
    primary = pa.table({"trace_id": ["t3", "t1"], "queue": ["PREFERENCE_QUEUE"] * 2,
                        "task": ["pairwise"] * 2}, schema=PRIMARY_SCHEMA)
    tasks, offending, kinds = build_scanned_tasks(
        traces, primary, settings=TaskSettings("rubric-v1", "policy", ()))
    assert tasks.column("task_id").to_pylist() == ["t1:pairwise", "t3:pairwise"]
    assert tasks.column("candidate_b").to_pylist() == ["write to ops@example.com"] * 2
    assert offending == ["t1:pairwise", "t3:pairwise"]
    assert kinds.get("EMAIL") == 2
    clean = traces.set_column(2, "candidates", pa.array([candidates[:1]] * 3))
    tasks, offending, kinds = build_scanned_tasks(
        clean, primary, settings=TaskSettings("rubric-v1", "policy", ()))
    assert tasks.column("candidate_b").to_pylist() == [None, None]
    assert (offending, kinds) == ([], {})
