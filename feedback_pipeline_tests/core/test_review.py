import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feedback_pipeline.core.contract import ContractError
from feedback_pipeline.core.review import (
    REPEATED_REVIEW_ID,
    REVIEW_COLUMNS,
    REVIEW_SCHEMA,
    SpooledReviews,
    resolve_review_batches,
    resolve_reviews,
    unsafe_accepted_pairs,
    unsafe_pairs_in_parquet,
    validate_review,
)
from feedback_pipeline.core.routing import route
from feedback_pipeline_tests.core.test_rubric import RUBRIC, marks

KNOWN = {"code-review-rubric-v4"}


def trace(tid, n=2, reserved=False, unsafe=False, approved=None):
    return {"trace_id": tid, "prompt": f"prompt of {tid}", "slice": "routine-review",
            "reserved_for_evaluation": reserved, "unsafe_effect": unsafe,
            "approved_answer": approved, "redaction_version": "r1",
            "prompt_template_version": "p1", "policy_version": "pol1",
            "prompt_fingerprint": f"fp-{tid}",
            "candidates": [{"candidate_id": f"{tid}-{c}", "model_id": f"model-{c}",
                            "generation": '{"temperature": 0.2}', "text": f"answer {c}"}
                           for c in "ab"[:n]]}


def pairwise(rid, tid, a, b, choice=None, reviewer="rev-01", reason=None):
    row = dict.fromkeys(REVIEW_COLUMNS)
    row.update(review_id=rid, trace_id=tid, reviewer_id=reviewer, task="pairwise",
               rubric_version="code-review-rubric-v4", choice=choice, reason=reason,
               criteria_json=json.dumps({f"{tid}-a": a, f"{tid}-b": b}))
    return row


def resolve(traces, reviews):
    traces = pd.DataFrame(traces)
    return resolve_reviews(pd.DataFrame(reviews, columns=REVIEW_COLUMNS), traces,
                           route(traces, set()), RUBRIC)


def test_accepted_pair_carries_provenance_and_chosen_is_the_rubric_winner():
    out = resolve([trace("t1")], [
        pairwise("r1", "t1", marks(technically_correct=False), marks(), choice="B"),
        pairwise("r2", "t1", marks(clear=False), marks(), choice="B", reviewer="rev-02"),
    ])
    pair = out.preference_pairs.iloc[0]
    assert (pair["chosen"], pair["rejected"], pair["outcome"]) == ("answer b", "answer a", "B")
    assert pair["reviewer_ids"] == "rev-01,rev-02"
    assert (pair["redaction_version"], pair["prompt_template_version"], pair["policy_version"],
            pair["chosen_model_id"], pair["chosen_generation"]) == (
        "r1", "p1", "pol1", "model-b", '{"temperature": 0.2}')
    assert set(out.labels["status"]) == {"ACCEPTED"}


def test_choice_that_contradicts_the_rubric_is_flagged_and_never_accepted():
    out = resolve([trace("t1")], [
        pairwise("r1", "t1", marks(unauthorized_command=True), marks(clear=False), choice="A"),
    ])
    assert out.labels["status"].tolist() == ["RUBRIC_CONFLICT"]
    assert out.preference_pairs.empty
    assert out.adjudication["reason"].tolist() == ["every review contradicts the rubric"]


def test_both_bad_goes_to_incident_review_with_its_reason():
    out = resolve([trace("t1")], [
        pairwise("r1", "t1", marks(exposes_private_note=True), marks(unauthorized_command=True),
                 choice="BOTH_BAD", reason="both leak the incident notes"),
    ])
    assert out.preference_pairs.empty
    assert out.incidents["reason"].tolist() == ["BOTH_BAD: both leak the incident notes"]


def test_disagreement_and_ties_go_to_adjudication():
    out = resolve([trace("t1"), trace("t2")], [
        pairwise("r1", "t1", marks(), marks(technically_correct=False)),
        pairwise("r2", "t1", marks(technically_correct=False), marks(), reviewer="rev-02"),
        pairwise("r3", "t2", marks(), marks()),
    ])
    assert out.preference_pairs.empty
    reasons = dict(zip(out.adjudication["trace_id"], out.adjudication["reason"], strict=True))
    assert reasons["t1"].startswith("reviewers disagree")
    assert reasons["t2"] == "tie under every rubric criterion"


def test_majority_of_three_is_accepted():
    out = resolve([trace("t1")], [
        pairwise("r1", "t1", marks(), marks(technically_correct=False)),
        pairwise("r2", "t1", marks(), marks(clear=False), reviewer="rev-02"),
        pairwise("r3", "t1", marks(technically_correct=False), marks(), reviewer="rev-03"),
    ])
    assert out.preference_pairs["outcome"].tolist() == ["A"]
    assert out.preference_pairs["reviewer_ids"].tolist() == ["rev-01,rev-02"]


def test_frozen_and_unknown_traces_are_quarantined_with_the_reason():
    traces = [trace("attack-014", reserved=True), trace("t1")]
    out = resolve(traces, [
        pairwise("r1", "attack-014", marks(), marks(clear=False)),
        pairwise("r2", "ghost-1", marks(), marks(clear=False)),
    ])
    reasons = dict(zip(out.quarantine["record_id"], out.quarantine["reason"], strict=True))
    assert "frozen-evaluation" in reasons["r1"]
    assert "not a known trace" in reasons["r2"]
    assert out.preference_pairs.empty and out.labels.empty


def test_demonstrations_come_from_approved_answers_and_corrections():
    correction = dict.fromkeys(REVIEW_COLUMNS)
    correction.update(review_id="d1", trace_id="t2", reviewer_id="rev-01", task="demonstration",
                      rubric_version="code-review-rubric-v4", answer="corrected")
    out = resolve([trace("t1", n=1, approved="approved"), trace("t2", n=1, approved="old")],
                  [correction])
    got = dict(zip(out.demonstrations["trace_id"], out.demonstrations["answer"], strict=True))
    assert got == {"t1": "approved", "t2": "corrected"}


def test_unsafe_accepted_pair_is_detected_from_reviewer_criteria():
    pairs = pd.DataFrame({"trace_id": ["t1"], "chosen_candidate_id": ["t1-a"],
                          "criteria_json": [json.dumps([{"t1-a": marks(unauthorized_command=True),
                                                         "t1-b": marks()}])]})
    assert unsafe_accepted_pairs(pairs, RUBRIC) == ["t1"]


def test_unsafe_pairs_are_found_in_a_preference_file_as_in_its_rows(tmp_path):
    def criteria(chosen_unsafe: bool) -> str:
        return json.dumps([{"a": marks(), "b": marks()},
                           {"a": marks(exposes_private_note=chosen_unsafe), "b": marks()}])

    pairs = pa.table({"trace_id": ["t1", "t2", "t3"], "chosen_candidate_id": ["a", "a", "b"],
                      "criteria_json": [criteria(False), criteria(True), criteria(True)],
                      "prompt": ["p"] * 3})
    pq.write_table(pairs, tmp_path / "pairs.parquet", row_group_size=1)
    assert unsafe_pairs_in_parquet(tmp_path / "pairs.parquet", rubric=RUBRIC) == ["t2"]
    assert unsafe_accepted_pairs(pairs, RUBRIC) == ["t2"]


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ({"review_id": "r", "trace_id": "t", "reviewer_id": "v", "rubric_version": "nope",
          "task": "pairwise"}, "not a known rubric"),
        ({"review_id": "r", "trace_id": "t", "reviewer_id": "v",
          "rubric_version": "code-review-rubric-v4", "task": "pointwise", "candidate_id": "a",
          "score": 9}, "score must be an integer from 1 to 5"),
        ({"review_id": "r", "trace_id": "t", "reviewer_id": "v",
          "rubric_version": "code-review-rubric-v4", "task": "pairwise", "criteria": {"a": {}}},
         "exactly two candidates"),
    ],
)
def test_malformed_reviews_are_rejected_with_a_reason(obj, reason):
    with pytest.raises(ContractError, match=reason):
        validate_review(obj, KNOWN)


def test_review_seconds_beyond_a_double_quarantines_its_line_not_the_chunk():
    """An integer literal of 400 digits raised OverflowError out of the chunk's parse (the
    whole reviewed_labels step failed); it is the line's quarantine reason, naming the field."""
    from feedback_pipeline.core.review import parse_review_lines

    review = {"review_id": "r1", "trace_id": "t1", "reviewer_id": "v", "task": "demonstration",
              "rubric_version": "code-review-rubric-v4", "answer": "Rerun the job."}
    lines = [(1, json.dumps({**review, "review_seconds": 10 ** 400})),
             (2, json.dumps({**review, "review_id": "r2", "review_seconds": 12}))]
    parsed = parse_review_lines(lines, "reviews.jsonl", KNOWN)
    assert [r["review_id"] for r in parsed.rows] == ["r2"]
    assert [(q["line_number"], q["reason"]) for q in parsed.quarantine] == [
        (1, "review_seconds is too large for a number of seconds")]


def batch_day() -> tuple[list[dict], list[dict]]:
    """Twelve traces with two reviews each (every third with a safety disagreement) and one
    review of a trace that is not in the day."""
    traces = [trace(f"t{i}", approved="fixed" if i % 4 == 0 else None) for i in range(12)]
    reviews = []
    for i in range(12):
        tid = f"t{i}"
        a, b = (marks(), marks(clear=False)) if i % 3 else (marks(actionable=False), marks())
        reviews.append(pairwise(f"r{i}", tid, a, b))
        reviews.append(pairwise(f"s{i}", tid, a, b if i % 5 else marks(), reviewer="rev-02"))
    reviews.insert(5, pairwise("orphan", "t-missing", marks(), marks()))
    return traces, reviews


@pytest.mark.parametrize("workers", [1, 2])
def test_batched_resolution_gives_the_same_lanes_as_the_whole_day(workers):
    traces, reviews = batch_day()
    frame = pd.DataFrame(traces)
    queues = route(frame, {"t3"})
    whole = resolve_reviews(pd.DataFrame(reviews, columns=REVIEW_COLUMNS), frame, queues, RUBRIC)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    review_table = pa.Table.from_pylist(reviews, schema=REVIEW_SCHEMA)
    parts = list(resolve_review_batches(review_table, table.to_batches(max_chunksize=5), queues,
                                        RUBRIC, workers=workers))
    assert len(parts) == 4
    for lane in ("labels", "preference_pairs", "demonstrations", "adjudication", "incidents",
                 "quarantine"):
        got = pd.concat([p.lanes[lane].to_pandas() if lane != "quarantine"
                         else pd.DataFrame(p.quarantine) for p in parts], ignore_index=True)
        expected = getattr(whole, lane)
        assert len(got) == len(expected), lane
        key = "review_id" if lane == "labels" else ("record_id" if lane == "quarantine"
                                                   else "trace_id")
        assert sorted(got[key].astype(str)) == sorted(expected[key].astype(str)), lane
    assert [row["record_id"] for row in parts[-1].quarantine] == ["orphan"]
    assert not any("t3" in p.lanes["preference_pairs"]["trace_id"].to_pylist() for p in parts)


@pytest.mark.parametrize("group_rows", [1, 3, 7, 100])
def test_reviews_spooled_by_trace_group_resolve_exactly_like_the_day_in_memory(tmp_path,
                                                                              group_rows):
    traces, reviews = batch_day()
    frame = pd.DataFrame(traces)
    queues = route(frame, {"t3"})
    table = pa.Table.from_pandas(frame, preserve_index=False)
    review_table = pa.Table.from_pylist(reviews, schema=REVIEW_SCHEMA)
    spooled = SpooledReviews(table["trace_id"], tmp_path / "spool", group_rows=group_rows)
    for chunk in review_table.to_batches(max_chunksize=4):  # as parsed chunks arrive
        spooled.add(pa.Table.from_batches([chunk]))
    assert spooled.rows == len(reviews)
    in_memory = list(resolve_review_batches(review_table, table.to_batches(max_chunksize=5),
                                            queues, RUBRIC))
    from_disk = list(resolve_review_batches(spooled, table.to_batches(max_chunksize=5),
                                            queues, RUBRIC))
    assert len(from_disk) == len(in_memory) == 4
    for ours, theirs in zip(from_disk, in_memory, strict=True):
        assert ours.lanes.keys() == theirs.lanes.keys()
        for lane, table in ours.lanes.items():
            assert table.equals(theirs.lanes[lane]), lane
        assert ours.quarantine == theirs.quarantine
    assert [row["record_id"] for row in from_disk[-1].quarantine] == ["orphan"]
    if group_rows < len(traces):
        assert len(list((tmp_path / "spool").glob("group-*.arrows"))) > 1


def pointwise(rid, tid, reviewer, score=None, label=None, candidate="a"):
    row = dict.fromkeys(REVIEW_COLUMNS)
    row.update(review_id=rid, trace_id=tid, reviewer_id=reviewer, task="pointwise",
               rubric_version="code-review-rubric-v4", candidate_id=f"{tid}-{candidate}",
               score=score, label=label)
    return row


def demonstration(rid, tid, reviewer, answer):
    row = dict.fromkeys(REVIEW_COLUMNS)
    row.update(review_id=rid, trace_id=tid, reviewer_id=reviewer, task="demonstration",
               rubric_version="code-review-rubric-v4", answer=answer)
    return row


def test_the_same_review_seen_twice_is_one_vote():
    """rev-01's review arrives twice (two files); with rev-02 disagreeing, the item is a 1-1
    disagreement, not a 2-1 majority. The identical repeat is dropped and counted."""
    prefers_a = pairwise("r1", "t1", marks(), marks(technically_correct=False))
    out = resolve([trace("t1")], [
        {**prefers_a, "source_file": "a.jsonl", "source_line": 1},
        {**prefers_a, "source_file": "b.jsonl", "source_line": 7},
        pairwise("r2", "t1", marks(technically_correct=False), marks(), reviewer="rev-02"),
    ])
    assert out.preference_pairs.empty
    assert out.adjudication["reason"].tolist() == ["reviewers disagree (Ax1, Bx1)"]
    assert sorted(out.labels["status"]) == ["ADJUDICATION", "ADJUDICATION"]
    assert out.labels["review_id"].tolist() == ["r1", "r2"]
    assert out.labels["source_file"].tolist()[0] == "b.jsonl", "the later arrival is kept"
    assert out.redelivered == 1 and out.quarantine.empty


def test_a_review_id_repeated_with_different_content_keeps_the_latest_and_quarantines_the_rest():
    """The same review_id on one trace, from two reviewers who both prefer A: it used to be
    two votes (a 2-1 majority over rev-02); now the latest by reviewed_at is kept, the other
    is quarantined naming the rule and no value, and the item is a 1-1 disagreement."""
    earlier = at(pairwise("r1", "t1", marks(), marks(technically_correct=False)),
                 "2026-05-02T09:00:00Z", source_file="late-file.jsonl", source_line=3)
    later = at(pairwise("r1", "t1", marks(), marks(clear=False), reviewer="rev-03"),
               "2026-05-02T10:00:00Z", source_file="early-file.jsonl", source_line=1)
    out = resolve([trace("t1")], [
        later, earlier,
        pairwise("r2", "t1", marks(technically_correct=False), marks(), reviewer="rev-02"),
    ])
    assert out.preference_pairs.empty
    assert out.adjudication["reason"].tolist() == ["reviewers disagree (Ax1, Bx1)"]
    assert sorted(zip(out.labels["review_id"], out.labels["reviewer_id"], strict=True)) == [
        ("r1", "rev-03"), ("r2", "rev-02")]
    assert out.quarantine[["source_file", "line_number", "reason"]].values.tolist() == [
        ["late-file.jsonl", 3, REPEATED_REVIEW_ID]]
    assert "r1" not in REPEATED_REVIEW_ID and "t1" not in REPEATED_REVIEW_ID
    assert out.redelivered == 0


def test_without_reviewed_at_the_later_arrival_of_a_repeated_review_id_is_kept():
    first = pairwise("r1", "t1", marks(), marks(technically_correct=False))
    second = pairwise("r1", "t1", marks(technically_correct=False), marks())
    out = resolve([trace("t1"), trace("t2")], [
        first, second, pairwise("r1", "t2", marks(), marks(clear=False))])
    by_trace = dict(zip(out.labels["trace_id"], out.labels["outcome"], strict=True))
    assert by_trace == {"t1": "B", "t2": "A"}, "the same id on another trace is its own review"
    assert out.quarantine["reason"].tolist() == [REPEATED_REVIEW_ID]


def test_repeated_review_ids_resolve_the_same_in_batches():
    traces = pa.Table.from_pylist([trace(f"t{i}") for i in range(6)])
    rows = [pairwise(f"r{i}", f"t{i}", marks(), marks(clear=False)) for i in range(6)]
    rows += [dict(rows[2]), pairwise("r4", "t4", marks(clear=False), marks())]
    table = pa.Table.from_pandas(pd.DataFrame(rows, columns=REVIEW_COLUMNS),
                                 preserve_index=False).cast(REVIEW_SCHEMA)
    queues = route(traces.to_pandas(), set())
    parts = list(resolve_review_batches(table, traces.to_batches(max_chunksize=2), queues,
                                        RUBRIC))
    assert sum(p.redelivered for p in parts) == 1
    assert [q["reason"] for p in parts for q in p.quarantine] == [REPEATED_REVIEW_ID]
    labels = pa.concat_tables([p.lanes["labels"] for p in parts])
    assert sorted(labels["review_id"].to_pylist()) == [f"r{i}" for i in range(6)]


def test_a_reviewer_who_reviews_again_counts_once_with_the_latest_review():
    first = pairwise("r1", "t1", marks(technically_correct=False), marks())
    first["reviewed_at"] = pd.Timestamp("2026-05-02T09:00:00Z").to_pydatetime()
    second = pairwise("r9", "t1", marks(), marks(technically_correct=False))
    second["reviewed_at"] = pd.Timestamp("2026-05-02T11:00:00Z").to_pydatetime()
    out = resolve([trace("t1")], [second, first])
    assert out.preference_pairs["outcome"].tolist() == ["A"]
    assert out.preference_pairs["review_ids"].tolist() == ["r9"]
    status = dict(zip(out.labels["review_id"], out.labels["status"], strict=True))
    assert status == {"r1": "SUPERSEDED", "r9": "ACCEPTED"}


def test_a_safety_flag_on_the_chosen_answer_is_never_outvoted():
    out = resolve([trace("t1")], [
        pairwise("r1", "t1", marks(), marks(technically_correct=False)),
        pairwise("r2", "t1", marks(), marks(clear=False), reviewer="rev-02"),
        pairwise("r3", "t1", marks(exposes_private_note=True), marks(), reviewer="rev-03"),
    ])
    assert out.preference_pairs.empty
    reason = out.adjudication["reason"].tolist()
    assert len(reason) == 1 and reason[0].startswith("safety or authorization flag on the "
                                                     "chosen answer by 1 reviewer")


def test_an_accepted_pair_keeps_every_reviews_criteria_for_the_unsafe_gate():
    out = resolve([trace("t1")], [
        pairwise("r1", "t1", marks(), marks(technically_correct=False)),
        pairwise("r2", "t1", marks(), marks(clear=False), reviewer="rev-02"),
        pairwise("r3", "t1", marks(technically_correct=False), marks(), reviewer="rev-03"),
    ])
    pair = out.preference_pairs.iloc[0]
    assert len(json.loads(pair["criteria_json"])) == 3 == pair["n_reviews"]
    assert pair["review_ids"] == "r1,r2"


def test_duplicate_pointwise_reviews_resolve_to_one_row_or_to_adjudication():
    traces = [trace("t1", n=1), trace("t2", n=1)]
    out = resolve(traces, [
        pointwise("p1", "t1", "rev-01", score=5), pointwise("p2", "t1", "rev-02", score=4),
        pointwise("p3", "t2", "rev-01", score=5), pointwise("p4", "t2", "rev-02", score=2),
    ])
    assert out.pointwise["trace_id"].tolist() == ["t1"]
    row = out.pointwise.iloc[0]
    assert bool(row["label"]) and row["score"] == 4 and row["review_ids"] == "p1,p2"
    assert out.adjudication["trace_id"].tolist() == ["t2"]
    assert out.adjudication["reason"].iloc[0] == "pointwise reviewers disagree (desirablex1, " \
                                                 "undesirablex1)"


def test_duplicate_corrected_answers_are_one_demonstration_or_go_to_adjudication():
    traces = [trace("t1", n=1, approved="old"), trace("t2", n=1, approved="old")]
    out = resolve(traces, [
        demonstration("d1", "t1", "rev-01", "Rerun with a clean cache."),
        demonstration("d2", "t1", "rev-02", "Rerun  with a clean cache. "),
        demonstration("d3", "t2", "rev-01", "Rerun with a clean cache."),
        demonstration("d4", "t2", "rev-02", "Revert the fixture change."),
    ])
    assert out.demonstrations["trace_id"].tolist() == ["t1"]
    assert out.demonstrations["review_ids"].tolist() == ["d1,d2"]
    assert out.adjudication["trace_id"].tolist() == ["t2"]
    assert "2 different corrected answers" in out.adjudication["reason"].iloc[0]


def resolve_with(traces, reviews, adjudicators=()):
    traces = pd.DataFrame(traces)
    return resolve_reviews(pd.DataFrame(reviews, columns=REVIEW_COLUMNS), traces,
                           route(traces, set()), RUBRIC,
                           adjudicators=frozenset(adjudicators))


def at(row, stamp, **extra):
    row["reviewed_at"] = pd.Timestamp(stamp).to_pydatetime()
    row.update(extra)
    return row


def test_an_adjudicators_review_closes_a_disagreement_with_who_when_and_why():
    out = resolve_with([trace("t1")], [
        pairwise("r1", "t1", marks(), marks(technically_correct=False)),
        pairwise("r2", "t1", marks(technically_correct=False), marks(), reviewer="rev-02"),
        at(pairwise("r3", "t1", marks(technically_correct=False), marks(), reviewer="lead",
                    reason="B cites the failing test"), "2026-05-03T09:00:00Z"),
    ], adjudicators={"lead"})
    pair = out.preference_pairs.iloc[0]
    assert (pair["outcome"], pair["chosen"], pair["reviewer_ids"]) == ("B", "answer b", "lead")
    record = out.adjudication.iloc[0]
    assert (record["status"], record["decision"], record["decided_by"],
            record["decision_reason"], record["task"]) == (
        "RESOLVED", "B", "lead", "B cites the failing test", "pairwise")
    assert record["reason"] == "reviewers disagree (Ax1, Bx1)"
    assert pd.Timestamp(record["decided_at"]) == pd.Timestamp("2026-05-03T09:00:00Z")
    status = dict(zip(out.labels["review_id"], out.labels["status"], strict=True))
    assert status == {"r1": "ADJUDICATION", "r2": "ADJUDICATION", "r3": "ADJUDICATED"}


def test_without_an_adjudicator_the_same_three_reviews_are_votes():
    reviews = [
        pairwise("r1", "t1", marks(), marks(technically_correct=False)),
        pairwise("r2", "t1", marks(technically_correct=False), marks(), reviewer="rev-02"),
        pairwise("r3", "t1", marks(technically_correct=False), marks(), reviewer="lead"),
    ]
    out = resolve_with([trace("t1")], reviews)
    assert out.preference_pairs["review_ids"].tolist() == ["r2,r3"]
    assert out.adjudication.empty


def test_an_adjudicated_both_bad_is_an_incident_and_a_tie_closes_without_a_row():
    unsafe = marks(exposes_private_note=True)
    out = resolve_with([trace("t1"), trace("t2")], [
        pairwise("r1", "t1", marks(), unsafe),
        pairwise("r2", "t1", marks(), marks(), reviewer="rev-02"),
        pairwise("r3", "t1", unsafe, unsafe, reviewer="lead", reason="both leak the note"),
        pairwise("r4", "t2", marks(), marks(), reviewer="rev-01"),
        pairwise("r5", "t2", marks(), marks(), reviewer="lead", reason="equal"),
    ], adjudicators={"lead"})
    assert out.preference_pairs.empty
    assert out.incidents["trace_id"].tolist() == ["t1"]
    assert out.incidents["reason"].iloc[0] == "adjudicated BOTH_BAD: both leak the note"
    decisions = dict(zip(out.adjudication["trace_id"], out.adjudication["decision"],
                         strict=True))
    assert decisions == {"t1": "BOTH_BAD", "t2": "TIEx1"}
    assert set(out.adjudication["status"]) == {"RESOLVED"}


def test_an_adjudicators_review_that_contradicts_the_rubric_leaves_the_item_open():
    out = resolve_with([trace("t1")], [
        pairwise("r1", "t1", marks(), marks(technically_correct=False)),
        pairwise("r2", "t1", marks(technically_correct=False), marks(), reviewer="rev-02"),
        pairwise("r3", "t1", marks(), marks(technically_correct=False), choice="B",
                 reviewer="lead"),
    ], adjudicators={"lead"})
    assert out.preference_pairs.empty
    record = out.adjudication.iloc[0]
    assert record["status"] == "OPEN" and "did not settle it" in record["reason"]


def test_an_adjudication_flag_from_a_reviewer_without_the_role_is_quarantined():
    decision = pairwise("r3", "t1", marks(), marks(technically_correct=False), reviewer="rev-03")
    decision["adjudication"] = True
    out = resolve_with([trace("t1")], [decision], adjudicators={"lead"})
    assert out.labels.empty
    assert "without the adjudicator role" in out.quarantine["reason"].iloc[0]


def test_pointwise_and_demonstration_conflicts_close_by_adjudication():
    traces = [trace("t1", n=1), trace("t2", n=1, approved="old")]
    out = resolve_with(traces, [
        pointwise("p1", "t1", "rev-01", score=5), pointwise("p2", "t1", "rev-02", score=2),
        pointwise("p3", "t1", "lead", score=2),
        demonstration("d1", "t2", "rev-01", "Rerun."), demonstration("d2", "t2", "rev-02", "Revert."),
        demonstration("d3", "t2", "lead", "Revert the fixture change."),
    ], adjudicators={"lead"})
    point = out.pointwise.iloc[0]
    assert (bool(point["label"]), point["review_ids"]) == (False, "p3")
    assert out.demonstrations["answer"].tolist() == ["Revert the fixture change."]
    assert set(out.adjudication["status"]) == {"RESOLVED"}
    assert sorted(out.adjudication["decision"]) == ["answer", "undesirable"]


def incident_review(rid, tid, reviewer, resolution, reason):
    row = dict.fromkeys(REVIEW_COLUMNS)
    row.update(review_id=rid, trace_id=tid, reviewer_id=reviewer, task="incident",
               rubric_version="code-review-rubric-v4", resolution=resolution, reason=reason)
    return row


def test_an_incident_review_records_its_resolution_on_the_incident():
    out = resolve_with([trace("t1"), trace("t2", unsafe=True)], [
        pairwise("r1", "t1", marks(exposes_private_note=True), marks(exposes_private_note=True),
                 reason="both leak"),
        at(incident_review("i1", "t1", "rev-02", "no_action", "known leak"),
           "2026-05-03T08:00:00Z"),
        at(incident_review("i2", "t1", "rev-03", "new_fixture", "add to the frozen set"),
           "2026-05-03T09:00:00Z"),
        incident_review("i3", "t2", "rev-02", "resolved", "tool permission removed"),
    ])
    records = out.incidents.set_index("trace_id")
    assert records.loc["t1", "reason"] == "BOTH_BAD: both leak"
    assert (records.loc["t1", "resolution"], records.loc["t1", "resolved_by"],
            records.loc["t1", "resolution_reason"]) == ("new_fixture", "rev-03",
                                                       "add to the frozen set")
    assert records.loc["t2", "resolution"] == "resolved"
    assert len(out.incidents) == 2


def test_an_incident_review_needs_a_resolution_and_a_reason():
    good = {"review_id": "i1", "trace_id": "t1", "reviewer_id": "rev-01",
            "rubric_version": "code-review-rubric-v4", "task": "incident",
            "resolution": "no_action", "reason": "seen"}
    assert validate_review(good, KNOWN)["resolution"] == "no_action"
    with pytest.raises(ContractError, match="resolution"):
        validate_review({**good, "resolution": "fixed"}, KNOWN)
    with pytest.raises(ContractError, match="reason"):
        validate_review({**good, "reason": " "}, KNOWN)


def test_review_ids_leaving_the_zone_need_the_identifier_shape_and_reasons_never_quote_them():
    base = {"review_id": "r1", "trace_id": "t1", "reviewer_id": "lead@example.com",
            "rubric_version": "code-review-rubric-v4", "task": "demonstration", "answer": "x"}
    assert validate_review(base, KNOWN)["reviewer_id"] == "lead@example.com"
    for field, planted in (("review_id", "jane.doe@example.com"),
                           ("trace_id", "postgres://admin:S3cr3t@db")):
        with pytest.raises(ContractError, match=f"{field} does not have the identifier shape") \
                as err:
            validate_review({**base, field: planted}, KNOWN)
        assert planted not in str(err.value)
    with pytest.raises(ContractError) as err:
        validate_review({**base, "rubric_version": "v9 secret=hunter2"}, {"v9 secret=hunter2"})
    assert "hunter2" not in str(err.value)


def test_first_positions_answer_every_probe_as_arrow_index_in_does():
    import numpy as np
    import pyarrow.compute as pc

    from feedback_pipeline.core.review import FirstPositions

    ids = pa.chunked_array([["t-3", "t-1", "t-3"], ["t-2", "t-1"]])
    values = pa.chunked_array([["r3", "r1", "r3b"], ["r2", "r1b"]])
    probes = [pa.array(["t-1", "t-9", "t-3", "t-2", "t-3"]), pa.chunked_array([[], ["t-2"]],
                                                                           pa.string()),
              pa.array([], pa.string())]
    lookup = FirstPositions(ids)
    for probe in probes:
        expected = pc.index_in(probe, value_set=ids.combine_chunks())
        assert lookup.of(probe).tolist() == expected.fill_null(-1).to_pylist()
        assert lookup.take(values, probe).to_pylist() == pc.take(values, expected).to_pylist()
    assert lookup.of(pa.array(["t-3", "t-1"])).tolist() == [0, 1]  # the first of a repeat
    assert np.all(FirstPositions(pa.array([], pa.string())).of(probes[0]) == -1)
