import json

import pytest

from feedback_pipeline.core.contract import (
    ContractError,
    parse_trace_lines,
    traces_to_table,
    validate_trace,
)

GOOD = {"trace_id": "t-1", "created_at": "2026-05-01T23:30:00-00:30", "prompt": "why?",
        "candidates": [{"candidate_id": "a", "model_id": "m", "generation": {"temperature": 0.2},
                        "text": "x"}], "client": {"ide": "vscode"}}


def test_valid_trace_keeps_unknown_fields_and_uses_utc_day():
    row = validate_trace(GOOD, "2026-05-02")
    assert row["created_at"].isoformat() == "2026-05-02T00:00:00+00:00"
    assert json.loads(row["extra_json"]) == {"client": {"ide": "vscode"}}
    assert json.loads(row["candidates"][0]["generation"]) == {"temperature": 0.2}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"trace_id": ""}, "trace_id is required"),
        ({"created_at": "2026-05-02T10:00:00"}, "no UTC offset"),
        ({"created_at": "2026-05-03T10:00:00Z"}, "not the landing folder's day"),
        ({"prompt": None}, "prompt is required"),
        ({"candidates": [{"candidate_id": "a", "text": 3}]}, "text must be a string"),
        ({"reserved_for_evaluation": "yes"}, "must be true or false"),
    ],
)
def test_invalid_traces_name_the_broken_rule(change, reason):
    with pytest.raises(ContractError, match=reason):
        validate_trace({**GOOD, **change}, "2026-05-02")


def test_bad_lines_are_quarantined_and_good_lines_flow_on():
    lines = [(1, json.dumps(GOOD)), (2, "{not json"), (3, json.dumps({**GOOD, "prompt": ""})),
             (4, json.dumps({**GOOD, "trace_id": "t-2"})), (5, json.dumps(GOOD))]
    parsed = parse_trace_lines(lines, "landing/traces/x.jsonl", "2026-05-02")
    assert [r["trace_id"] for r in parsed.rows] == ["t-1", "t-2"]
    assert [(q["line_number"], q["reason"].split(" (")[0]) for q in parsed.quarantine] == [
        (2, "not valid JSON"), (3, "prompt is required and must be a non-empty string"),
        (5, "trace_id 't-1' already seen in this partition")]
    assert all(q["source_file"] == "landing/traces/x.jsonl" for q in parsed.quarantine)
    assert traces_to_table(parsed.rows).num_rows == 2
