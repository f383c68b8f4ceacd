"""Simulated reviewers answer only what a labeling round exported, as the generator's would."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from feedback_pipeline.core.contract import parse_timestamp, parse_trace_lines, read_lines
from feedback_pipeline.core.review import validate_review
from feedback_pipeline.core.routing import route
from feedback_pipeline.core.tasks import primary_queues
from feedback_pipeline.settings import load_frozen_set, load_gold, load_rubric
from feedback_pipeline.storage import Storage
from feedback_pipeline.synth import reviewers as rv
from feedback_pipeline.synth.generator import RUBRIC_VERSION, day_plans, generate
from feedback_pipeline.synth.review_simulator import (
    SKIP_INCIDENT,
    SKIP_REVIEWED_ROOT,
    SKIP_UNKNOWN_TRACE,
    answer_exported_tasks,
)

DAYS = ["2026-05-01", "2026-05-02"]
EXPORT_DAY = DAYS[1]
RUBRICS = {RUBRIC_VERSION}
TASK_FIELDS = ("task_id", "trace_id", "trace_day", "queue", "task", "round_id", "arm", "slice",
               "prompt", "context", "candidate_a_id", "candidate_a", "candidate_b_id",
               "candidate_b", "approved_answer", "rubric_version", "policy_text",
               "redaction_version")


def _landed(root: Path, days: list[str]) -> pd.DataFrame:
    """Valid landed traces with their landing day and primary queue/task, as routing gives."""
    rows = []
    for day in days:
        seen: set[str] = set()
        for path in sorted((root / "landing" / "traces" / day).iterdir()):
            for row in parse_trace_lines(read_lines(path), path.name, day, seen).rows:
                rows.append({**row, "trace_day": day})
    traces = pd.DataFrame(rows)
    frozen = load_frozen_set(Storage(root), "code-review-eval-v5").ids
    primary = primary_queues(route(traces, frozen)).to_pandas()
    return traces.merge(primary, on="trace_id", how="left").set_index("trace_id", drop=False)


def _task_row(trace: pd.Series, round_id: str = "round-x") -> dict[str, Any]:
    cands = trace["candidates"] or []
    row = {name: None for name in TASK_FIELDS}
    row.update(
        task_id=f"{trace['trace_id']}:{trace['task']}", trace_id=trace["trace_id"],
        trace_day=trace["trace_day"], queue=trace["queue"], task=trace["task"],
        round_id=round_id, arm="hybrid", slice=trace["slice"], prompt="[redacted prompt]",
        context=None, approved_answer=trace["approved_answer"] or None,
        rubric_version=RUBRIC_VERSION, policy_text="Judge each answer...",
        redaction_version="code-review-redactor-v2")
    for k, letter in enumerate("ab"):
        if k < len(cands):
            row[f"candidate_{letter}_id"] = cands[k]["candidate_id"]
            row[f"candidate_{letter}"] = "[redacted answer]"
    return row


def _write_tasks(root: Path, day: str, rows: list[dict[str, Any]]) -> Path:
    folder = root / "exports" / "review_tasks" / day
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tasks.jsonl"
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def _round_files(root: Path, day: str) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes()
            for p in sorted((root / "landing" / "reviews").glob(f"*/round-{day}.jsonl"))}


def _reviews(root: Path, day: str) -> list[tuple[str, dict[str, Any]]]:
    return [(folder, json.loads(line)) for folder, data in _round_files(root, day).items()
            for line in data.decode("utf-8").splitlines()]


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny on_export root and a hand-written export for its second day."""
    root = tmp_path_factory.mktemp("sim") / "data"
    generate(root, days=len(DAYS), traces_per_day=40, seed=5,
             start=date.fromisoformat(DAYS[0]), reviews="on_export")
    traces = _landed(root, DAYS)
    gold = {g["trace_id"] for g in load_gold(Storage(root), "code-reviewer-gold-v3")}
    today = traces[traces["trace_day"] == EXPORT_DAY]
    pairs = today[today["task"] == "pairwise"]
    backlog = traces[(traces["trace_day"] == DAYS[0]) & (traces["task"] == "pairwise")
                     & ~traces["trace_id"].isin(gold)].iloc[0]
    pointwise = traces[(traces["task"] == "pointwise")
                       & traces["candidates"].map(lambda c: len(c or []) == 1)].iloc[0]
    demo = today[today["task"] == "demonstration"].iloc[0]
    incident = traces[traces["task"] == "incident"].iloc[0]
    gold_pair = pairs[pairs["trace_id"].isin(gold)].iloc[0]
    plain = pairs[~pairs["trace_id"].isin(gold)]
    chosen = [*(plain.iloc[k] for k in range(0, len(plain), 2)), gold_pair, backlog]
    rows = [_task_row(t) for t in [*chosen, pointwise, demo, incident]]
    ghost = _task_row(plain.iloc[1])
    ghost.update(trace_id="routine-990001", task_id="routine-990001:pairwise")
    rows.append(ghost)
    _write_tasks(root, EXPORT_DAY, rows)
    summary = answer_exported_tasks(root, EXPORT_DAY)
    return {"root": root, "traces": traces, "rows": rows, "summary": summary,
            "gold_pair": gold_pair["trace_id"], "backlog": backlog["trace_id"],
            "answerable": {r["trace_id"] for r in rows
                           if r["task"] != "incident" and r["trace_id"] in traces.index}}


def test_every_review_is_valid_and_answers_an_exported_task(exported: dict[str, Any]) -> None:
    reviews = _reviews(exported["root"], EXPORT_DAY)
    traces = exported["traces"]
    by_trace = {r["trace_id"]: r for r in exported["rows"]}
    assert reviews
    for _, review in reviews:
        validate_review(review, RUBRICS)
    assert {r["trace_id"] for _, r in reviews} == exported["answerable"]
    assert len({r["review_id"] for _, r in reviews}) == len(reviews)
    for folder, review in reviews:
        task = by_trace[review["trace_id"]]
        assert review["task"] == task["task"]
        assert folder == task["trace_day"] == traces.at[review["trace_id"], "trace_day"]
        assert review["review_id"].startswith(f"sim-{EXPORT_DAY}-")
        assert review["review_seconds"] > 0
        reviewed = parse_timestamp(review["reviewed_at"], "reviewed_at")
        assert review["reviewed_at"].endswith("Z")
        assert reviewed > traces.at[review["trace_id"], "created_at"]
        assert reviewed >= datetime.fromisoformat(EXPORT_DAY).replace(tzinfo=UTC)
        if review["task"] == "pairwise":
            assert list(review["criteria"]) == [task["candidate_a_id"], task["candidate_b_id"]]
            assert review["reason"]
        elif review["task"] == "pointwise":
            assert review["candidate_id"] == task["candidate_a_id"]
            assert (review["label"] == "unsafe") == (review["score"] == 1)
    assert {f for f, r in reviews if r["trace_id"] == exported["backlog"]} == {DAYS[0]}


def test_summary_counts_what_was_answered_and_skipped(exported: dict[str, Any]) -> None:
    summary = exported["summary"]
    reviews = _reviews(exported["root"], EXPORT_DAY)
    assert summary.exported and summary.tasks == len(exported["rows"])
    assert summary.skipped == {SKIP_INCIDENT: 1, SKIP_UNKNOWN_TRACE: 1}
    assert summary.reviews == dict(Counter(r["task"] for _, r in reviews))
    assert summary.reviews["pointwise"] == summary.reviews["demonstration"] == 1
    assert sorted(p.parent.name for p in summary.written) == DAYS
    assert "incident" in summary.describe()


def test_gold_items_go_to_every_reviewer(exported: dict[str, Any]) -> None:
    reviewers = [r["reviewer_id"] for _, r in _reviews(exported["root"], EXPORT_DAY)
                 if r["trace_id"] == exported["gold_pair"]]
    assert sorted(reviewers) == sorted(rv.REVIEWER_IDS)


def test_a_second_call_writes_nothing(exported: dict[str, Any]) -> None:
    root = exported["root"]
    before = _round_files(root, EXPORT_DAY)
    stamps = {p: p.stat().st_mtime_ns for p in exported["summary"].written}
    again = answer_exported_tasks(root, EXPORT_DAY)
    assert not again.changed and again.written == () and len(again.unchanged) == len(before)
    assert again.reviews == exported["summary"].reviews
    assert _round_files(root, EXPORT_DAY) == before
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert "nothing new" in again.describe()
    assert not list((root / "landing" / "reviews").rglob("*.tmp"))


def test_output_ignores_task_order_and_other_rounds(exported: dict[str, Any],
                                                    tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(exported["root"], root)
    for path in (root / "landing" / "reviews").glob("*/round-*.jsonl"):
        path.unlink()
    earlier = exported["traces"]
    earlier = earlier[(earlier["trace_day"] == DAYS[0]) & (earlier["task"] == "pairwise")]
    _write_tasks(root, DAYS[0], [_task_row(t) for _, t in earlier.iterrows()])
    assert answer_exported_tasks(root, DAYS[0]).reviews["pairwise"] >= len(earlier)
    rows = list(exported["rows"])
    random.Random(3).shuffle(rows)
    _write_tasks(root, EXPORT_DAY, rows)
    answer_exported_tasks(root, EXPORT_DAY)
    assert _round_files(root, EXPORT_DAY) == _round_files(exported["root"], EXPORT_DAY)


def test_a_shrunk_export_takes_back_reviews_of_dropped_tasks(exported: dict[str, Any],
                                                             tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(exported["root"], root)
    kept = [r for r in exported["rows"] if r["trace_day"] == EXPORT_DAY]
    _write_tasks(root, EXPORT_DAY, kept)
    summary = answer_exported_tasks(root, EXPORT_DAY)
    assert [p.parent.name for p in summary.removed] == [DAYS[0]]
    assert {f for f, _ in _reviews(root, EXPORT_DAY)} == {EXPORT_DAY}


def test_no_export_or_an_all_root_means_nothing_to_do(exported: dict[str, Any],
                                                      tmp_path: Path) -> None:
    missing = answer_exported_tasks(exported["root"], "2026-05-09")
    assert not missing.exported and not missing.changed
    root = tmp_path / "all"
    generate(root, days=1, traces_per_day=40, seed=5, start=date.fromisoformat(DAYS[0]))
    _write_tasks(root, DAYS[0], exported["rows"][:3])
    summary = answer_exported_tasks(root, DAYS[0])
    assert summary.skipped == {SKIP_REVIEWED_ROOT: 3} and not summary.changed


def test_reviewer_model_matches_the_generator(tmp_path: Path) -> None:
    """Duplicate share, per-reviewer noise, contradictions and times, with loose bounds."""
    root = tmp_path / "data"
    day = DAYS[0]
    generate(root, days=1, traces_per_day=1500, seed=8, start=date.fromisoformat(day),
             reviews="on_export")
    traces = _landed(root, [day])
    exported = traces[traces["task"].isin(["pairwise", "pointwise", "demonstration"])]
    exported = exported[exported["candidates"].map(len) > 0]
    _write_tasks(root, day, [_task_row(t) for _, t in exported.iterrows()])
    answer_exported_tasks(root, day)
    reviews = [r for _, r in _reviews(root, day)]
    plan = next(iter(day_plans(root)))
    row_of = {tid: i for i, tid in enumerate(plan.ids)}
    gold = {plan.ids[i] for i in plan.gold}
    rubric = load_rubric(Storage(root), RUBRIC_VERSION)

    pairwise = [r for r in reviews if r["task"] == "pairwise"]
    per_trace = Counter(r["trace_id"] for r in pairwise if r["trace_id"] not in gold)
    duplicated = np.mean([n == 2 for n in per_trace.values()])
    assert max(per_trace.values()) == 2
    assert 0.38 < duplicated < 0.52, duplicated

    misread: dict[str, list[bool]] = {}
    contradictions = 0
    for review in pairwise:
        truth = plan.truth[row_of[review["trace_id"]]]
        marks = list(review["criteria"].values())
        for c, seen in enumerate(marks):
            misread.setdefault(review["reviewer_id"], []).append(
                [seen[f] for f in rv.FIELDS] != truth[c].tolist())
        contradictions += rubric.outcome(marks[0], marks[1])[0] != review["choice"]
    noisy = np.mean(misread.pop(rv.NOISY_REVIEWER))
    careful = np.mean([m for values in misread.values() for m in values])
    assert 0.3 < noisy < 0.6, noisy
    assert careful < 0.05, careful
    assert 0.005 < contradictions / len(pairwise) < 0.08

    seconds = {task: np.median([r["review_seconds"] for r in reviews if r["task"] == task])
               for task in ("pairwise", "pointwise", "demonstration")}
    assert seconds["pointwise"] < seconds["pairwise"] < seconds["demonstration"]
    assert all(r["review_seconds"] > 0 for r in reviews)


def test_on_export_lands_only_the_reviews_to_quarantine(tmp_path: Path) -> None:
    args = {"days": 2, "traces_per_day": 40, "seed": 5, "start": date.fromisoformat(DAYS[0])}
    generate(tmp_path / "default", **args)
    generate(tmp_path / "all", reviews="all", **args)
    generate(tmp_path / "lazy", reviews="on_export", **args)
    every = _digest(tmp_path / "all")
    assert _digest(tmp_path / "default") == every
    params = json.loads((tmp_path / "all" / "landing" / "generator.json").read_text())
    assert "reviews" not in params
    lazy_params = json.loads((tmp_path / "lazy" / "landing" / "generator.json").read_text())
    assert lazy_params == {**params, "reviews": "on_export"}

    lazy = _digest(tmp_path / "lazy")
    review_files = {k for k in every if k.startswith("landing/reviews/")}
    assert set(lazy) == set(every)
    assert {k for k in every if every[k] != lazy[k]} == review_files | {
        "landing/generator.json"}

    frozen = set(load_frozen_set(Storage(tmp_path / "lazy"), "code-review-eval-v5").ids)
    landed = set(_landed(tmp_path / "lazy", DAYS).index)
    for day in DAYS:
        lines = (tmp_path / "lazy" / "landing" / "reviews" / day / "reviews-000.jsonl"
                 ).read_text().splitlines()
        ids = [validate_review(json.loads(line), RUBRICS)["trace_id"] for line in lines]
        assert len(ids) == 2
        assert ids[0] not in landed and ids[1] in frozen
        full = (tmp_path / "all" / "landing" / "reviews" / day / "reviews-000.jsonl"
                ).read_text().splitlines()
        good = [json.loads(line) for line in full]
        assert sum(r["trace_id"] in landed - frozen for r in good) > 10

    with pytest.raises(ValueError, match="reviews must be one of"):
        generate(tmp_path / "bad", reviews="later", **args)
