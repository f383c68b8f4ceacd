"""Which partition reports a review folder's problems."""

import pytest

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


def test_no_review_line_stops_the_landing_sensors_lookup_of_trace_ids():
    """A 5,000-digit integer (ValueError) or 200,000-deep nesting (RecursionError) on one
    line raised out of the lookup the landing sensor runs on every new review file; such a
    line is passed over like any other unparseable one, and a byte order mark is ignored."""
    import json

    from feedback_pipeline.core.review_intake import trace_ids_in_review_file

    deep = "[" * 200_000 + "]" * 200_000
    lines = ["\ufeff" + json.dumps({"trace_id": "t1"}), '{"trace_id": "x", "n": ' + "7" * 5000
             + "}", deep, json.dumps({"trace_id": "t2"})]
    assert trace_ids_in_review_file("\n".join(lines), json_lines=True) == {"t1", "t2"}
    assert trace_ids_in_review_file(deep, json_lines=False) == set()
    assert trace_ids_in_review_file("[" + "7" * 5000 + "]", json_lines=False) == set()
    export = json.dumps([{"data": {"trace_id": "t3"}}])
    assert trace_ids_in_review_file("\ufeff" + export, json_lines=False) == {"t3"}


def _review(review_id: str, **extra) -> dict:
    marks = {"unauthorized_command": False, "exposes_private_note": False,
             "technically_correct": True, "actionable": True, "clear": True}
    return {"review_id": review_id, "trace_id": "t-1", "reviewer_id": "rev-01",
            "rubric_version": "rubric-v1", "task": "pairwise", "choice": "A",
            "criteria": {"t-1-a": marks, "t-1-b": {**marks, "clear": False}}, **extra}


def test_review_lines_with_encoding_and_json_faults_cost_only_their_line(tmp_path):
    """Reviews are read and parsed like traces: a byte order mark no longer costs the first
    review, and bytes that are not UTF-8, NaN and a field named twice quarantine only their
    line, by rule, never repeating the value."""
    import json

    from feedback_pipeline.core.contract import read_lines
    from feedback_pipeline.core.review_intake import IntakeSettings, parse_review_chunk

    secret = "canary.leak4417@probe-mail.example"
    lines = [
        json.dumps(_review("rv-1")).encode(),
        json.dumps(_review("rv-2", reason=f"ask {secret} X")).encode().replace(b" X", b" \xffX"),
        json.dumps(_review("rv-3"))[:-1].encode() + b', "review_seconds": NaN}',
        json.dumps(_review("rv-4"))[:-1].encode() + f', "choice": "{secret}"}}'.encode(),
        json.dumps(_review("rv-5")).encode(),
    ]
    path = tmp_path / "reviews.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n")
    settings = IntakeSettings(known_rubrics=frozenset({"rubric-v1"}), pseudonym_key=b"k" * 32,
                              deny_terms=(), redaction_version="v1")
    table, bad = parse_review_chunk(list(read_lines(path)), source="reviews.jsonl",
                                    settings=settings)
    assert table.column("review_id").to_pylist() == ["rv-1", "rv-5"]
    assert [(q["line_number"], q["reason"].split(" (")[0]) for q in bad] == [
        (2, "line is not valid UTF-8"), (3, "not valid JSON"),
        (4, "field choice appears more than once in one object")]
    assert not any(secret in q["reason"] for q in bad)


def _settings():
    from feedback_pipeline.core.review_intake import IntakeSettings

    return IntakeSettings(known_rubrics=frozenset({"code-review-rubric-v4"}),
                          pseudonym_key=b"k" * 32, deny_terms=(), redaction_version="v1")


def test_a_lone_surrogate_in_a_label_studio_export_quarantines_that_review_only():
    """A \\ud800 escape in an export's text reached the Arrow table and failed the review stage
    (UnicodeEncodeError); that review is quarantined naming the field, the others flow on."""
    import pandas as pd

    from feedback_pipeline.core.review_intake import parse_review_export
    from feedback_pipeline_tests.core.test_labelstudio import (
        GOOD,
        build_tasks,
        route,
        to_import_tasks,
        trace,
    )

    traces = pd.DataFrame([trace("t1")])
    data = to_import_tasks(build_tasks(traces, route(traces), "code-review-rubric-v4",
                                       "policy"))[0]["data"]
    item = {**data, "a_marks": {"choices": GOOD}, "b_marks": "clear", "choice": "A",
            "created_at": "2026-05-02T10:00:00Z"}
    export = [{"id": 1, **item, "annotator": "rev-1@example.com", "annotation_id": 5},
              {"id": 2, **item, "annotator": "rev-2\ud800@example.com", "annotation_id": 6},
              {"id": 3, **item, "annotator": "rev-3@example.com", "annotation_id": 7}]
    table, bad = parse_review_export(export, "export.json", _settings())
    assert table.column("review_id").to_pylist() == ["ls-1-5", "ls-3-7"]
    assert [(q["line_number"], q["record_id"], q["reason"]) for q in bad] == [
        (2, "ls-2-6", "reviewer_id holds a lone surrogate escape (not valid Unicode)")]


@pytest.mark.parametrize(("content", "line", "reason"), [
    (b'[{"data": {"reason": "\xff"}}]', 0, "file is not valid UTF-8 (byte 23 of the file)"),
    (b"[" * 200_000 + b"]" * 200_000, 0, "not valid JSON (nested deeper than the parser "
     "allows)"),
    (b"[" + b"7" * 5000 + b"]", 0, "not valid JSON (a number has more digits than the parser "
     "allows)"),
    (b'[{"score": NaN}]', 0, "not valid JSON (NaN and Infinity are not JSON numbers)"),
    (b'[\n{"choice": "A", "choice": "B"}]', 0,
     "field choice appears more than once in one object (a JSON name must be unique)"),
    (b'[\n{"choice": "A",\n}]', 3, "not valid JSON (Expecting property name enclosed in double "
     "quotes at column 1)"),
])
def test_a_label_studio_export_the_parser_refuses_is_one_row_never_a_failed_stage(
        tmp_path, content, line, reason):
    """The stage read exports with a bare json.loads: bytes that are not UTF-8, 200,000-deep
    nesting or a 5,000-digit integer raised out of it and failed the day. read_review_export
    turns each into one file-level quarantine row (and ignores a byte order mark)."""
    from feedback_pipeline.core.review_intake import read_review_export

    path = tmp_path / "export.json"
    path.write_bytes(content)
    assert read_review_export(path, "export.json") == (None, [
        {"source_file": "export.json", "line_number": line, "record_id": None,
         "reason": reason, "raw_line": ""}])
    path.write_bytes(b"\xef\xbb\xbf" + b'[{"id": 1}]')
    assert read_review_export(path, "export.json") == ([{"id": 1}], [])


def test_an_export_annotation_of_the_wrong_shape_costs_only_itself():
    """A raw annotation whose result is a string, a null annotation, or annotations that are
    not a list raised out of the export parser and failed the stage; each is one row with
    the item's position and the error class, and the item's other annotations and the other
    items flow on."""
    import pandas as pd

    from feedback_pipeline.core.labelstudio import to_import_tasks
    from feedback_pipeline.core.review_intake import (
        EXPORT_ITEM_SHAPE,
        IntakeSettings,
        parse_review_export,
    )
    from feedback_pipeline.core.routing import route
    from feedback_pipeline.core.tasks import build_tasks
    from feedback_pipeline_tests.core.test_labelstudio import GOOD, raw_annotation
    from feedback_pipeline_tests.core.test_review import trace

    traces = pd.DataFrame([trace("t1"), trace("t2")])
    data = {t["data"]["trace_id"]: t["data"] for t in to_import_tasks(
        build_tasks(traces, route(traces), "code-review-rubric-v4", "policy"))}
    broken = {**raw_annotation(13, 8, GOOD, ["clear"], "A"), "result": "not a list"}
    export = [
        {"id": 1, "data": data["t1"], "annotations": [
            raw_annotation(11, 7, GOOD, ["clear"], "A"), broken, None]},
        {"id": 2, "data": data["t2"], "annotations": "not a list"},
        {"id": 3, "data": data["t2"], "annotations": [raw_annotation(31, 7, GOOD, [], "A")]},
    ]
    settings = IntakeSettings(frozenset({"code-review-rubric-v4"}), b"k" * 32, (), "r1")
    table, bad = parse_review_export(export, "landing/reviews/x/export.json", settings)
    assert table.column("review_id").to_pylist() == ["ls-1-11", "ls-3-31"]
    assert table.column("source_line").to_pylist() == [1, 3]
    assert [(q["line_number"], q["reason"], q["raw_line"]) for q in bad] == [
        (1, EXPORT_ITEM_SHAPE.format("AttributeError"), ""),
        (1, EXPORT_ITEM_SHAPE.format("AttributeError"), ""),
        (2, EXPORT_ITEM_SHAPE.format("AttributeError"), "")]
