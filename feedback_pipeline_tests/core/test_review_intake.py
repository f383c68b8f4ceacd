"""Which partition reports a review folder's problems."""

from feedback_pipeline.core.review_intake import owned_review_days

TRACE_DAYS = ["2026-05-01", "2026-05-02", "2026-05-04"]
REVIEW_DAYS = ["2026-04-30", "2026-05-01", "2026-05-03", "2026-05-04", "2026-05-09"]


def test_every_review_folder_has_exactly_one_owning_partition():
    owners = {day: owned_review_days(day, TRACE_DAYS, REVIEW_DAYS) for day in TRACE_DAYS}
    assert owners == {
        "2026-05-01": ["2026-04-30", "2026-05-01"],  # before every trace day: the first
        "2026-05-02": ["2026-05-03"],  # a pull's day without traces: the latest day before it
        "2026-05-04": ["2026-05-04", "2026-05-09"],
    }
    owned = [folder for folders in owners.values() for folder in folders]
    assert sorted(owned) == REVIEW_DAYS


def test_a_partition_without_landed_traces_still_owns_its_own_folder():
    assert owned_review_days("2026-05-03", TRACE_DAYS, REVIEW_DAYS) == ["2026-05-03"]


def test_the_trace_ids_a_review_file_names_in_every_landed_shape():
    import json

    from feedback_pipeline.core.review_intake import trace_ids_in_review_file

    jsonl = '{"trace_id": "t1"}\nnot json\n{"trace_id": 7}\n{"trace_id": "t2"}\n'
    assert trace_ids_in_review_file(jsonl, json_lines=True) == {"t1", "t2"}
    raw = json.dumps([{"id": 1, "data": {"trace_id": "t3"}, "annotations": []}, "junk"])
    assert trace_ids_in_review_file(raw, json_lines=False) == {"t3"}
    json_min = json.dumps([{"id": 1, "trace_id": "t4", "choice": "A"}])
    assert trace_ids_in_review_file(json_min, json_lines=False) == {"t4"}
    assert trace_ids_in_review_file("{broken", json_lines=False) == set()
