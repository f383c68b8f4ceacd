import gzip
import json
import tracemalloc

import pytest

from feedback_pipeline.core.contract import (
    DEFAULT_MAX_LINE_BYTES,
    IDENTIFIER_PATTERN,
    ContractError,
    LineFault,
    check_identifier,
    parse_trace_lines,
    read_lines,
    traces_to_table,
    validate_trace,
)
from feedback_pipeline.settings import ConfigError, Policy

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
        (5, "trace_id already seen in this partition")]
    assert all(q["source_file"] == "landing/traces/x.jsonl" for q in parsed.quarantine)
    assert traces_to_table(parsed.rows).num_rows == 2


# ---- issue 17: one bad line never stops a day; reasons name the field and rule, not the value

DAY = "2026-05-02"
OK = {"trace_id": "ok-1", "created_at": "2026-05-02T10:00:00Z", "prompt": "why?"}


def ok_line(tid: str) -> str:
    return json.dumps({**OK, "trace_id": tid})


def parse(lines: list[str]):
    return parse_trace_lines(list(enumerate(lines, start=1)), "landing/traces/x.jsonl", DAY)


def only_reason(parsed, line_number: int) -> str:
    reasons = [q["reason"] for q in parsed.quarantine if q["line_number"] == line_number]
    assert len(reasons) == 1, parsed.quarantine
    return reasons[0]


def test_an_integer_beyond_the_int_string_limit_quarantines_only_its_line():
    planted = "7" * 5000
    parsed = parse([ok_line("a"), '{"trace_id": "b", "n": ' + planted + "}", ok_line("c")])
    assert [r["trace_id"] for r in parsed.rows] == ["a", "c"]
    reason = only_reason(parsed, 2)
    assert reason.startswith("not valid JSON") and "digits" in reason
    assert "7777" not in reason


def test_json_nested_200000_deep_quarantines_only_its_line():
    deep = '{"trace_id": "b", "x": ' + "[" * 200_000 + "]" * 200_000 + "}"
    parsed = parse([ok_line("a"), deep, ok_line("c")])
    assert [r["trace_id"] for r in parsed.rows] == ["a", "c"]
    assert "nested deeper" in only_reason(parsed, 2)


@pytest.mark.parametrize("planted", ["0000-05-02T10:00:00Z", "99999-05-02T10:00:00Z",
                                     "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00"])
def test_created_at_out_of_range_is_quarantined_without_the_value(planted):
    parsed = parse([ok_line("a"), json.dumps({**OK, "trace_id": "b", "created_at": planted})])
    assert [r["trace_id"] for r in parsed.rows] == ["a"]
    assert only_reason(parsed, 2) in (
        "created_at is not an ISO-8601 timestamp with a year from 1 to 9999",
        "created_at is out of range once converted to UTC")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"prompt": "hi \ud800 there"}, "prompt"),
        ({"context": "\udfff"}, "context"),
        ({"candidates": [{"candidate_id": "a", "text": "ok"},
                         {"candidate_id": "b", "text": "x\ud83d"}]}, "candidates[1].text"),
        ({"client": {"tags": ["fine", "\udc00"]}}, "client.tags[1]"),
    ],
)
def test_a_lone_surrogate_escape_quarantines_the_line_naming_the_field(change, field):
    bad = json.dumps({**OK, "trace_id": "b", **change})  # ensure_ascii: "\ud800" escapes
    assert "\\ud" in bad or "\\udfff" in bad
    emoji = json.dumps({**OK, "trace_id": "c", "prompt": "ok \U0001F600"})  # a valid pair
    parsed = parse([ok_line("a"), bad, emoji])
    assert [r["trace_id"] for r in parsed.rows] == ["a", "c"]
    reason = only_reason(parsed, 2)
    assert reason == f"{field} holds a lone surrogate escape (not valid Unicode)"
    assert traces_to_table(parsed.rows).num_rows == 2  # the kept rows still convert


def test_a_50_mb_line_is_quarantined_unread_with_bounded_memory(tmp_path):
    path = tmp_path / "big.jsonl"
    big = json.dumps({**OK, "trace_id": "big", "prompt": "p" * (50 * 1024 * 1024)})
    path.write_text("\n".join([ok_line("a"), big, ok_line("c")]) + "\n")
    del big
    tracemalloc.start()
    try:
        parsed = parse_trace_lines(read_lines(path), "landing/traces/big.jsonl", DAY)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * DEFAULT_MAX_LINE_BYTES
    assert [r["trace_id"] for r in parsed.rows] == ["a", "c"]
    assert [(q["line_number"], q["raw_line"]) for q in parsed.quarantine] == [(2, "")]
    assert "longer than max_line_bytes" in parsed.quarantine[0]["reason"]


def test_a_line_of_exactly_the_limit_is_read_and_one_byte_more_is_not(tmp_path):
    line = json.dumps({**OK, "trace_id": "edge"})
    path = tmp_path / "edge.jsonl"
    path.write_text(f"{line}\n{line[:-1]} }}\n{line}")
    got = list(read_lines(path, max_line_bytes=len(line)))
    assert got[0] == (1, line) and got[2] == (3, line)
    assert isinstance(got[1][1], LineFault) and got[1][0] == 2


def test_a_truncated_gzip_keeps_the_lines_before_the_break(tmp_path):
    lines = [ok_line(f"t{i}") for i in range(2000)]
    whole = gzip.compress(("\n".join(lines) + "\n").encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    parsed = parse_trace_lines(read_lines(path), "landing/traces/cut.jsonl.gz", DAY)
    kept = [r["trace_id"] for r in parsed.rows]
    assert 0 < len(kept) < len(lines) and kept == [f"t{i}" for i in range(len(kept))]
    assert len(parsed.quarantine) == 1
    row = parsed.quarantine[0]
    assert row["line_number"] == 0 and row["raw_line"] == ""
    assert row["reason"] == (f"gzip stream ends early (truncated) after line {len(kept)}: lines "
                             f"up to {len(kept)} were kept, the rest of the file is quarantined")


def test_a_plain_file_named_gz_is_quarantined_as_a_file(tmp_path):
    path = tmp_path / "plain.jsonl.gz"
    path.write_text(ok_line("a") + "\n")
    parsed = parse_trace_lines(read_lines(path), "landing/traces/plain.jsonl.gz", DAY)
    assert parsed.rows == []
    assert [(q["line_number"], q["reason"].split(":")[0]) for q in parsed.quarantine] == [
        (0, "not a gzip file")]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"trace_id": "has space"}, "trace_id"),
        ({"trace_id": "x" * 129}, "trace_id"),
        ({"candidates": [{"candidate_id": "a;rm -rf", "text": "t"}]}, "candidates[0].candidate_id"),
        ({"candidates": [{"candidate_id": "a", "model_id": "m\u00e9", "text": "t"}]},
         "candidates[0].model_id"),
        ({"slice": "prompt injection"}, "slice"),
        ({"slice": ""}, "slice"),
        ({"prompt_template_version": "v1\n"}, "prompt_template_version"),
        ({"policy_version": "p@1"}, "policy_version"),
    ],
)
def test_identifier_fields_outside_the_declared_shape_name_the_field(change, field):
    with pytest.raises(ContractError) as caught:
        validate_trace({**GOOD, **change}, "2026-05-02")
    assert str(caught.value) == f"{field} does not have the identifier shape {IDENTIFIER_PATTERN}"
    planted = json.dumps(change)
    for value in ("has space", "a;rm", "m\u00e9", "prompt injection", "p@1"):
        if value in planted:
            assert value not in str(caught.value)


def test_identifier_shape_accepts_the_usual_ids():
    for value in ("t-1", "attack-014", "ns:trace/2026.05_01", "x" * 128):
        assert check_identifier("trace_id", value) == value
    row = validate_trace({**GOOD, "slice": "prompt-injection", "policy_version": "p-1.2",
                          "prompt_template_version": None}, "2026-05-02")
    assert row["slice"] == "prompt-injection" and row["prompt_template_version"] is None


def test_quarantine_reasons_never_quote_the_value():
    planted = {"trace_id": "secret-id-42", "created_at": "2026-05-09T10:00:00Z",
               "prompt": "p", "candidates": [{"candidate_id": "dup-cand-7", "text": "a"},
                                             {"candidate_id": "dup-cand-7", "text": "b"}]}
    lines = [
        json.dumps({**OK, "trace_id": "secret-id-42", "created_at": "2026-05-09T10:00:00Z"}),
        json.dumps({**OK, "trace_id": "secret-id-42", "created_at": "2026-13-45T10:00:00Z"}),
        json.dumps({**OK, "trace_id": "secret-id-42", "created_at": "2026-05-02T10:00:00"}),
        json.dumps({**OK, **planted, "created_at": OK["created_at"]}),
        ok_line("secret-id-43"), ok_line("secret-id-43"),
    ]
    parsed = parse(lines)
    assert len(parsed.quarantine) == 5 and [r["trace_id"] for r in parsed.rows] == [
        "secret-id-43"]
    for row in parsed.quarantine:
        for value in ("secret-id", "dup-cand", "2026-05-09", "2026-13-45", "10:00"):
            assert value not in row["reason"], row["reason"]


def test_policy_declares_max_line_bytes():
    assert Policy().max_line_bytes == 8 * 1024 * 1024 == DEFAULT_MAX_LINE_BYTES
    assert Policy(max_line_bytes=4096).max_line_bytes == 4096
    for bad in (0, 10, -1, "8MiB", True):
        with pytest.raises(ConfigError, match="max_line_bytes"):
            Policy(max_line_bytes=bad)


def test_a_corrupt_gzip_keeps_the_lines_before_the_damage(tmp_path):
    lines = [json.dumps({**OK, "trace_id": f"t{i}", "prompt": f"p{i * 7919 % 10007}"})
             for i in range(5000)]
    whole = bytearray(gzip.compress(("\n".join(lines) + "\n").encode()))
    middle = len(whole) // 2
    whole[middle:middle + 64] = bytes(64)
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(bytes(whole))
    parsed = parse_trace_lines(read_lines(path), "landing/traces/bad.jsonl.gz", DAY)
    file_rows = [q for q in parsed.quarantine if q["line_number"] == 0]
    assert len(file_rows) == 1 and file_rows[0]["reason"].startswith("gzip stream ")
    kept = [r["trace_id"] for r in parsed.rows]
    assert 0 < len(kept) < len(lines)


CANARY = "canary.leak4417@probe-mail.example"


def _numbered(path):
    return [(n, str(t)) for n, t in read_lines(path)]


@pytest.mark.parametrize("name", ["a.jsonl", "a.jsonl.gz"])
def test_a_byte_order_mark_at_the_start_of_a_file_does_not_cost_its_first_line(tmp_path, name):
    data = ("\ufeff" + json.dumps(GOOD) + "\r\n" + json.dumps({**GOOD, "trace_id": "t-2"})
            + "\r\n").encode()
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    parsed = parse_trace_lines(read_lines(path), name, "2026-05-02")
    assert [r["trace_id"] for r in parsed.rows] == ["t-1", "t-2"]
    assert parsed.quarantine == []


@pytest.mark.parametrize("name", ["a.jsonl", "a.jsonl.gz"])
def test_a_file_with_carriage_returns_only_is_read_line_by_line(tmp_path, name):
    """Classic Mac line endings: read as one line, every record of the file was one
    quarantine row; a bad line among them costs only itself, a CR inside a CRLF file stays
    whitespace, and a CR-only file with a line past the limit skips only that line."""
    records = [json.dumps({**GOOD, "trace_id": f"t-{i}"}) for i in range(1, 4)]
    data = ("\r".join([records[0], "{not json", records[1], "", records[2]]) + "\r").encode()
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    parsed = parse_trace_lines(read_lines(path), name, "2026-05-02")
    assert [r["trace_id"] for r in parsed.rows] == ["t-1", "t-2", "t-3"]
    assert [q["line_number"] for q in parsed.quarantine] == [2]
    crlf = tmp_path / "b.jsonl"  # a CR between tokens of a CRLF line is JSON whitespace
    crlf.write_bytes(("{\r" + records[0][1:] + "\r\n" + records[1] + "\r\n").encode())
    assert [r["trace_id"] for r in parse_trace_lines(read_lines(crlf), "b.jsonl",
                                                     "2026-05-02").rows] == ["t-1", "t-2"]
    long = tmp_path / "c.jsonl"
    long.write_bytes(("\r".join([records[0], "x" * 5000, records[2]])).encode())
    lines = list(read_lines(long, max_line_bytes=1024))
    assert [n for n, _ in lines] == [1, 2, 3] and "longer than" in str(lines[1][1])


def test_a_line_that_is_not_utf8_is_quarantined_not_altered(tmp_path):
    """Bytes that are not UTF-8 used to become U+FFFD in a kept trace; the line is a
    quarantine row naming the byte, its raw_line the text with U+FFFD, the others flow on."""
    bad = json.dumps({**GOOD, "trace_id": "t-bad", "prompt": f"why {CANARY} X"}).encode()
    bad = bad.replace(b" X", b" \xff\xfeX")
    path = tmp_path / "a.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + bad + b"\n"
                     + json.dumps({**GOOD, "trace_id": "t-3"}).encode() + b"\xc3")
    parsed = parse_trace_lines(read_lines(path), "a.jsonl", "2026-05-02")
    assert [r["trace_id"] for r in parsed.rows] == ["t-1"]
    at = bad.index(b"\xff") + 1
    assert [(q["line_number"], q["reason"]) for q in parsed.quarantine] == [
        (2, f"line is not valid UTF-8 (byte {at} of the line)"),
        (3, f"line is not valid UTF-8 (byte {len(json.dumps({**GOOD, 'trace_id': 't-3'})) + 1}"
            " of the line)")]
    assert "\ufffd" in parsed.quarantine[0]["raw_line"] and CANARY in parsed.quarantine[0][
        "raw_line"]
    assert not any(CANARY in q["reason"] for q in parsed.quarantine)


@pytest.mark.parametrize(("line", "reason"), [
    (json.dumps(GOOD)[:-1] + ', "score": NaN}',
     "not valid JSON (NaN and Infinity are not JSON numbers)"),
    (json.dumps(GOOD).replace("0.2", "-Infinity"),
     "not valid JSON (NaN and Infinity are not JSON numbers)"),
    (json.dumps(GOOD).replace("0.2", "1e400"),
     "candidates[0].generation holds a number too large for JSON (read as infinity)"),
    (json.dumps(GOOD)[:-1] + ', "n": -1e999}',
     "a field outside the contract holds a number too large for JSON (read as infinity)"),
    (json.dumps(GOOD)[:-1] + f', "trace_id": "{CANARY}"}}',
     "field trace_id appears more than once in one object (a JSON name must be unique)"),
    (json.dumps(GOOD).replace('"ide": "vscode"', f'"{CANARY}": 1, "{CANARY}": 2'),
     "a field appears more than once in one object (a JSON name must be unique)"),
    ("\ufeff" + json.dumps(GOOD), "not valid JSON (Unexpected UTF-8 BOM at column 1)"),
    (json.dumps(GOOD).replace("why?", "why\x00?"), "not valid JSON (Invalid control "
     f"character at column {json.dumps(GOOD).index('why?') + 4})"),
])
def test_json_that_python_reads_but_json_does_not_define_is_quarantined(line, reason):
    """NaN / Infinity literals (stored, extra_json was not JSON), numbers that overflow to
    infinity, and a field named twice (Python keeps the last value and drops the other in
    silence) quarantine their line with the rule, never the value."""
    parsed = parse_trace_lines([(1, json.dumps({**GOOD, "trace_id": "ok"})), (2, line)],
                               "a.jsonl", "2026-05-02")
    assert [r["trace_id"] for r in parsed.rows] == ["ok"]
    assert [(q["line_number"], q["reason"]) for q in parsed.quarantine] == [(2, reason)]
    assert CANARY not in reason
