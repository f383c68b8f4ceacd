"""The redaction stage on one day through `dg.materialize`: every text redacted (the logged
conversation too), the vault written encrypted, and the residue gate recorded against the
day."""

import json

import dagster as dg

from feedback_pipeline.definitions import build_definitions
from feedback_pipeline.storage import Storage
from feedback_pipeline_tests.conftest import DAYS, copy_root

SECRET = "ghp_" + "StageTestTok3n" * 3
EMAIL = "stage.redaction@leak-test.example"


def _redact_day(root, day: str) -> dg.ExecuteInProcessResult:
    """Ingest and redaction of one day, in process on an ephemeral instance."""
    defs = build_definitions(str(root))
    assets = [a for a in defs.assets if getattr(a, "partitions_def", None) is not None]
    return dg.materialize(assets, partition_key=day, resources=defs.resources,
                          instance=dg.DagsterInstance.ephemeral(),
                          selection=dg.AssetSelection.assets(
                              "raw_traces", "trace_quarantine", "redacted_traces",
                              "reidentification_vault"))


def test_a_day_is_redacted_its_values_vaulted_and_the_gate_recorded_for_the_day(
        generated_root, tmp_path):
    root = copy_root(generated_root, tmp_path / "data")
    day = DAYS[0]
    trace = {"trace_id": "stage-redaction-1", "created_at": f"{day}T10:00:00+00:00",
             "prompt": f"my token is {SECRET}, mail {EMAIL}", "context": f"GITHUB={SECRET}",
             "slice": "routine-review", "messages": [
                 {"role": "user", "content": f"earlier turn naming {EMAIL}"}],
             "candidates": [{"candidate_id": "stage-redaction-1-c1", "model_id": "m",
                             "text": f"Rotate {SECRET} now."}]}
    (root / "landing" / "traces" / day / "planted.jsonl").write_text(json.dumps(trace) + "\n")
    result = _redact_day(root, day)
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert (check.check_name, check.passed, check.partition) == ("no_redaction_residue", True,
                                                                 day)
    storage = Storage(root)
    redacted = {r["trace_id"]: r for r in storage.read_table(
        "warehouse", "redacted_traces", day).to_pylist()}
    row = redacted["stage-redaction-1"]
    text = json.dumps(row, default=str)
    assert SECRET not in text and EMAIL not in text
    assert row["prompt"].startswith("my token is <") and "<EMAIL_" in row["prompt"]
    assert "<EMAIL_" in json.loads(row["extra_json"])["messages"][0]["content"]
    # one token per value across the trace's fields
    token = row["prompt"].split()[3].rstrip(",")
    assert row["candidates"][0]["text"] == f"Rotate {token} now."
    assert storage.table_days("restricted", "reidentification_vault") == [day]
    vault = storage.read_table("restricted", "reidentification_vault", day)
    assert vault.num_rows >= 2
    assert SECRET not in json.dumps(vault.to_pylist(), default=str)  # encrypted at rest


def test_with_corpus_stable_tokens_a_value_found_in_one_trace_is_replaced_in_another(
        generated_root, tmp_path):
    """The policy switch reaches the stage: one token per value across the day's traces, a
    bare recurrence in another trace replaced, and the second pass reported on the vault."""
    root = copy_root(generated_root, tmp_path / "data")
    day = DAYS[0]
    policy = root / "config" / "policy.yaml"
    policy.write_text(policy.read_text().replace("corpus_stable_tokens: false",
                                                 "corpus_stable_tokens: true"))
    password = "Vb7kLq2xNw"
    traces = [{"trace_id": f"stage-stable-{i}", "created_at": f"{day}T10:00:0{i}+00:00",
               "prompt": prompt, "slice": "routine-review",
               "candidates": [{"candidate_id": f"stage-stable-{i}-c1", "model_id": "m",
                               "text": "ok"}]}
              for i, prompt in enumerate([f"Ask {password} first",
                                          f"mysql -u admin -p{password} -h db"])]
    (root / "landing" / "traces" / day / "planted.jsonl").write_text(
        "".join(json.dumps(t) + "\n" for t in traces))
    result = _redact_day(root, day)
    assert result.success
    rows = {r["trace_id"]: r for r in Storage(root).read_table(
        "warehouse", "redacted_traces", day).to_pylist()}
    token = rows["stage-stable-1"]["prompt"].split("-p", 1)[1].split()[0]
    assert token.startswith("<PASSWORD_") and token[10:-1].isalnum()
    assert rows["stage-stable-0"]["prompt"] == f"Ask {token} first"
    [vault] = [m for m in result.get_asset_materialization_events()
               if m.asset_key == dg.AssetKey("reidentification_vault")]
    assert "batches_redone_for_day_wide_values" in vault.materialization.metadata
