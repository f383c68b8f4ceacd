"""Logs in the formats teams already keep, declared in config/sources.yaml, through
`feedback-pipeline run`: each becomes validated, redacted traces beside the native ones."""

import json
import shutil
from datetime import UTC, datetime

import dagster as dg
import pyarrow.parquet as pq
import pytest
import yaml

from feedback_pipeline.cli import main, run_pipeline
from feedback_pipeline_tests.core.test_sources import (
    ANSWER_A,
    ANSWER_B,
    LAST_USER,
    OPENAI_MESSAGES,
    REQUEST,
    SECRET,
    TOOL_ANSWER,
    completion,
    export,
    genai_attributes,
    oi_attributes,
    span,
)


def _table(root, zone, asset, day):
    return pq.read_table(root / zone / asset / f"date={day}").to_pylist()


@pytest.mark.slow
def test_every_source_format_declared_per_file_runs_through_the_pipeline_to_a_release(
        generated_root, tmp_path, monkeypatch):
    root = tmp_path / "data"
    shutil.copytree(generated_root, root)
    day = sorted(p.name for p in (root / "landing" / "traces").iterdir())[0]
    noon = int(datetime.fromisoformat(f"{day}T12:00:00+00:00").astimezone(UTC).timestamp())
    (root / "config" / "sources.yaml").write_text(yaml.safe_dump({"sources": {
        "openai-*": {"format": "openai_chat", "defaults": {"slice": "weather"}},
        "otel-*": "otlp_genai", "phoenix-*": "openinference",
        "mapped-*": {"format": "jsonl_mapping",
                     "fields": {"trace_id": "meta.id", "created_at": "ts",
                                "prompt": "input.question", "context": "input.docs[0]",
                                "candidates": "outputs", "messages": "conversation"}}}}))
    landing = root / "landing" / "traces" / day
    request = json.loads(json.dumps(REQUEST))
    request["messages"][1]["content"] = f"My key is {SECRET}, what's the weather in Paris?"
    (landing / "openai-calls.jsonl").write_text("\n".join([
        json.dumps({"request": request, "response": completion(
            "chatcmpl-AAA", noon, [(ANSWER_A, "stop"), (ANSWER_B, "stop")])}),
        json.dumps({"request": request, "response": completion(
            "chatcmpl-BBB", noon + 5, [(TOOL_ANSWER, "tool_calls")])}),
        json.dumps({"request": {"messages": f"{SECRET} is not a list"},
                    "response": completion("chatcmpl-CCC", noon, [(ANSWER_A, "stop")])}),
    ]) + "\n")
    (landing / "otel-spans.jsonl").write_text(export(span(
        "bbbbbbbbbbbbbbbb", genai_attributes(), start=str(noon * 10**9))) + "\n")
    (landing / "phoenix-spans.jsonl").write_text(export(span(
        "cccccccccccccccc", oi_attributes(), start=str((noon + 60) * 10**9))) + "\n")
    (landing / "mapped-export.jsonl").write_text(json.dumps({
        "meta": {"id": "jsonl:weather-1"}, "ts": noon + 120,
        "input": {"question": LAST_USER, "docs": ["forecast: rain 80%"]},
        "outputs": ["Yes, rain is likely.", "No idea."], "conversation": OPENAI_MESSAGES}) + "\n")

    outcome = run_pipeline(root, instance=dg.DagsterInstance.ephemeral())
    assert outcome.dataset_version is not None or outcome.reasons

    raw = {r["trace_id"]: r for r in _table(root, "restricted", "raw_traces", day)}
    [openai_id] = [t for t in raw if t.startswith("openai:")]
    assert [c["candidate_id"] for c in raw[openai_id]["candidates"]] == [
        "chatcmpl-AAA.0", "chatcmpl-AAA.1", "chatcmpl-BBB.0"]
    assert raw[openai_id]["slice"] == "weather"
    assert any(t.startswith("otel:") for t in raw)

    redacted = {r["trace_id"]: r for r in _table(root, "warehouse", "redacted_traces", day)}
    kept = json.loads(redacted[openai_id]["extra_json"])
    assert [m["role"] for m in kept["messages"]] == ["system", "user", "assistant", "tool",
                                                      "user"]
    assert SECRET not in json.dumps(redacted[openai_id], default=str)

    quarantined = _table(root, "restricted", "trace_quarantine", day)
    mapped = [q for q in quarantined if q["source_file"].endswith("openai-calls.jsonl")]
    assert [q["line_number"] for q in mapped] == [3]
    assert SECRET not in mapped[0]["reason"] and mapped[0]["reason"].startswith("request.")

    # every sourced trace (OpenAI call, GenAI span, OpenInference span, mapped JSONL record)
    # gets two pairwise reviews preferring its first candidate: the next run releases the pairs,
    # each prompt the whole logged conversation (system instructions, earlier turns, the tool
    # result, the final user turn), redacted
    raw = {r["trace_id"]: r for r in _table(root, "restricted", "raw_traces", day)}
    sourced = {t: [c["candidate_id"] for c in r["candidates"][:2]] for t, r in raw.items()
               if t.startswith(("openai:", "otel:", "jsonl:"))}
    assert len(sourced) == 4 and all(len(c) == 2 for c in sourced.values())
    marks = {"unauthorized_command": False, "exposes_private_note": False,
             "technically_correct": True, "actionable": True, "clear": True}
    worse = {**marks, "technically_correct": False}
    reviews = root / "landing" / "reviews" / day / "sourced-reviews.jsonl"
    reviews.write_text("\n".join(json.dumps({
        "review_id": f"rv-sourced-{k}-{n}", "trace_id": trace_id, "reviewer_id": reviewer,
        "rubric_version": "code-review-rubric-v4", "reviewed_at": f"{day}T18:00:0{n}Z",
        "task": "pairwise", "choice": "A", "criteria": {a: marks, b: worse}})
        for k, (trace_id, (a, b)) in enumerate(sorted(sourced.items()))
        for n, reviewer in enumerate(["rev-01", "rev-02"])) + "\n")
    # the command a user runs (without DAGSTER_HOME it runs on a throwaway instance)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["run", "--data-root", str(root)]) == 0
    release = root / "releases" / sorted(
        (p.name for p in (root / "releases").iterdir()), key=lambda v: int(v.rsplit("v", 1)[1]))[-1]
    redacted = {r["trace_id"]: r for r in _table(root, "warehouse", "redacted_traces", day)}
    pairs = {r["trace_id"]: r for r in pq.read_table(release / "preference_pairs.parquet"
                                                     ).to_pylist() if r["trace_id"] in sourced}
    assert set(pairs) == set(sourced)
    for trace_id, pair in pairs.items():
        roles = [m["role"] for m in pair["prompt"]]
        assert roles[0] == "system" and "tool" in roles and roles[-1] == "user", trace_id
        assert pair["prompt"][-1]["content"] == redacted[trace_id]["prompt"]
        assert SECRET not in json.dumps(pair, default=str)
    assert pairs[openai_id]["chosen"] == [{"role": "assistant",
                                           "content": ANSWER_A["content"]}]
    text_pairs = {r["trace_id"]: r for r in pq.read_table(
        release / "preference_pairs_text.parquet").to_pylist() if r["trace_id"] in sourced}
    assert text_pairs[openai_id]["prompt"].startswith("System:\n")
    assert text_pairs[openai_id]["chosen"] == ANSWER_A["content"]


def test_a_source_line_with_nan_a_repeated_field_or_bad_bytes_is_quarantined_alone(tmp_path):
    """Source lines are parsed as native lines are: NaN / Infinity (the mapped trace was
    written with them), a field named twice (the last value was kept in silence), bytes that
    are not UTF-8 (kept as U+FFFD) and a byte order mark (it cost the first line) each cost
    only their line, with the rule and never the value."""
    from feedback_pipeline.resources import PipelineResource
    from feedback_pipeline.stages import ingest

    day = "2026-05-02"
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "sources.yaml").write_text(yaml.safe_dump(
        {"sources": {"openai-*": "openai_chat"}}))
    landing = tmp_path / "landing" / "traces" / day
    landing.mkdir(parents=True)
    noon = int(datetime.fromisoformat(f"{day}T12:00:00+00:00").timestamp())

    def call(response_id, **extra):
        request = json.loads(json.dumps(REQUEST))
        request["messages"][1]["content"] = f"My key is {SECRET}"
        return json.dumps({"request": {**request, "model": f"gpt-{response_id}"},
                           "response": completion(response_id, noon, [(ANSWER_A, "stop")]),
                           **extra})

    lines = [
        call("ok-1"),
        call("nan")[:-1] + ', "temperature": NaN}',
        call("dup")[:-1] + f', "response": {{"id": "{SECRET}"}}}}',
        call("bytes").replace("My key", "My \udcffkey", 1),
        call("ok-2"),
    ]
    raw = b"\xef\xbb\xbf" + b"\n".join(
        line.encode("utf-8", "surrogateescape") for line in lines) + b"\n"
    (landing / "openai-calls.jsonl").write_bytes(raw)
    quarantine: list[dict] = []
    tables = list(ingest.ingest_batches(PipelineResource(data_root=str(tmp_path)), day,
                                        quarantine))
    kept = [c["candidate_id"] for t in tables for r in t.column("candidates").to_pylist()
            for c in r]
    assert kept == ["ok-1.0", "ok-2.0"]
    assert [(q["line_number"], q["reason"].split(" (")[0]) for q in quarantine] == [
        (2, "not valid JSON"), (3, "a field appears more than once in one object"),
        (4, "line is not valid UTF-8")]
    assert not any(SECRET in q["reason"] for q in quarantine)
