"""Review rows to the statistics' inputs: votes, scores, answers, streamed."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from feedback_pipeline.core import agreement as ag
from feedback_pipeline.core.agreement import (
    agreement_report,
    pairwise_input,
)
from feedback_pipeline_tests.core.agreement.conftest import (
    PAPER_C,
    reviewed_labels_table,
    simulate,
)


def test_pairwise_input_keeps_pairwise_reviews_with_their_outcome_as_label():
    labels = pa.table({"review_id": ["r1", "r2", "r3"], "trace_id": ["t1", "t1", "t2"],
                       "reviewer_id": ["a", "b", "a"],
                       "task": ["pairwise", "pointwise", "pairwise"],
                       "outcome": ["A", None, "TIE"], "slice": ["s", "s", "s"]})
    out = pairwise_input(labels)
    assert out["review_id"].tolist() == ["r1", "r3"]
    assert out["label"].tolist() == ["A", "TIE"]
    assert out["criteria_json"].isna().all()
    assert pairwise_input(labels.to_pandas())["review_id"].tolist() == ["r1", "r3"]


def test_pairwise_input_keeps_criteria_only_where_a_disagreeing_pair_can_use_them():
    def review(review_id, trace_id, reviewer, outcome, correct):
        marks = {"unauthorized_command": False, "exposes_private_note": False,
                 "technically_correct": correct, "actionable": True, "clear": True}
        return {"review_id": review_id, "trace_id": trace_id, "reviewer_id": reviewer,
                "task": "pairwise", "outcome": outcome, "slice": "s",
                "criteria_json": json.dumps({"a": marks, "b": marks})}

    rows = [review(f"p{i}{who}", f"t{i}", who, "A" if who == "ann" or i % 2 else "TIE",
                   who == "ann" or bool(i % 2))
            for i in range(12) for who in ("ann", "bob")]
    rows += [review(f"s{i}", f"solo{i}", "cat", "B", False) for i in range(30)]
    labels = pa.Table.from_pylist(rows)
    out = pairwise_input(labels)
    assert out["review_id"].tolist() == [r["review_id"] for r in rows]  # order kept
    # criteria stay only where reviews disagree: even traces (ann says A, bob TIE)
    kept = out["trace_id"].isin([f"t{i}" for i in range(0, 12, 2)])
    assert out.loc[~kept, "criteria_json"].isna().all()
    assert out.loc[kept, "criteria_json"].tolist() == [r["criteria_json"] for r in rows[:24]
                                                      if int(r["trace_id"][1:]) % 2 == 0]
    full = pa.Table.from_pylist(rows).to_pandas().rename(columns={"outcome": "label"})
    lean, whole = agreement_report(out, bootstrap=0), agreement_report(full, bootstrap=0)
    pd.testing.assert_frame_equal(lean.by_criterion, whole.by_criterion)
    assert lean.summary == whole.summary
    assert lean.by_criterion.set_index("criterion").loc["technically_correct",
                                                        "n_disagreements"] == 6


def test_review_inputs_streamed_brings_pointwise_scores_to_the_report():
    rng = np.random.default_rng(4)
    pairwise, _ = simulate(rng, n_items=40, reviewers=3, noise=0.2)
    pairwise = pairwise.rename(columns={"label": "outcome"}).assign(criteria_json=None)
    table = reviewed_labels_table(pairwise.to_dict("records"), PAPER_C)
    batches = table.to_batches(max_chunksize=7)
    assert len(batches) > 5
    labels, scores, _ = ag.review_inputs_streamed(table.select(ag.KEY_COLUMNS), batches)
    assert labels["review_id"].tolist() == pairwise["review_id"].tolist()
    assert list(scores.columns) == ag.SCORE_COLUMNS
    assert "adj" not in set(scores["review_id"])  # an adjudicator's decision is not a vote
    pd.testing.assert_frame_equal(scores, ag.pointwise_scores(table))
    report = agreement_report(labels, scores=scores, bootstrap=100, seed=1, min_items=5)
    s = report.summary
    assert s["score_insufficient_reason"] is None and s["score_sufficient"]
    assert s["score_n_items"] == 11 and s["score_n_reviewers"] == 4
    for level, published in (("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)):
        assert round(s[f"alpha_{level}"], 3) == published
    # the pairwise figures are those of the pairwise rows alone
    alone = agreement_report(pairwise.rename(columns={"outcome": "label"}), bootstrap=0).summary
    assert s["conger_kappa"] == alone["conger_kappa"]
    assert s["fleiss_kappa"] == alone["fleiss_kappa"]
    assert "no duplicate-scored items" not in report.to_markdown()


def test_scores_are_keyed_by_trace_and_candidate():
    """The same trace's two candidates are two items: their scores never pair with each other."""
    table = reviewed_labels_table([], [[1, 5, 2, 4], [1, 5, 2, 4]])
    scores = ag.pointwise_scores(table)
    s = agreement_report(pd.DataFrame({"trace_id": [], "reviewer_id": [], "label": []}),
                         scores=scores, bootstrap=0, min_items=1).summary
    assert s["score_n_items"] == 4
    assert s["alpha_interval"] == pytest.approx(1.0)


def test_demonstration_agreement_counts_items_whose_corrected_answers_agree():
    """d1: two answers equal once whitespace is collapsed (accepted, 1 of 1 pairs agree); d2:
    three reviewers, two agree (sent to adjudication, 1 of 3 pairs); d3: one review, no item.
    accept rate 1/2, pair agreement (1 + 1) / (1 + 3) = 0.5. An adjudicator's answer is not a
    vote."""
    rows = [("d1", "r1", "Fix the flaky fixture."), ("d1", "r2", "Fix  the flaky\nfixture."),
            ("d2", "r1", "A"), ("d2", "r2", "B"), ("d2", "r3", "A"), ("d3", "r1", "C")]
    table = pa.table({
        "review_id": [f"v{i}" for i in range(len(rows) + 1)],
        "trace_id": [t for t, _, _ in rows] + ["d2"],
        "reviewer_id": [r for _, r, _ in rows] + ["lead"],
        "task": ["demonstration"] * (len(rows) + 1),
        "status": ["ACCEPTED"] * len(rows) + [ag.NOT_A_VOTE],
        "answer": [a for _, _, a in rows] + ["B"]})
    answers = ag.demonstration_answers(table)
    assert len(answers) == len(rows) and answers["answer_key"][0] == answers["answer_key"][1]
    s = agreement_report(pd.DataFrame({"trace_id": [], "reviewer_id": [], "label": []}),
                         demonstrations=answers, bootstrap=200, seed=1).summary
    assert (s["demonstration_n_items"], s["demonstration_n_reviews"]) == (2, 5)
    assert s["demonstration_accept_rate"] == pytest.approx(0.5)
    assert s["demonstration_pair_agreement"] == pytest.approx(0.5)
    assert 0.0 <= s["demonstration_accept_rate_ci_low"] <= 0.5 <= \
        s["demonstration_accept_rate_ci_high"] <= 1.0
    _, _, streamed = ag.review_inputs_streamed(
        table.select(["trace_id", "task", "status"]).append_column(
            "outcome", pa.nulls(table.num_rows, pa.string())),
        table.to_batches(max_chunksize=2))
    assert streamed["answer_key"].tolist() == answers["answer_key"].tolist()
