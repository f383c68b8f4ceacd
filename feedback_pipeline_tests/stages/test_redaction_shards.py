"""Sharded redaction (policy `shards_per_day`, without corpus-stable tokens): the day's raw rows
redacted as runs of whole batches, one executor step each, merged into the tables, vault rows
and residue gate an unsharded run gives."""

import json
import shutil

import dagster as dg
import pytest
import yaml

from feedback_pipeline.core.vault import reidentify
from feedback_pipeline.definitions import build_definitions, stage_assets
from feedback_pipeline.resources import KeysResource
from feedback_pipeline.stages import redaction
from feedback_pipeline.storage import Storage
from feedback_pipeline_tests.conftest import DAYS, copy_root

SECRET = "ghp_" + "ShardTestTok3n" * 3


def with_policy(root, **values) -> None:
    policy = root / "config" / "policy.yaml"
    policy.write_text(yaml.safe_dump({**yaml.safe_load(policy.read_text()), **values}))


def redact_day(root, day: str) -> dg.ExecuteInProcessResult:
    defs = build_definitions(str(root))
    assets = [a for a in stage_assets(str(root)) if isinstance(a, dg.AssetsDefinition)
              and a.partitions_def is not None]
    return dg.materialize(assets, partition_key=day, resources=defs.resources,
                          instance=dg.DagsterInstance.ephemeral(),
                          selection=dg.AssetSelection.assets(
                              "raw_traces", "trace_quarantine", "redacted_traces",
                              "reidentification_vault"))


def redaction_asset(root) -> dg.AssetsDefinition:
    return next(a for a in stage_assets(str(root)) if isinstance(a, dg.AssetsDefinition)
                and dg.AssetKey("redacted_traces") in a.keys)


def test_the_plan_cuts_whole_batches_as_evenly_as_batches_allow():
    plan = redaction.plan_redaction_shards(DAYS[0], 95, 3, batch_rows=10)
    assert [(s.index, s.start, s.stop) for s in plan] == [(0, 0, 40), (1, 40, 80), (2, 80, 95)]
    assert [(s.start, s.stop) for s in redaction.plan_redaction_shards(DAYS[0], 25, 8, 10)] == [
        (0, 10), (10, 20), (20, 25)]  # fewer batches than shards: a batch each
    assert [(s.start, s.stop) for s in redaction.plan_redaction_shards(DAYS[0], 0, 4, 10)] == [
        (0, 0)]


@pytest.mark.slow  # runs the day twice, sharded and not
def test_a_sharded_day_redacts_exactly_as_an_unsharded_one(generated_root, tmp_path,
                                                           monkeypatch):
    monkeypatch.setattr(redaction, "BATCH_ROWS", 10)  # the generated day: several batches
    day = DAYS[0]
    one = copy_root(generated_root, tmp_path / "one")
    planted = {"trace_id": "shard-redaction-1", "created_at": f"{day}T10:00:00+00:00",
               "prompt": f"my token is {SECRET}", "candidates": [
                   {"candidate_id": "shard-redaction-1-c1", "model_id": "m",
                    "text": f"Rotate {SECRET} now."}]}
    (one / "landing" / "traces" / day / "planted.jsonl").write_text(json.dumps(planted) + "\n")
    three = shutil.copytree(one, tmp_path / "three")
    with_policy(three, shards_per_day=3)
    assert redaction_asset(one).node_def.name == "redacted_traces"
    assert "redact_shard" in {n.name for n in redaction_asset(three).node_def.node_defs}
    results = {name: redact_day(root, day) for name, root in (("one", one), ("three", three))}
    checks = {name: r.get_asset_check_evaluations() for name, r in results.items()}
    assert [(c.check_name, c.passed, c.partition) for c in checks["three"]] == [
        ("no_redaction_residue", True, day)]
    assert checks["three"][0].metadata["rows_scanned"] == checks["one"][0].metadata[
        "rows_scanned"]
    tables = {name: Storage(root).read_table("warehouse", "redacted_traces", day)
              for name, root in (("one", one), ("three", three))}
    assert tables["three"].num_rows > 6 * 10 and tables["three"].equals(tables["one"])
    assert SECRET not in json.dumps(tables["three"].to_pylist(), default=str)
    # the vault holds the same mapping (sealed afresh, so compared opened)
    vaults = {}
    for name, root in (("one", one), ("three", three)):
        key = KeysResource(data_root=str(root)).vault_key_value()
        sealed = Storage(root).read_table("restricted", "reidentification_vault", day)
        opened = reidentify(sealed.to_pandas(), requester="test", purpose="compare shards",
                            audit_log=tmp_path / "audit" / f"{name}.jsonl", key=key)
        vaults[name] = list(map(tuple, opened[["trace_id", "token", "kind", "value"]]
                                .itertuples(index=False)))
    assert vaults["three"] == vaults["one"] and any(v == SECRET for *_, v in vaults["one"])
    stage = three / "restricted" / ".stage"
    assert not any(stage.iterdir())  # staged shards are removed once merged
    pickles = list((three / "restricted" / ".steps").rglob("*redact_shard*.pickle"))
    assert len(pickles) >= 3
    assert not any(SECRET.encode() in p.read_bytes() for p in pickles)


@pytest.mark.parametrize("stable", [True, False])
def test_corpus_stable_tokens_keep_redaction_in_one_step(generated_root, tmp_path, stable):
    root = copy_root(generated_root, tmp_path / "data")
    with_policy(root, shards_per_day=2, corpus_stable_tokens=stable)
    names = {n.name for n in getattr(redaction_asset(root).node_def, "node_defs", [])}
    assert ("redact_shard" in names) is not stable
