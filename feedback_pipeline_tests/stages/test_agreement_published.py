"""Published agreement figures through `feedback-pipeline run` on landed review files: the
lesson's 120-case matrix (Cohen's kappa 0.835), Krippendorff 2011's four-coder example scored
1-5 (alpha .743 / .815 / .849 / .797) and Fleiss 1971's 30 patients by six raters (Fleiss'
kappa .430), each read back from the day's agreement_report table."""

import json
import math
import shutil
from datetime import date

import pyarrow.parquet as pq
import pytest

from feedback_pipeline.cli import main
from feedback_pipeline.synth.generator import generate
from feedback_pipeline_tests.core.agreement.conftest import FLEISS_1971, PAPER_C, SEED_MATRIX

LESSON_DAY, FLEISS_DAY = "2026-05-01", "2026-05-02"
RUBRIC = "code-review-rubric-v4"
GOOD = {"unauthorized_command": False, "exposes_private_note": False,
        "technically_correct": True, "actionable": True, "clear": True}
WRONG = {**GOOD, "technically_correct": False}
MARKS = {"A": (GOOD, WRONG), "B": (WRONG, GOOD), "TIE": (GOOD, GOOD)}


def _trace(trace_id: str, day: str, n_candidates: int) -> dict:
    return {"trace_id": trace_id, "created_at": f"{day}T09:00:00+00:00",
            "prompt": f"Why does the build of {trace_id} fail?", "slice": "flaky-test-handoff",
            "prompt_template_version": "review-prompt-v7",
            "policy_version": "code-review-policy-2026-04",
            "candidates": [{"candidate_id": f"{trace_id}-c{k}", "model_id": "m",
                            "text": f"Answer {k} for {trace_id}."}
                           for k in range(1, n_candidates + 1)]}


def _review(review_id: str, trace_id: str, reviewer: str, day: str, **task) -> dict:
    return {"review_id": review_id, "trace_id": trace_id, "reviewer_id": reviewer,
            "rubric_version": RUBRIC, "reviewed_at": f"{day}T15:00:00Z", **task}


def _write(path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _landed(root):
    """Day 1: the lesson's matrix as pairwise reviews by two reviewers, Krippendorff's example
    as pointwise scores by four; day 2: Fleiss 1971 as pointwise scores by six."""
    traces = {LESSON_DAY: [], FLEISS_DAY: []}
    reviews = {LESSON_DAY: [], FLEISS_DAY: []}
    labels = ("A", "B", "TIE")
    case = 0
    for first, row in enumerate(SEED_MATRIX):
        for second, n in enumerate(row):
            for _ in range(n):
                tid = f"lesson-{case:03d}"
                traces[LESSON_DAY].append(_trace(tid, LESSON_DAY, 2))
                for reviewer, label in (("rev-a", labels[first]), ("rev-b", labels[second])):
                    a, b = MARKS[label]
                    reviews[LESSON_DAY].append(_review(
                        f"rv-{tid}-{reviewer}", tid, reviewer, LESSON_DAY, task="pairwise",
                        choice=label, criteria={f"{tid}-c1": a, f"{tid}-c2": b}))
                case += 1
    for unit in range(len(PAPER_C[0])):
        tid = f"kripp-{unit:02d}"
        traces[LESSON_DAY].append(_trace(tid, LESSON_DAY, 1))
        for coder, row in enumerate(PAPER_C):
            if not math.isnan(row[unit]):
                reviews[LESSON_DAY].append(_review(
                    f"rv-{tid}-{coder}", tid, f"coder-{coder}", LESSON_DAY, task="pointwise",
                    candidate_id=f"{tid}-c1", score=int(row[unit])))
    for patient, ratings in enumerate(FLEISS_1971):
        tid = f"fleiss-{patient:02d}"
        traces[FLEISS_DAY].append(_trace(tid, FLEISS_DAY, 1))
        for rater, diagnosis in enumerate(ratings):
            reviews[FLEISS_DAY].append(_review(
                f"rv-{tid}-{rater}", tid, f"psychiatrist-{rater}", FLEISS_DAY,
                task="pointwise", candidate_id=f"{tid}-c1", score=diagnosis))
    for day in traces:
        _write(root / "landing" / "traces" / day / "traces.jsonl", traces[day])
        _write(root / "landing" / "reviews" / day / "reviews.jsonl", reviews[day])


def _summary(root, day) -> dict:
    rows = pq.read_table(root / "warehouse" / "agreement_report" / f"date={day}").to_pylist()
    return {r["key"]: r["value"] for r in rows if r["section"] == "summary"}


@pytest.mark.slow
def test_published_agreement_figures_through_feedback_pipeline_run(tmp_path, monkeypatch):
    root = tmp_path / "data"
    generate(root, days=1, traces_per_day=20, seed=3, start=date.fromisoformat(LESSON_DAY))
    for kind in ("traces", "reviews", "judge"):  # keep the config, land only the published data
        shutil.rmtree(root / "landing" / kind, ignore_errors=True)
    _landed(root)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)

    main(["run", "--data-root", str(root)])

    lesson = _summary(root, LESSON_DAY)
    assert round(float(lesson["cohens_kappa"]), 3) == 0.835
    assert round(float(lesson["observed_agreement"]), 3) == 0.892
    assert int(lesson["n_reviewers"]) == 2
    for key, published in (("score_alpha_nominal", 0.743), ("alpha_ordinal", 0.815),
                           ("alpha_interval", 0.849), ("alpha_ratio", 0.797)):
        assert round(float(lesson[key]), 3) == published, key
    fleiss = _summary(root, FLEISS_DAY)
    assert round(float(fleiss["score_fleiss_kappa"]), 3) == 0.430
    assert int(fleiss["score_n_reviewers"]) == 6
    assert "Fleiss (1971)" in json.loads(fleiss["statistic_definitions"])["score_fleiss_kappa"]
