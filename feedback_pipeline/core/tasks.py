"""Review tasks built from redacted traces: what a reviewer sees, and nothing more."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd
import pyarrow as pa

from feedback_pipeline.core.contract import candidates_of
from feedback_pipeline.core.routing import (
    DEMONSTRATION_QUEUE,
    INCIDENT_REVIEW,
    NEEDS_TRIAGE,
    PREFERENCE_QUEUE,
)

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


def build_tasks(traces: pd.DataFrame, queues: pd.DataFrame, rubric_version: str,
                policy_text: str) -> pd.DataFrame:
    """One task per reviewable trace; frozen evaluation traces get no task at all."""
    dests: dict[str, set[str]] = {}
    for tid, queue in zip(queues["trace_id"], queues["destination"], strict=True):
        dests.setdefault(tid, set()).add(queue)
    rows = []
    for trace in traces.to_dict("records"):
        tid = trace["trace_id"]
        queue = primary_queue(dests.get(tid, set()))
        if queue is None:
            continue
        task = TASK_FOR_QUEUE[queue]
        cands = candidates_of(trace["candidates"])
        a = cands[0] if cands else {}
        b = cands[1] if len(cands) > 1 else {}
        rows.append({
            "task_id": f"{tid}:{task}",
            "trace_id": tid,
            "queue": queue,
            "task": task,
            "slice": trace.get("slice"),
            "prompt": trace["prompt"],
            "context": trace.get("context"),
            "candidate_a_id": a.get("candidate_id"),
            "candidate_a": a.get("text"),
            "candidate_b_id": b.get("candidate_id"),
            "candidate_b": b.get("text"),
            "approved_answer": trace.get("approved_answer"),
            "rubric_version": rubric_version,
            "policy_text": policy_text,
            "redaction_version": trace.get("redaction_version"),
        })
    return pd.DataFrame(rows, columns=TASK_COLUMNS)


def primary_queue(destinations: set[str]) -> str | None:
    """The queue whose task a reviewer gets; None for frozen evaluation traces."""
    if "FROZEN_EVALUATION" in destinations:
        return None
    return next((q for q in TASK_FOR_QUEUE if q in destinations), None)


def task_texts(task: Mapping[str, Any]) -> list[str]:
    return [task[c] for c in ("prompt", "context", "candidate_a", "candidate_b",
                              "approved_answer") if isinstance(task.get(c), str)]


def tasks_to_jsonl(tasks: pd.DataFrame) -> str:
    lines = []
    for task in tasks.to_dict("records"):
        clean = {k: (None if isinstance(v, float) and pd.isna(v) else v) for k, v in task.items()}
        lines.append(json.dumps(clean, ensure_ascii=False, sort_keys=True))
    return "\n".join(lines) + ("\n" if lines else "")
