import json

import pytest

from feedback_pipeline.resources import PipelineResource
from feedback_pipeline.stages import ingest


def trace_line(tid: str) -> str:
    return json.dumps({"trace_id": tid, "created_at": "2026-05-02T10:00:00Z",
                       "prompt": f"review {tid}", "candidates": [
                           {"candidate_id": f"{tid}-a", "model_id": "m", "text": "looks fine"}]})


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ids_repeated_across_chunks_and_files_are_quarantined_once(tmp_path, monkeypatch,
                                                                    workers):
    monkeypatch.setenv("FEEDBACK_STAGE_WORKERS", workers)
    monkeypatch.setattr(ingest, "BATCH_ROWS", 3)
    day = tmp_path / "landing" / "traces" / "2026-05-02"
    day.mkdir(parents=True)
    (day / "a.jsonl").write_text("\n".join(
        [trace_line("t1"), trace_line("t2"), "{not json", trace_line("t3"), trace_line("t1"),
         trace_line("t4"), trace_line("t5")]) + "\n")
    (day / "b.jsonl").write_text(trace_line("t4") + "\n" + trace_line("t6") + "\n")
    quarantine: list[dict] = []
    tables = list(ingest.ingest_batches(PipelineResource(data_root=str(tmp_path)),
                                        "2026-05-02", quarantine))
    ids = [tid for table in tables for tid in table.column("trace_id").to_pylist()]
    assert ids == ["t1", "t2", "t3", "t4", "t5", "t6"]
    repeated = sorted((q["source_file"], q["line_number"]) for q in quarantine
                      if "already seen" in q["reason"])
    assert repeated == [("landing/traces/2026-05-02/a.jsonl", 5),
                        ("landing/traces/2026-05-02/b.jsonl", 1)]
    assert {q["raw_line"] for q in quarantine if "already seen" in q["reason"]} == {
        trace_line("t1"), trace_line("t4")}
    assert sum("not valid JSON" in q["reason"] for q in quarantine) == 1
