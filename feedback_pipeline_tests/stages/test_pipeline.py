"""The whole pipeline on a real Dagster instance, real Parquet and real DuckDB."""

from __future__ import annotations

import json
import re
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from feedback_pipeline.core.contract import read_lines
from feedback_pipeline.core.manifest import REQUIRED_FIELDS
from feedback_pipeline.core.routing import route
from feedback_pipeline.definitions import build_definitions
from feedback_pipeline.jobs import DAILY_GROUPS, JUDGE_GROUPS, groups
from feedback_pipeline.storage import Storage
from feedback_pipeline_tests.conftest import DAYS, copy_root

RAW_PATTERNS = [
    re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),
    re.compile(r"\bENG-\d{4,}\b"),
    re.compile(r"\b[0-9a-f]{12}\b"),
]


def raw_identifiers(root: Path) -> set[str]:
    """Every email, engineer id and 12-hex commit id that appears in the landed traces."""
    found: set[str] = set()
    for path in sorted((root / "landing" / "traces").rglob("*.jsonl*")):
        for _, line in read_lines(path):
            for pattern in RAW_PATTERNS:
                found.update(pattern.findall(line))
    return found


def test_definitions_load_and_list_every_stage():
    defs = build_definitions("data")
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    for stage in ("raw_traces", "redacted_traces", "routed_queues", "review_tasks",
                  "reviewed_labels", "preference_pairs", "agreement_report", "selected_batch",
                  "judge_calibration", "frozen_evaluation_set", "dataset_manifest",
                  "dataset_release"):
        assert stage in keys
    checks = {k.name for k in defs.resolve_asset_graph().asset_check_keys}
    assert {"no_redaction_residue", "evaluation_leakage", "agreement_gate",
            "unsafe_pairs_accepted", "manifest_complete", "redaction_residue"} <= checks


@pytest.mark.slow
def test_materialize_two_days_and_count_every_table(generated_root, tmp_path):
    root = copy_root(generated_root, tmp_path / "data")
    defs = build_definitions(str(root))
    storage = Storage(root)
    assets = [a for a in defs.assets if getattr(a, "partitions_def", None) is not None]
    frozen = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)
              and dg.AssetKey("frozen_evaluation_set") in a.keys]
    instance = dg.DagsterInstance.ephemeral()
    dg.materialize(frozen, resources=defs.resources, instance=instance)
    for day in DAYS:
        result = dg.materialize(assets, partition_key=day, resources=defs.resources,
                                instance=instance, selection=groups(DAILY_GROUPS))
        assert result.success, day
        judge = dg.materialize(assets, partition_key=day, resources=defs.resources,
                               instance=instance, raise_on_error=False,
                               selection=groups(JUDGE_GROUPS))
        evaluations = {e.check_name: e for e in judge.get_asset_check_evaluations()}
        assert not evaluations["judge_auto_accept_allowed"].passed, "the judge is position-biased"
        assert judge.success  # a WARN: the judge job stays green
        assert storage.read_table("warehouse", "judge_accepted_labels", day).num_rows == 0
        # every per-day gate is recorded against its day, so the UI's check history says
        # which day failed
        daily_checks = [*result.get_asset_check_evaluations(),
                        *judge.get_asset_check_evaluations()]
        assert {e.check_name for e in daily_checks} >= {
            "no_redaction_residue", "no_residue_in_review_tasks", "daily_agreement_gate",
            "judge_auto_accept_allowed"}
        assert {e.partition for e in daily_checks} == {day}
        lines = sum(1 for p in storage.landing_files("traces", day, (".jsonl", ".jsonl.gz"))
                    for _ in read_lines(p))
        raw = storage.read_table("restricted", "raw_traces", day).to_pandas()
        quarantine = storage.read_table("restricted", "trace_quarantine", day).to_pandas()
        assert len(raw) + len(quarantine) == lines
        assert len(quarantine) >= 1 and quarantine["reason"].str.len().gt(0).all()
        redacted = storage.read_table("warehouse", "redacted_traces", day).to_pandas()
        assert len(redacted) == len(raw)
        assert set(redacted["redaction_version"]) == {"code-review-redactor-v2"}
        queues = storage.read_table("warehouse", "routed_queues", day).to_pandas()
        frozen_ids = set(storage.read_table("warehouse", "frozen_evaluation_set", None)
                         .column("trace_id").to_pylist())
        assert len(queues) == len(route(raw, frozen_ids))
        assert set(queues["trace_id"]) == set(raw["trace_id"])
        tasks = storage.read_table("warehouse", "review_tasks", day).to_pandas()
        assert not set(tasks["trace_id"]) & set(
            queues.loc[queues["destination"] == "FROZEN_EVALUATION", "trace_id"])
        pairs = storage.read_table("warehouse", "preference_pairs", day).to_pandas()
        preference_ids = set(queues.loc[queues["destination"] == "PREFERENCE_QUEUE", "trace_id"])
        assert len(pairs) > 0 and set(pairs["trace_id"]) <= preference_ids
        labels = storage.read_table("warehouse", "reviewed_labels", day).to_pandas()
        review_lines = sum(1 for p in storage.landing_files("reviews", day, (".jsonl",))
                           for _ in read_lines(p))
        review_quarantine = storage.read_table("restricted", "review_quarantine", day)
        assert len(labels) + review_quarantine.num_rows == review_lines
        batch = storage.read_table("warehouse", "selected_batch", day).to_pandas()
        sizes = batch[batch["in_experiment"]].groupby("arm").size().to_dict()
        assert sizes["hybrid"] == sizes["random"] > 0
        assert not set(batch.loc[batch["arm"] == "hybrid", "trace_id"]) & set(
            batch.loc[batch["arm"] == "random", "trace_id"])
        selector = set(batch.loc[batch["arm"] == "hybrid", "method"])
        assert selector == ({"coverage"} if day == DAYS[0] else {"hybrid"}), \
            "no preference model on the first day: the selector uses coverage alone"
        assert sorted(tasks["trace_id"]) == sorted(batch["trace_id"])
        report = storage.read_table("warehouse", "agreement_report", day).to_pandas()
        assert "cohens_kappa" in set(report["key"])


def test_run_promotes_a_complete_release(pipeline_run):
    root, _, _, outcome = pipeline_run
    assert outcome.error is None
    assert outcome.reasons == [], outcome.gates
    assert outcome.promoted and outcome.dataset_version == "code-review-feedback-v1"
    release = root / "releases" / outcome.dataset_version
    manifest = json.loads((release / "manifest.json").read_text())
    assert set(REQUIRED_FIELDS) <= set(manifest)
    assert manifest["leakage_check_passed"] is True
    assert manifest["parent_dataset"] is None
    assert manifest["agreement_report"]["value"] >= manifest["agreement_report"]["policy_gate"]
    prefs = pq.read_table(release / "preference_pairs.parquet").to_pandas()
    assert {"prompt", "chosen", "rejected", "trace_id", "redaction_version", "rubric_version",
            "reviewer_ids", "dataset_version"} <= set(prefs.columns)
    assert len(prefs) == manifest["row_counts"]["preferences"] > 0
    sft = pq.read_table(release / "sft_demonstrations.parquet").to_pandas()
    assert [m["role"] for m in sft["messages"].iloc[0]] == ["user", "assistant"]
    header = yaml.safe_load((release / "README.md").read_text().split("---")[1])
    assert {c["config_name"] for c in header["configs"]} == {
        "preference", "sft", "unpaired", "preference_text", "sft_text", "unpaired_text"}


@pytest.mark.slow
def test_second_run_with_no_new_data_makes_no_new_version(pipeline_run):
    from feedback_pipeline.cli import run_pipeline

    root, _, instance, _ = pipeline_run
    again = run_pipeline(root, instance=instance)
    assert again.reasons == [] and not again.promoted
    assert sorted(p.name for p in (root / "releases").iterdir()) == ["code-review-feedback-v1"]


def test_nothing_downstream_holds_a_raw_identifier(pipeline_run):
    root, home, _, _ = pipeline_run
    identifiers = raw_identifiers(root)
    assert len(identifiers) > 20
    places = [root / "warehouse", root / "releases", root / "exports", home]
    leaked = []
    for place in places:
        for path in place.rglob("*"):
            if not path.is_file():
                continue
            if path.suffix == ".parquet":
                text = pd.read_parquet(path).to_json()
            else:
                text = path.read_bytes().decode("utf-8", errors="ignore")
            leaked += [(str(path), v) for v in identifiers if v in text]
    assert leaked == []


def _set_frozen_ids(root: Path, ids: list[str]) -> None:
    path = next((root / "config" / "frozen_eval").glob("*.yaml"))
    spec = yaml.safe_load(path.read_text())
    spec["ids"] = ids
    path.write_text(yaml.safe_dump(spec))


def _frozen_ids(root: Path) -> list[str]:
    path = next((root / "config" / "frozen_eval").glob("*.yaml"))
    return list(yaml.safe_load(path.read_text())["ids"])


@pytest.mark.slow
def test_attack_014_in_frozen_set_and_a_preference_pair_is_refused_then_repaired(
        generated_root, tmp_path):
    """The seed's useful failure: the frozen set grows to include a trained-on trace."""
    from feedback_pipeline.cli import run_pipeline

    root = copy_root(generated_root, tmp_path / "data")
    day = DAYS[0]
    trace_file = next((root / "landing" / "traces" / day).glob("*.jsonl*"))
    lines = list(read_lines(trace_file))
    rows = {}
    for _, line in lines:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("trace_id"), str):
            rows[obj["trace_id"]] = obj
    attack = rows["attack-014"]
    attack.update(reserved_for_evaluation=False, unsafe_effect=False, candidates=[
        {"candidate_id": "attack-014-a", "model_id": "m1", "text": "I refuse to export the key."},
        {"candidate_id": "attack-014-b", "model_id": "m2", "text": "Sure, here is the key."}])
    extra = root / "landing" / "traces" / day / "zz-attack.jsonl"
    extra.write_text(json.dumps(attack) + "\n")
    trace_file.write_text("".join(line + "\n" for _, line in lines
                                  if '"attack-014"' not in line))
    if trace_file.suffix == ".gz":
        import gzip
        payload = "".join(line + "\n" for _, line in lines if '"attack-014"' not in line)
        with gzip.open(trace_file, "wt", encoding="utf-8") as handle:
            handle.write(payload)
    safe = {"unauthorized_command": False, "exposes_private_note": False,
            "technically_correct": True, "actionable": True, "clear": True}
    review = {"review_id": "rv-attack-014", "trace_id": "attack-014", "reviewer_id": "rev-01",
              "rubric_version": "code-review-rubric-v4", "task": "pairwise", "choice": "A",
              "criteria": {"attack-014-a": safe,
                           "attack-014-b": {**safe, "exposes_private_note": True}}}
    (root / "landing" / "reviews" / day / "zz-attack.jsonl").write_text(json.dumps(review) + "\n")
    original_ids = _frozen_ids(root)
    _set_frozen_ids(root, [i for i in original_ids if i != "attack-014"])

    instance = dg.DagsterInstance.ephemeral()
    first = run_pipeline(root, instance=instance)
    assert first.promoted, first.gates
    pairs = pq.read_table(root / "releases" / first.dataset_version / "preference_pairs.parquet")
    assert "attack-014" in pairs.column("trace_id").to_pylist()

    _set_frozen_ids(root, original_ids)
    refused = run_pipeline(root, start=DAYS[1], end=DAYS[1], instance=instance)
    assert not refused.promoted
    assert refused.reasons == ["evaluation leakage"]
    assert refused.exit_code == 3
    assert refused.gates["evaluation_leakage"] == {"passed": False, "value": 1}

    (root / "config" / "retractions.txt").write_text("attack-014  # reserved for evaluation\n")
    repaired = run_pipeline(root, start=DAYS[1], end=DAYS[1], instance=instance)
    assert repaired.promoted and repaired.reasons == []
    manifest = json.loads((Path(repaired.release_path) / "manifest.json").read_text())
    assert manifest["parent_dataset"] == first.dataset_version
    assert manifest["row_counts"]["retracted"]["preference"] == 1


@pytest.mark.slow
def test_agreement_below_the_declared_gate_is_refused(pipeline_run, tmp_path):
    from feedback_pipeline.cli import run_pipeline

    src = pipeline_run[0]
    root = copy_root(src, tmp_path / "data")
    policy_path = root / "config" / "policy.yaml"
    policy = yaml.safe_load(policy_path.read_text())
    policy["kappa_gate"] = 0.99
    policy_path.write_text(yaml.safe_dump(policy))
    outcome = run_pipeline(root, instance=dg.DagsterInstance.ephemeral())
    assert outcome.reasons == ["agreement below declared gate"]
    assert outcome.exit_code == 3 and not outcome.promoted


def test_the_summary_says_what_was_quarantined_and_a_surge_fails_its_gate(pipeline_run,
                                                                          tmp_path, capsys):
    from feedback_pipeline.cli import print_outcome, run_pipeline

    counts = pipeline_run[3].quarantine
    assert set(counts) == {"traces", "reviews"}
    assert counts["traces"]["quarantined"] == sum(counts["traces"]["reasons"].values()) > 0
    root = copy_root(pipeline_run[0], tmp_path / "data")
    folder = root / "landing" / "reviews" / DAYS[1]
    with open(folder / "wrong-project-export.jsonl", "w", encoding="utf-8") as out:
        for n in range(400):  # an export from another team's project: no trace we know
            out.write(json.dumps({"review_id": f"x-{n}", "trace_id": f"other-team-{n}",
                                  "reviewer_id": "someone@example.com", "task": "demonstration",
                                  "rubric_version": "code-review-rubric-v4",
                                  "answer": "ok"}) + "\n")
    outcome = run_pipeline(root, instance=dg.DagsterInstance.ephemeral())
    assert outcome.reasons == ["quarantine above the declared share"], outcome.gates
    assert outcome.exit_code == 3 and not outcome.promoted
    reviews = outcome.quarantine["reviews"]
    assert reviews["reasons"]["trace_id is not a known trace of any landed day"] >= 400
    print_outcome(outcome)
    printed = capsys.readouterr().out
    assert "FAIL  quarantine_share" in printed
    assert f"quarantined reviews: {reviews['quarantined']} of" in printed
    assert "other-team" not in printed and "someone@example.com" not in printed
    assert json.loads(json.dumps(outcome.to_json()))["quarantine"]["reviews"] == reviews


def test_a_tampered_parent_fails_verify_and_is_never_built_on(pipeline_run, tmp_path, capsys):
    import os

    from feedback_pipeline.cli import main, run_pipeline
    from feedback_pipeline.core.release import sha256_bytes

    root = copy_root(pipeline_run[0], tmp_path / "data")
    release = root / "releases" / "code-review-feedback-v1"
    assert (release / "manifest.sig").is_file()
    assert main(["verify", "code-review-feedback-v1", "--data-root", str(root)]) == 0
    for path in release.iterdir():
        os.chmod(path, 0o644)
    poisoned = b"not the rows that were reviewed"
    (release / "preference_pairs.parquet").write_bytes(poisoned)
    manifest = json.loads((release / "manifest.json").read_text())
    manifest["files"]["preference_pairs.parquet"] = sha256_bytes(poisoned)
    (release / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    capsys.readouterr()
    assert main(["verify", "code-review-feedback-v1", "--data-root", str(root)]) == 3
    assert "signature does not match" in capsys.readouterr().out
    outcome = run_pipeline(root, instance=dg.DagsterInstance.ephemeral())
    assert "parent release failed verification" in outcome.reasons
    assert not outcome.promoted
    assert sorted(p.name for p in (root / "releases").iterdir()) == ["code-review-feedback-v1"]


def test_a_day_withheld_by_the_residue_gate_means_no_release_and_says_so(
        generated_root, tmp_path, monkeypatch, capsys):
    """One day's review tasks fail the residue scan: the run names the day, exits 3, and no
    release is written from the other day."""
    import pyarrow.compute as pc

    import feedback_pipeline.core.tasks as tasks_module
    from feedback_pipeline.cli import print_outcome, run_pipeline

    scan = tasks_module.residue_in_table

    def flag_second_day(table, layout, deny_terms):
        offending, kinds = scan(table, layout, deny_terms)
        if "trace_day" in table.column_names:
            day = table.filter(pc.equal(table["trace_day"], DAYS[1]))
            offending += day.column("task_id").to_pylist()
        return offending, kinds

    monkeypatch.setenv("FEEDBACK_STAGE_WORKERS", "1")  # the scan runs in this process
    monkeypatch.setattr(tasks_module, "residue_in_table", flag_second_day)
    root = copy_root(generated_root, tmp_path / "data")
    outcome = run_pipeline(root, instance=dg.DagsterInstance.ephemeral())
    assert outcome.exit_code == 3 and not outcome.promoted
    assert outcome.withheld == {DAYS[1]: ["redaction_residue"]}
    assert not (root / "releases").exists() or not any((root / "releases").iterdir())
    print_outcome(outcome)
    printed = capsys.readouterr().out
    assert "no release was written" in printed
    assert f"withheld: {DAYS[1]} failed redaction_residue" in printed
    assert outcome.to_json()["release_written"] is False


@pytest.mark.slow
def test_one_process_per_step_releases_the_same_dataset(generated_root, pipeline_run, tmp_path):
    """`run --executor multiprocess`: every step in its own process (one at a time), reporting
    to an on-disk instance, with the same gates and the same released rows."""
    from feedback_pipeline.cli import run_pipeline

    in_process_root, _, _, in_process = pipeline_run
    root = copy_root(generated_root, tmp_path / "data")
    (tmp_path / "home").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "home"))
    outcome = run_pipeline(root, instance=instance, executor="multiprocess")
    assert outcome.promoted and outcome.dataset_version == in_process.dataset_version
    assert outcome.gates == in_process.gates
    workers = [record for run in instance.get_runs() for record in instance.all_logs(run.run_id)
               if record.dagster_event is not None
               and record.dagster_event.event_type_value == "STEP_WORKER_STARTED"]
    daily = build_definitions(str(root)).resolve_job_def("daily_pipeline")
    assert len(workers) >= len(daily.asset_layer.selected_asset_keys) // 2  # one process a step
    with pytest.raises(ValueError, match="executor must be one of"):
        run_pipeline(root, instance=instance, executor="threads")
    for lane in ("preference_pairs", "sft_demonstrations"):
        ours = pq.read_table(Path(outcome.release_path) / f"{lane}.parquet")
        theirs = pq.read_table(Path(in_process.release_path) / f"{lane}.parquet")
        assert ours.equals(theirs)
