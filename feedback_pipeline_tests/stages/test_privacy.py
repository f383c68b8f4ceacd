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


@pytest.mark.slow
def test_one_value_per_family_in_text_and_ids_never_leaves_the_restricted_zone(generated_root,
                                                                               tmp_path):
    """Every detector family of the labelled corpus (held-out values, fresh seed) planted in
    its context in every free-text field of a trace, a review and a judge label; every
    family that names itself (a vendor prefix) also planted bare in each identifier field.
    None of them reaches warehouse/, releases/, exports/ or the Dagster home."""
    import pyarrow.parquet as pq

    from feedback_pipeline.cli import run_pipeline
    from feedback_pipeline.core.redaction import Redactor
    from feedback_pipeline.synth.secrets_corpus import (
        DENY_TERMS,
        FAMILIES,
        SCANNER_SHAPES,
        family_kind,
        family_samples,
    )

    root = copy_root(generated_root, tmp_path / "data")
    deny_list = root / "config" / "redaction" / "deny_list.txt"  # the corpus's names too
    deny_list.write_text(deny_list.read_text() + "\n" + "\n".join(DENY_TERMS) + "\n")
    day = DAYS[0]
    created = f"{day}T12:00:00+00:00"
    fragments: list[tuple[str, str, list[str]]] = []  # family, fragment, its planted values
    for family in FAMILIES:
        text, spans = family_samples(family, 1, seed=31337)[0]
        values = [text[s:e] for s, e, k in spans if k == family_kind(family)]
        fragments.append((family, text, [v for v in values if len(v.strip()) >= 8]))
    traces, reviews, judged = [], [], []
    for i, (_family, text, _values) in enumerate(fragments):
        tid = f"plant-family-{i}"
        traces.append({"trace_id": tid, "created_at": created, "prompt": text, "context": text,
                       "approved_answer": text, "slice": "routine-review",
                       "candidates": [{"candidate_id": f"{tid}-c1", "model_id": "m",
                                       "text": text},
                                      {"candidate_id": f"{tid}-c2", "model_id": "m",
                                       "text": f"Also: {text}"}]})
        reviews.append({"review_id": f"pf-{i}", "trace_id": tid, "reviewer_id": "rev-plant",
                        "rubric_version": "code-review-rubric-v4", "task": "demonstration",
                        "answer": text, "reason": text})
        judged.append({"trace_id": tid, "judge_id": "judge-llm-v1", "order": "original",
                       "choice": "A", "reason": text})
    id_fields = ("trace_id", "slice", "model_id", "candidate_id", "prompt_template_version",
                 "policy_version")
    # Bare in an id field, only a value that names itself is a secret (a password's value alone
    # is an identifier like any other): those the redactor finds whole on their own.
    redactor = Redactor(DENY_TERMS)
    bare = [values[0] for family, _t, values in fragments if family in SCANNER_SHAPES and values
            and any(s == 0 and e == len(values[0]) for s, e, *_ in redactor.detect(values[0]))]
    assert len(bare) >= 60
    for i, value in enumerate(bare):
        field = id_fields[i % len(id_fields)]
        row = {"trace_id": f"plant-id-{i}", "created_at": created, "prompt": "x",
               "candidates": [{"candidate_id": f"plant-id-{i}-c1", "model_id": "m",
                               "text": "fine"}]}
        if field in ("model_id", "candidate_id"):
            row["candidates"][0][field] = value
        else:
            row[field] = value
        traces.append(row)
        reviews.append({"review_id": value if i % 2 else f"pid-{i}", "trace_id": f"plant-id-{i}",
                        "reviewer_id": "rev-plant", "rubric_version": "code-review-rubric-v4",
                        "task": "demonstration", "answer": "Rerun."})
        judged.append({"trace_id": f"plant-id-{i}", "judge_id": value, "order": "original",
                       "choice": "A"})
    for kind, rows in (("traces", traces), ("reviews", reviews), ("judge", judged)):
        folder = root / "landing" / kind / day
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "planted-families.jsonl", "w", encoding="utf-8") as out:
            out.writelines(json.dumps(r) + "\n" for r in rows)

    home = tmp_path / "dagster_home"
    home.mkdir()
    outcome = run_pipeline(root, instance=dg.DagsterInstance.local_temp(str(home)))
    assert outcome.error is None, outcome.error
    planted = {v for _f, _t, values in fragments for v in values} | set(bare)
    leaked = []
    for path in outside_restricted(root, home):
        if path.suffix == ".parquet":
            text = json.dumps(pq.read_table(path).to_pylist(), default=str, ensure_ascii=False)
        else:
            text = path.read_bytes().decode("utf-8", errors="ignore")
        leaked += [(str(path.relative_to(tmp_path)), v) for v in planted if v in text]
    assert leaked == [], "\n".join(map(str, leaked[:40]))
    kept = set(pd.read_parquet(root / "restricted" / "raw_traces")["trace_id"])
    assert {f"plant-family-{i}" for i in range(len(fragments))} <= kept  # redacted, not dropped
