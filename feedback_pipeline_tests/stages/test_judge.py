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
