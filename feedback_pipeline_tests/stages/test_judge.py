"""The judge stage: calibrated on config/gold, figures per day, pre-labels only after passing."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from feedback_pipeline.definitions import build_definitions
from feedback_pipeline.partitions import daily_partitions
from feedback_pipeline.stages.common import WAREHOUSE_IO
from feedback_pipeline.stages.judge import judge_accepted_labels, judge_calibration
from feedback_pipeline.storage import Storage
from feedback_pipeline_tests.conftest import DAYS, copy_root

DAY = DAYS[0]
JUDGE = "judge-llm-v1"
LABELS = ["A", "B", "TIE", "A", "B"]
SWAP = {"A": "B", "B": "A", "TIE": "TIE"}
GOLD = {f"gold-{i:03d}": LABELS[i % 5] for i in range(24)}
DAY_PAIRS = {"day-001": "A", "day-002": "B"}


@dg.asset(name="preference_pairs", partitions_def=daily_partitions, io_manager_key=WAREHOUSE_IO,
          required_resource_keys={"pipeline"})
def stub_preference_pairs(context: dg.AssetExecutionContext) -> pd.DataFrame:
    """The day's accepted (human-reviewed) pairs: the training rows the gold set must avoid."""
    ids = json.loads((Path(context.resources.pipeline.data_root) / "stub_pairs.json").read_text())
    return pd.DataFrame({"trace_id": ids, "outcome": ["A"] * len(ids),
                         "slice": ["s"] * len(ids)}).astype("string")


def judge_line(trace_id: str, order: str, choice: str) -> str:
    return json.dumps({"trace_id": trace_id, "judge_id": JUDGE, "order": order,
                       "choice": choice}) + "\n"


def prepare(root: Path, *, gold: dict[str, str] | None, flips: int = 0,
            training: list[str] = ()) -> None:
    """A consistent judge (labels = gold, flips its letter on swap), except `flips` gold items
    whose swapped answer keeps the letter; the day's pairs and a review-task import file."""
    lines = []
    for n, (trace_id, label) in enumerate({**GOLD, **DAY_PAIRS}.items()):
        keeps = n < flips and label != "TIE"
        lines += [judge_line(trace_id, "original", label),
                  judge_line(trace_id, "swapped", label if keeps else SWAP[label])]
    folder = root / "landing" / "judge" / DAY
    for old in folder.glob("*.jsonl"):
        old.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "judge-000.jsonl").write_text("".join(lines), encoding="utf-8")
    gold_file = root / "config" / "gold" / "judge_gold.jsonl"
    if gold is None:
        gold_file.unlink(missing_ok=True)
    else:
        gold_file.write_text("".join(json.dumps({"trace_id": t, "label": label}) + "\n"
                                     for t, label in gold.items()), encoding="utf-8")
    (root / "stub_pairs.json").write_text(json.dumps([*DAY_PAIRS, *training]))
    export = root / "exports" / "review_tasks" / DAY
    export.mkdir(parents=True, exist_ok=True)
    (export / "label_studio_tasks.json").write_text(json.dumps(
        [{"data": {"task_id": f"task-{t}", "trace_id": t, "task": "pairwise"}}
         for t in DAY_PAIRS]), encoding="utf-8")


def run_judge(root: Path, instance: dg.DagsterInstance | None = None):
    defs = build_definitions(str(root))
    instance = instance or dg.DagsterInstance.ephemeral()
    assets = [stub_preference_pairs, judge_calibration, judge_accepted_labels]
    result = dg.materialize(assets, partition_key=DAY, resources=defs.resources,
                            instance=instance, raise_on_error=False)
    assert result.success  # a judge short of its gate warns, it never fails the run
    check = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert check["judge_auto_accept_allowed"].partition == DAY
    metadata = next(m for m in result.get_asset_materialization_events()
                    if m.asset_key == dg.AssetKey("judge_calibration")
                    ).materialization.metadata
    tasks = json.loads((root / "exports" / "review_tasks" / DAY /
                        "label_studio_tasks.json").read_text())
    return check["judge_auto_accept_allowed"], {k: v.value for k, v in metadata.items()}, tasks


@pytest.fixture
def root(generated_root, tmp_path):
    return copy_root(generated_root, tmp_path / "data")


def test_passing_judge_records_figures_and_prelabels_the_export(root):
    prepare(root, gold=GOLD)
    check, metadata, tasks = run_judge(root)
    assert check.passed, metadata["reason"]
    assert metadata["calibration_passed"] is True
    assert metadata["gold_set"] == "judge_gold"
    assert (metadata["n_gold"], metadata["n_items"], metadata["gold_in_training"]) == (24, 24, 0)
    assert metadata["kappa"] == pytest.approx(1.0)
    assert metadata["swap_inconsistency"] == pytest.approx(0.0)
    by_trace = {t["data"]["trace_id"]: t.get("predictions") for t in tasks}
    assert by_trace["day-001"][0]["model_version"] == JUDGE
    assert by_trace["day-001"][0]["result"][0]["value"] == {"choices": ["A"]}
    assert by_trace["day-002"][0]["result"][0]["value"] == {"choices": ["B"]}
    prelabels = Storage(root).read_table("warehouse", "judge_accepted_labels", DAY).to_pandas()
    assert sorted(prelabels["trace_id"]) == ["day-001", "day-002"]  # gold items never pre-labelled


def test_judge_that_flips_on_swap_fails_and_the_export_has_no_predictions(root):
    prepare(root, gold=GOLD, flips=6)
    check, metadata, tasks = run_judge(root)
    assert not check.passed
    assert metadata["swap_inconsistency"] == pytest.approx(5 / 24)  # item 2 is a TIE
    assert "swap inconsistency" in metadata["reason"]
    assert all("predictions" not in t for t in tasks)
    # a WARN: the run stays green, and no judge label goes downstream
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert Storage(root).read_table("warehouse", "judge_accepted_labels", DAY).num_rows == 0


def test_missing_gold_set_is_reported_and_the_days_pairs_do_not_calibrate(root):
    prepare(root, gold=None)
    check, metadata, tasks = run_judge(root)
    assert not check.passed
    assert metadata["reason"] == "no held-out gold set"
    assert metadata["n_gold"] == 0 and metadata["kappa"] == -1.0
    assert all("predictions" not in t for t in tasks)


def test_gold_items_among_training_rows_are_counted(root):
    prepare(root, gold=GOLD, training=["gold-001", "gold-002"])
    check, metadata, _ = run_judge(root)
    assert not check.passed
    assert metadata["gold_in_training"] == 2
    assert check.metadata["gold_in_training_ids"].value == "gold-001, gold-002"


def test_judge_labels_never_feed_a_release_row():
    """A judge label without a human review cannot become a release row: nothing upstream of
    the release lane (preference pairs, manifest, release) is a judge asset."""
    graph = build_definitions("data").resolve_asset_graph()
    judge_keys = {k for k in graph.get_all_asset_keys() if k.to_user_string().startswith("judge_")}
    assert {dg.AssetKey("judge_calibration"), dg.AssetKey("judge_accepted_labels")} <= judge_keys
    for name in ("preference_pairs", "dataset_manifest", "dataset_release"):
        key = dg.AssetKey(name)
        assert key in graph.get_all_asset_keys()
        assert not judge_keys & _ancestors(graph, key), name


def _ancestors(graph, key):
    seen, todo = set(), [key]
    while todo:
        for parent in graph.get(todo.pop()).parent_keys:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


def test_a_judge_short_of_its_gate_alerts_when_its_state_changes_not_every_day(root):
    from feedback_pipeline.automation.sensors import failed_check_alerts

    instance = dg.DagsterInstance.ephemeral()
    keys = [dg.AssetCheckKey(dg.AssetKey("judge_calibration"), "judge_auto_accept_allowed")]
    prepare(root, gold=GOLD, flips=6)
    run_judge(root, instance)
    alerts, cursor = failed_check_alerts(instance, keys, None)
    assert [a.kind for a in alerts] == ["check_failed"]  # auto-accept disabled: one alert
    run_judge(root, instance)  # still short of its gate on the next evaluation
    alerts, cursor = failed_check_alerts(instance, keys, cursor)
    assert alerts == []
    prepare(root, gold=GOLD)
    run_judge(root, instance)
    alerts, cursor = failed_check_alerts(instance, keys, cursor)
    assert [(a.kind, a.severity) for a in alerts] == [("check_recovered", "WARN")]
    assert "passes again" in alerts[0].title
    run_judge(root, instance)
    assert failed_check_alerts(instance, keys, cursor)[0] == []


def test_gzip_judge_files_are_read_and_every_other_entry_is_a_file_row(root, monkeypatch):
    """A .jsonl.gz judge file is read like a .jsonl one (it used to be passed over in
    silence, as was every other entry of the day's judge folder); each other entry is one
    file-level quarantine row saying it was not read, and the other files flow on."""
    import gzip

    from feedback_pipeline.core.contract import TEMPORARY_FILE
    from feedback_pipeline.resources import PipelineResource
    from feedback_pipeline.stages.judge import NOT_A_JUDGE_FILE, load_judge_labels

    monkeypatch.setenv("FEEDBACK_STAGE_WORKERS", "1")
    prepare(root, gold=GOLD)
    pipeline = PipelineResource(data_root=str(root), stage_workers="1")
    labels, bad = load_judge_labels(pipeline, DAY)
    folder = root / "landing" / "judge" / DAY
    (folder / "more.jsonl.gz").write_bytes(gzip.compress(
        (judge_line("gz-1", "original", "A") + judge_line("gz-1", "swapped", "B")).encode()))
    (folder / "labels.json").write_text("[]")
    (folder / "labels.jsonl.zst").write_bytes(b"(\xb5/\xfd")
    (folder / "archive").mkdir()
    (folder / ".judge.jsonl.7.tmp").write_text(judge_line("tmp-1", "original", "A"))
    labels_after, bad_after = load_judge_labels(pipeline, DAY)
    assert len(labels_after) == len(labels) + 2
    assert set(labels_after["trace_id"]) - set(labels["trace_id"]) == {"gz-1"}
    assert NOT_A_JUDGE_FILE.startswith("the file name does not end in .jsonl or .jsonl.gz")
    assert [(q["source_file"].rsplit("/", 1)[-1], q["line_number"], q["reason"])
            for q in bad_after if q not in bad] == [
        (".judge.jsonl.7.tmp", 0, TEMPORARY_FILE),
        ("archive", 0, "is a folder, not a file; nothing in it was read"),
        ("labels.json", 0, NOT_A_JUDGE_FILE),
        ("labels.jsonl.zst", 0, NOT_A_JUDGE_FILE)]


def test_a_judge_file_landed_twice_is_counted_once_and_reported(root):
    """The day's judge file landed again under another name: each label is kept once, the
    repeats are counted in judge_labels' metadata, and calibration is as with one copy."""
    prepare(root, gold=GOLD)
    folder = root / "landing" / "judge" / DAY
    original = (folder / "judge-000.jsonl").read_text(encoding="utf-8")
    (folder / "judge-001.jsonl").write_text(original, encoding="utf-8")
    result = dg.materialize([stub_preference_pairs, judge_calibration], partition_key=DAY,
                            resources=build_definitions(str(root)).resources,
                            instance=dg.DagsterInstance.ephemeral())
    metadata = {e.asset_key.to_user_string(): {k: v.value for k, v in
                                               e.materialization.metadata.items()}
                for e in result.get_asset_materialization_events()}
    calibration = metadata["judge_calibration"]
    assert calibration["calibration_passed"] is True, calibration["reason"]
    assert (calibration["n_items"], calibration["swap_inconsistency"]) == (24, 0.0)
    assert metadata["judge_labels"]["repeated_labels_dropped"] == len(original.splitlines())
    assert metadata["judge_labels"]["contradicted_label_keys"] == 0
    stored = Storage(root).read_table("warehouse", "judge_labels", DAY)
    assert stored.num_rows == len(original.splitlines())
    assert set(stored.column("source_file").to_pylist()) == {
        f"landing/judge/{DAY}/judge-000.jsonl"}
