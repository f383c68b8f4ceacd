"""Round trip through Label Studio's documented formats.

Export shapes from Label Studio's docs (labelstud.io/guide/export, "Label Studio JSON format of
annotated tasks" and "JSON_MIN"): raw JSON is a list of tasks with `data` and `annotations`
(each with `result` items of from_name/to_name/type/value and `completed_by`); JSON-MIN is a
flat list, one object per annotation, with the data fields, each control's value and
`annotator`.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pandas as pd

from feedback_pipeline.core.labelstudio import (
    LABEL_CONFIGS,
    TASK_DATA_FIELDS,
    labeling_config,
    make_pseudonymiser,
    parse_label_studio_export,
    to_import_tasks,
)
from feedback_pipeline.core.review import resolve_reviews
from feedback_pipeline.core.routing import route
from feedback_pipeline.core.tasks import build_tasks
from feedback_pipeline_tests.core.test_review import trace
from feedback_pipeline_tests.core.test_rubric import RUBRIC

KNOWN = {"code-review-rubric-v4"}


def raw_annotation(aid, who, a_marks, b_marks, choice, reason=None):
    result = [
        {"from_name": "a_marks", "to_name": "candidate_a", "type": "choices",
         "value": {"choices": a_marks}},
        {"from_name": "b_marks", "to_name": "candidate_b", "type": "choices",
         "value": {"choices": b_marks}},
        {"from_name": "choice", "to_name": "prompt", "type": "choices",
         "value": {"choices": [choice]}},
    ]
    if reason:
        result.append({"from_name": "reason", "to_name": "prompt", "type": "textarea",
                       "value": {"text": [reason]}})
    return {"id": aid, "result": result, "was_cancelled": False, "ground_truth": False,
            "created_at": "2026-05-02T10:00:00.000000Z", "updated_at": "2026-05-02T10:05:00Z",
            "lead_time": 12.5, "task": 1, "completed_by": who}


GOOD = ["technically_correct", "actionable", "clear"]


def test_labeling_configs_are_valid_xml_with_the_rubric_controls():
    for task in LABEL_CONFIGS:
        root = ET.fromstring(labeling_config(task))
        assert root.tag == "View"
    names = {el.get("name") for el in ET.fromstring(labeling_config("pairwise")).iter()}
    assert {"a_marks", "b_marks", "choice", "reason"} <= names


def test_tasks_out_export_in_gives_pairs_conflicts_and_both_bad():
    traces = pd.DataFrame([trace("t1"), trace("t2"), trace("t3"), trace("attack-014",
                                                                       reserved=True)])
    queues = route(traces, {"attack-014"})
    tasks = build_tasks(traces, queues, "code-review-rubric-v4", "policy text")
    assert "attack-014" not in set(tasks["trace_id"])
    imported = to_import_tasks(tasks)
    assert all(set(t) == {"data"} for t in imported)
    by_trace = {t["data"]["trace_id"]: t for t in imported}

    export = []
    for number, (tid, task_annotations) in enumerate([
        ("t1", [raw_annotation(11, 7, GOOD, ["clear"], "A"),
                raw_annotation(12, {"id": 9, "email": "reviewer9@example.com"}, GOOD,
                               ["actionable"], "A")]),
        ("t2", [raw_annotation(21, 7, ["unauthorized_command", *GOOD], GOOD, "A")]),
        ("t3", [raw_annotation(31, 7, ["exposes_private_note"], ["unauthorized_command"],
                               "BOTH_BAD", reason="both leak notes")]),
    ], start=1):
        export.append({"id": number, "data": by_trace[tid]["data"], "annotations": task_annotations,
                       "predictions": [], "project": 3})

    parsed = parse_label_studio_export(export, "landing/reviews/x/export.json", KNOWN)
    assert parsed.quarantine == []
    pseudonym = make_pseudonymiser(b"k" * 32)
    reviews = pd.DataFrame(parsed.rows)
    reviews["reviewer_id"] = reviews["reviewer_id"].map(pseudonym)
    assert not reviews["reviewer_id"].str.contains("@").any()
    assert reviews["reviewer_id"].nunique() == 2

    out = resolve_reviews(reviews, traces, queues, RUBRIC)
    assert out.preference_pairs["trace_id"].tolist() == ["t1"]
    assert out.preference_pairs["chosen"].tolist() == ["answer a"]
    status = dict(zip(out.labels["review_id"], out.labels["status"], strict=True))
    assert status["ls-2-21"] == "RUBRIC_CONFLICT"
    assert out.incidents["reason"].tolist() == ["BOTH_BAD: both leak notes"]


def test_json_min_export_and_missing_annotator_is_quarantined():
    traces = pd.DataFrame([trace("t1")])
    tasks = build_tasks(traces, route(traces), "code-review-rubric-v4", "policy")
    data = to_import_tasks(tasks)[0]["data"]
    export = [
        {"id": 1, **data, "a_marks": {"choices": GOOD}, "b_marks": "clear", "choice": "A",
         "annotator": "reviewer7@example.com", "annotation_id": 5,
         "created_at": "2026-05-02T10:00:00Z"},
        {"id": 2, **data, "a_marks": {"choices": GOOD}, "choice": "A", "annotation_id": 6},
    ]
    parsed = parse_label_studio_export(export, "export-min.json", KNOWN)
    assert [r["review_id"] for r in parsed.rows] == ["ls-1-5"]
    assert parsed.rows[0]["choice"] == "A"
    assert [q["reason"] for q in parsed.quarantine] == [
        "annotation has no annotator (completed_by)"]


def test_a_json_min_rating_is_read_and_a_bad_one_quarantines_only_its_line():
    traces = pd.DataFrame([trace("t1", n=1)])
    tasks = build_tasks(traces, route(traces), "code-review-rubric-v4", "policy")
    data = to_import_tasks(tasks)[0]["data"]
    assert data["task"] == "pointwise"
    export = [
        {"id": 1, **data, "score": [{"rating": 1}], "annotator": "a@example.com",
         "annotation_id": 7},
        {"id": 2, **data, "score": [{"rating": "lots"}], "annotator": "b@example.com",
         "annotation_id": 8},
        {"id": 3, **data, "score": {"rating": 4}, "label": ["ok"], "annotator": 12,
         "annotation_id": 9, "lead_time": 42.5},
    ]
    parsed = parse_label_studio_export(export, "export-min.json", KNOWN)
    assert [(r["review_id"], r["score"]) for r in parsed.rows] == [("ls-1-7", 1), ("ls-3-9", 4)]
    assert parsed.rows[1]["review_seconds"] == 42.5
    assert [(q["record_id"], q["reason"]) for q in parsed.quarantine] == [
        ("ls-2-8", "score must be a number from 1 to 5")]
    assert "lots" not in json.dumps(parsed.quarantine)


def test_a_trace_without_an_answer_is_asked_for_one_not_sent_out_empty():
    traces = pd.DataFrame([trace("t1", n=0), trace("t2", n=1)])
    tasks = build_tasks(traces, route(traces), "code-review-rubric-v4", "policy")
    kinds = dict(zip(tasks["trace_id"], tasks["task"], strict=True))
    assert kinds == {"t1": "demonstration", "t2": "pointwise"}
    assert dict(zip(tasks["trace_id"], tasks["task_id"], strict=True))["t1"] == \
        "t1:demonstration"


def test_every_task_type_has_a_labeling_config_whose_fields_the_task_data_holds():
    import re

    assert set(LABEL_CONFIGS) == {"pairwise", "pointwise", "demonstration", "incident",
                                  "adjudication"}
    for task in LABEL_CONFIGS:
        fields = set(re.findall(r"\$(\w+)", labeling_config(task)))
        assert fields <= set(TASK_DATA_FIELDS), (task, fields - set(TASK_DATA_FIELDS))


def test_incident_and_adjudication_annotations_read_as_resolutions_and_decisions():
    traces = pd.DataFrame([trace("t1")])
    data = to_import_tasks(build_tasks(traces, route(traces), "code-review-rubric-v4",
                                       "policy"))[0]["data"]
    incident = {**data, "task": "incident", "task_id": "t1:incident"}
    adjudication = {**data, "task": "adjudication", "adjudicates": "pairwise",
                    "task_id": "t1:adjudication"}
    export = [
        {"id": 1, "data": incident, "annotations": [{
            "id": 3, "completed_by": 4, "updated_at": "2026-05-04T10:00:00Z", "result": [
                {"from_name": "resolution", "to_name": "prompt", "type": "choices",
                 "value": {"choices": ["new_fixture"]}},
                {"from_name": "reason", "to_name": "prompt", "type": "textarea",
                 "value": {"text": ["add it to the frozen set"]}}]}]},
        {"id": 2, "data": adjudication,
         "annotations": [raw_annotation(5, 8, GOOD, ["clear"], "A", reason="A cites the test")]},
    ]
    parsed = parse_label_studio_export(export, "followups.json", KNOWN)
    assert parsed.quarantine == []
    first, second = parsed.rows
    assert (first["task"], first["resolution"], first["reason"]) == (
        "incident", "new_fixture", "add it to the frozen set")
    assert (second["task"], second["adjudication"], second["choice"]) == ("pairwise", True, "A")


def _import_tasks_for_prediction():
    return [{"data": {"task_id": "t-1", "trace_id": "day-001", "task": "pairwise"}},
            {"data": {"task_id": "t-2", "trace_id": "day-002", "task": "pairwise"}},
            {"data": {"task_id": "t-3", "trace_id": "day-001", "task": "pointwise"}}]


PRELABELS = pd.DataFrame({"trace_id": ["day-001"], "judge_id": ["judge-llm-v1"],
                          "choice": ["B"]})


def test_export_includes_judge_predictions_only_when_calibration_passed():
    from feedback_pipeline.core.labelstudio import with_predictions

    tasks = _import_tasks_for_prediction()
    unchanged, added = with_predictions(tasks, PRELABELS, calibration_passed=False)
    assert added == 0 and all("predictions" not in t for t in unchanged)

    labelled, added = with_predictions(tasks, PRELABELS, calibration_passed=True)
    assert added == 1
    assert labelled[0]["predictions"] == [{
        "model_version": "judge-llm-v1", "score": None,
        "result": [{"from_name": "choice", "to_name": "prompt", "type": "choices",
                    "value": {"choices": ["B"]}}]}]
    assert "predictions" not in labelled[1]  # no judge label for this trace
    assert "predictions" not in labelled[2]  # only pairwise tasks carry the judge's choice
    again, _ = with_predictions(labelled, PRELABELS, calibration_passed=True)
    assert again == labelled  # writing twice does not stack predictions
    json.dumps(labelled)  # the import file stays plain JSON


def test_judge_prediction_names_the_pairwise_choice_control():
    from feedback_pipeline.core.labelstudio import judge_prediction

    root = ET.fromstring(labeling_config("pairwise"))
    result = judge_prediction("TIE", "judge-llm-v1")["result"][0]
    control = next(c for c in root.iter("Choices") if c.get("name") == result["from_name"])
    assert control.get("toName") == result["to_name"]
    assert control.get("choice") == "single"
    values = {c.get("value") for c in control.iter("Choice")}
    assert set(result["value"]["choices"]) <= values
    assert {"A", "B", "TIE"} <= values


def test_the_projects_show_the_newest_exports_policy_escaped(tmp_path):
    from feedback_pipeline.core.labelstudio import (
        instruction_html,
        latest_rubric_text,
        project_instruction,
    )
    from feedback_pipeline.core.tasks import shared_text_json

    assert project_instruction(tmp_path) is None  # before the first export: left alone
    for kind, day, text in (("review_tasks", "2026-05-02", "older"),
                            ("follow_up_tasks", "2026-05-03", "newest <b>&</b>\n\nsecond"),
                            ("review_tasks", "2026-05-01", "oldest")):
        (tmp_path / kind / day).mkdir(parents=True)
        (tmp_path / kind / day / "rubric.json").write_text(shared_text_json("r9", text))
    assert latest_rubric_text(tmp_path)["policy_text"].startswith("newest")
    html = project_instruction(tmp_path)
    assert html == instruction_html(latest_rubric_text(tmp_path))
    assert html == "<h3>Rubric r9</h3><p>newest &lt;b&gt;&amp;&lt;/b&gt;</p><p>second</p>"


def test_no_labeling_config_asks_a_task_for_the_shared_policy():
    from feedback_pipeline.core.tasks import SHARED_TASK_FIELDS

    for task in LABEL_CONFIGS:
        fields = set(re.findall(r"\$(\w+)", labeling_config(task)))
        assert fields <= set(TASK_DATA_FIELDS), task
        assert not fields & set(SHARED_TASK_FIELDS), task
