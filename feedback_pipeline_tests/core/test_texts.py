import pyarrow as pa
import pyarrow.parquet as pq

from feedback_pipeline.core.texts import (
    REDACTED_TRACE_TEXTS,
    RELEASE_TEXTS,
    REVIEW_TASK_TEXTS,
    residue_in_parquet,
    residue_in_table,
    table_texts,
)

CLEAN = "the build on <HOST_1> failed for <EMAIL_2>; rerun after the fix"


def traces(*candidate_texts):
    return pa.table({
        "trace_id": [f"t{i}" for i in range(len(candidate_texts))],
        "prompt": [CLEAN] * len(candidate_texts),
        "context": [None] * len(candidate_texts),
        "candidates": [[{"candidate_id": "a", "text": CLEAN, "generation": None},
                        {"candidate_id": "b", "text": text, "generation": "{}"}]
                       for text in candidate_texts],
    })


def test_every_nested_candidate_text_is_scanned_and_owned_by_its_row():
    table = traces(CLEAN, "mail me at dana.fox+ci@example.com", CLEAN)
    parts = list(table_texts(table, REDACTED_TRACE_TEXTS))
    assert sum(len(owners) for owners, _ in parts) >= 3 * 2 + 3 * 2 * 2
    assert all(len(owners) == len(texts) for owners, texts in parts)
    ids, kinds = residue_in_table(table, REDACTED_TRACE_TEXTS, [])
    assert ids == ["t1"]
    assert kinds == {"EMAIL": 1}


def test_clean_tables_pass_and_deny_terms_are_found_in_any_column():
    tasks = pa.table({"task_id": ["k1", "k2"], "prompt": [CLEAN, CLEAN],
                      "candidate_a": [CLEAN, "ask Mirela Ionescu"], "candidate_b": [None, CLEAN]})
    assert residue_in_table(tasks, REVIEW_TASK_TEXTS, [])[0] == []
    assert residue_in_table(tasks, REVIEW_TASK_TEXTS, ["Mirela Ionescu"])[0] == ["k2"]


def test_sft_messages_are_scanned():
    sft = pa.table({"trace_id": ["d1", "d2"], "messages": [
        [{"role": "user", "content": CLEAN}, {"role": "assistant", "content": CLEAN}],
        [{"role": "user", "content": CLEAN},
         {"role": "assistant", "content": "key AKIAIOSFODNN7EXAMPLF"}]]})
    assert residue_in_table(sft, RELEASE_TEXTS["sft"], [])[0] == ["d2"]


def test_a_parquet_file_is_scanned_in_batches_over_every_string_column(tmp_path):
    rows = 5
    sft = pa.table({
        "trace_id": [f"d{i}" for i in range(rows)],
        "prompt_fingerprint": ["mail dana.fox@example.com" if i == 2 else "fp"
                               for i in range(rows)],  # not free text, still scanned
        "messages": [[{"role": "user", "content": CLEAN},
                      {"role": "assistant",
                       "content": "key AKIAIOSFODNN7EXAMPLF" if i in (1, 4) else CLEAN}]
                     for i in range(rows)]})
    pq.write_table(sft, tmp_path / "sft.parquet")
    found = residue_in_parquet(str(tmp_path / "sft.parquet"), layout=RELEASE_TEXTS["sft"],
                               deny_terms=(), batch_rows=2)
    assert found == ["d1", "d2", "d4"]


def test_the_residue_scan_reads_every_string_column_not_only_the_free_text():
    import pyarrow as pa

    from feedback_pipeline.core.texts import RELEASE_TEXTS, residue_in_table

    table = pa.table({"trace_id": ["t1", "t2", "t3"], "prompt": ["fine", "fine", "fine"],
                      "chosen": ["a", "b", "c"], "rejected": ["a", "b", "c"],
                      "slice": ["routine", "jane.doe@example.com", "routine"],
                      "chosen_model_id": ["m1", "m1", "AKIAIOSFODNN7EXAMPLE"],
                      "n_reviews": [1, 2, 3]})
    offending, kinds = residue_in_table(table, RELEASE_TEXTS["preference"], ())
    assert offending == ["t2", "t3"]
    assert kinds


def test_identifier_fields_that_look_raw_are_found_on_every_row_that_repeats_them():
    from feedback_pipeline.core.texts import TextLayout, raw_looking_fields

    layout = TextLayout("review_id", ("review_id", "trace_id", "candidate_id"),
                        every_string=False)
    secret_id = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    table = pa.table({
        "review_id": [f"rv-{i}" for i in range(8)],
        "trace_id": ["t-1", secret_id, "t-1", None, secret_id, "t-2", "t-2", "dana@example.com"],
        "candidate_id": pa.array([None, None, "t-1-c1", "t-1-c1", None, None, None, None],
                                 pa.string()),
    })
    found = raw_looking_fields(table, layout)
    assert found == {1: "trace_id", 4: "trace_id", 7: "trace_id"}
    clean = table.filter(pa.array([i not in found for i in range(8)]))
    assert raw_looking_fields(clean, layout) == {}
    assert raw_looking_fields(pa.table({"review_id": pa.array([None, None], pa.string()),
                                        "trace_id": pa.nulls(2, pa.string())}), layout) == {}
