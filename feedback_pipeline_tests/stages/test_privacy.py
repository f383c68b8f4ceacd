"""Planted values in every free-text and identifier field of traces, reviews and judge labels
reach nothing outside landing/, config/ and restricted/, nor the Dagster home (event log and
run storage included)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from feedback_pipeline_tests.conftest import DAYS, copy_root

EMAIL = "plant.fourteen@leak-test.example"
AWS = "AKIAQZ7PLANTED4KEY99"
GITHUB = "ghp_" + "PlantedTok3n" * 3


def outside_restricted(root: Path, home: Path) -> list[Path]:
    places = [root / "warehouse", root / "releases", root / "exports", home]
    return [p for place in places if place.exists() for p in place.rglob("*") if p.is_file()]


@pytest.mark.slow
def test_planted_values_in_every_field_never_leave_the_restricted_zone(generated_root,
                                                                       tmp_path):
    from feedback_pipeline.cli import run_pipeline

    root = copy_root(generated_root, tmp_path / "data")
    day = DAYS[0]
    traces = root / "landing" / "traces" / day
    created = f"{day}T12:00:00+00:00"
    free = f"ask {EMAIL} for the key {AWS}, token {GITHUB}"
    planted_traces = [
        {"trace_id": "plant-text", "created_at": created, "prompt": free, "context": free,
         "approved_answer": free, "slice": "routine-review",
         "candidates": [{"candidate_id": "plant-text-c1", "model_id": "m", "text": free},
                        {"candidate_id": "plant-text-c2", "model_id": "m", "text": free}]},
        {"trace_id": GITHUB, "created_at": created, "prompt": "x"},
        {"trace_id": "plant-slice", "created_at": created, "prompt": "x", "slice": AWS},
        {"trace_id": "plant-version", "created_at": created, "prompt": "x",
         "prompt_template_version": GITHUB, "policy_version": AWS},
        {"trace_id": "plant-model", "created_at": created, "prompt": "x",
         "candidates": [{"candidate_id": AWS, "model_id": GITHUB, "text": "fine"}]},
        {"trace_id": f"id-{EMAIL}", "created_at": created, "prompt": "x"},
    ]
    with open(traces / "planted.jsonl", "w", encoding="utf-8") as out:
        out.writelines(json.dumps(t) + "\n" for t in planted_traces)
    reviews = root / "landing" / "reviews" / day
    base = {"reviewer_id": EMAIL, "rubric_version": "code-review-rubric-v4"}
    planted_reviews = [
        {**base, "review_id": "pr-1", "trace_id": "plant-text", "task": "demonstration",
         "answer": free, "reason": free},
        {**base, "review_id": GITHUB, "trace_id": "plant-text", "task": "demonstration",
         "answer": "Rerun."},
        {**base, "review_id": "pr-3", "trace_id": AWS, "task": "demonstration", "answer": "x"},
        {**base, "review_id": "pr-4", "trace_id": "plant-text", "task": "pointwise",
         "candidate_id": "plant-text-c1", "label": free, "score": 2},
        {**base, "review_id": "pr-5", "trace_id": "plant-text", "task": "pairwise",
         "reason": free, "criteria": {"plant-text-c1": {}, GITHUB: {}}},
    ]
    with open(reviews / "planted.jsonl", "w", encoding="utf-8") as out:
        out.writelines(json.dumps(r) + "\n" for r in planted_reviews)
    judge = root / "landing" / "judge" / day
    with open(judge / "planted.jsonl", "a", encoding="utf-8") as out:
        out.write(json.dumps({"trace_id": "plant-text", "judge_id": GITHUB, "order": "original",
                              "choice": "A", "reason": free}) + "\n")
        out.write(json.dumps({"trace_id": AWS, "judge_id": "judge-llm-v1", "order": "original",
                              "choice": "A"}) + "\n")

    home = tmp_path / "dagster_home"
    home.mkdir()
    instance = dg.DagsterInstance.local_temp(str(home))
    outcome = run_pipeline(root, instance=instance)
    assert outcome.error is None, outcome.error
    leaked = []
    for path in outside_restricted(root, home):
        text = (pd.read_parquet(path).to_json() if path.suffix == ".parquet"
                else path.read_bytes().decode("utf-8", errors="ignore"))
        leaked += [(str(path.relative_to(tmp_path)), v) for v in (EMAIL, AWS, GITHUB)
                   if v in text]
    assert leaked == [], "\n".join(map(str, leaked))
    kept = pd.read_parquet(root / "restricted" / "raw_traces")
    assert "plant-text" in set(kept["trace_id"])  # free text is redacted, not dropped
