import json

from feedback_pipeline.core.contract import read_lines
from feedback_pipeline.core.judge_input import read_judge_labels

SECRET = "canary.leak4417@probe-mail.example"


def label(trace_id: str, **extra) -> dict:
    return {"trace_id": trace_id, "judge_id": "judge-1", "order": "original", "choice": "A",
            **extra}


def test_judge_lines_with_encoding_and_json_faults_cost_only_their_line(tmp_path):
    """Judge labels are read like traces and reviews: a byte order mark no longer costs the
    first label; bytes that are not UTF-8, NaN and a field named twice quarantine only their
    line, by rule and without the value."""
    lines = [
        json.dumps(label("t-1")).encode(),
        json.dumps(label("t-2", note=f"{SECRET} X")).encode().replace(b" X", b" \xfeX"),
        json.dumps(label("t-3"))[:-1].encode() + b', "confidence": Infinity}',
        json.dumps(label("t-4"))[:-1].encode() + f', "choice": "{SECRET}"}}'.encode(),
        json.dumps(label("t-5")).encode(),
    ]
    path = tmp_path / "judge.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(lines) + b"\r\n")
    labels, bad = read_judge_labels([(read_lines(path), "judge.jsonl")], workers=1)
    assert labels["trace_id"].tolist() == ["t-1", "t-5"]
    assert [(q["line_number"], q["reason"].split(" (")[0]) for q in bad] == [
        (2, "line is not valid UTF-8"), (3, "not valid JSON"),
        (4, "field choice appears more than once in one object")]
    assert not any(SECRET in q["reason"] for q in bad)
